"""Checkpoints survive crashes; a resumed run ends where an uninterrupted one does."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from paddle_cls.config import load_config
from paddle_cls.engine import train
from paddle_cls.engine import components
from paddle_cls.engine.checkpointing import portable_optimizer_state, restore_optimizer_state
from paddle_cls.errors import CheckpointError, NonFiniteLoss
from paddle_cls.utils.weights import load_state_dict, save_atomic

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _overrides(data_dir, output_dir, *extra):
    return [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
            "Global.epochs=3", "Global.log_steps=10", "Global.save_unit=step", "Global.save_interval=4",
            "DataLoader.Train.subset=[0, 240]", "DataLoader.Train.batch_size=8", "DataLoader.Eval.subset=[0, 64]",
            "Optimizer.learning_rate={name: CosineAnnealingDecay, learning_rate: 0.003, T_max: 90}", *extra]


def _args(overrides):
    return [arg for override in overrides for arg in ("-o", override)]


def _train_with_signal(signal_name, step, overrides):
    """tools/train.py, interrupted by `signal_name` as training step `step` starts (tests/signal_at_step.py)."""
    return subprocess.run([sys.executable, "tests/signal_at_step.py", signal_name, str(step), "-c",
                           "configs/mynet_cifar10.yml", *_args(overrides)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def _resume(overrides):
    return subprocess.run([sys.executable, "tools/train.py", "-c", "configs/mynet_cifar10.yml",
                           *_args([*overrides, "Global.resume=auto"])], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _latest_step(output_dir):
    return int(open(os.path.join(output_dir, "checkpoints", "latest")).read().strip()[5:])


def _weights(output_dir):
    return {k: v.numpy() for k, v in load_state_dict(os.path.join(output_dir, "last_model.pdparams")).items()}


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("straight"))
    results = train(load_config("configs/mynet_cifar10.yml", _overrides(data_dir, output_dir)))
    return output_dir, results


SCALAR_TAGS = ("train/loss", "train/lr", "eval/loss", "eval/Accuracy")


def _records(output_dir):
    """{tag: [(step, value), ...]} as VisualDL reads them from the run's records folder, which holds one file."""
    from visualdl import LogReader
    from visualdl.utils.string_util import decode_tag

    logdir = os.path.join(output_dir, "visualdl")
    assert len([name for name in os.listdir(logdir) if "vdlrecords" in name]) == 1, os.listdir(logdir)
    reader = LogReader(logdir=logdir)
    (run,) = reader.runs()
    return {tag: [(step, value) for step, _, _, value in reader.get_log_data("scalar", run, decode_tag(tag))]
            for tag in SCALAR_TAGS}


def _assert_same_records(resumed_dir, straight_dir):
    """One series per tag, every step once and in order, with the uninterrupted run's values."""
    resumed, straight = _records(resumed_dir), _records(straight_dir)
    assert [step for step, _ in resumed["train/loss"]] == list(range(90))
    assert [step for step, _ in resumed["eval/Accuracy"]] == [29, 59, 89]
    for tag in SCALAR_TAGS:
        assert [step for step, _ in resumed[tag]] == [step for step, _ in straight[tag]], tag
        np.testing.assert_allclose([v for _, v in resumed[tag]], [v for _, v in straight[tag]], rtol=1e-5, err_msg=tag)


def _assert_same_run(resumed_dir, straight_dir):
    straight, resumed = _weights(straight_dir), _weights(resumed_dir)
    for key in straight:
        np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-5, atol=1e-6, err_msg=key)
    def read(folder):
        return json.load(open(os.path.join(folder, "history.json")))

    for a, b in zip(read(resumed_dir), read(straight_dir)):
        assert a["epoch"] == b["epoch"]
        for field in ("train_loss", "dev_loss", "dev_accuracy", "lr"):
            assert a[field] == pytest.approx(b[field], rel=1e-5), field
    assert len(read(resumed_dir)) == 3


def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(uninterrupted, data_dir, tmp_path):
    straight_dir, straight_results = uninterrupted
    output_dir = str(tmp_path)
    killed = _train_with_signal("SIGKILL", 38, _overrides(data_dir, output_dir))  # mid-epoch 1 (30 steps an epoch)
    assert killed.returncode == -9
    assert _latest_step(output_dir) == 36  # checkpoints every 4 steps: the last one before the kill
    load_state_dict(os.path.join(output_dir, "best_model.pdparams"))  # the best model survived the kill
    resumed = _resume(_overrides(data_dir, output_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and "at step 36" in resumed.stdout
    _assert_same_run(output_dir, straight_dir)
    log = open(os.path.join(output_dir, "train.log")).read()
    assert log.count("[Train] Training done!") == 1 and "step: 80/90" in log  # the step counter continued
    _assert_same_records(output_dir, straight_dir)


def test_records_continue_across_two_resumes_after_kills_between_checkpoints(uninterrupted, data_dir, tmp_path):
    straight_dir, _ = uninterrupted
    output_dir = str(tmp_path)
    overrides = _overrides(data_dir, output_dir, "Global.save_interval=7")  # saves after steps 27, 55: not 29, 59
    assert _train_with_signal("SIGKILL", 33, overrides).returncode == -9
    assert _latest_step(output_dir) == 28
    written = _records(output_dir)  # epoch 0's records, to step 29, are in the file: steps the resume repeats
    assert written["train/loss"][-1][0] == 29 and [step for step, _ in written["eval/loss"]] == [29]
    resumed = [*overrides, "Global.resume=auto"]
    assert _train_with_signal("SIGKILL", 34, resumed).returncode == -9  # at step 28 + 34 = 62
    assert _latest_step(output_dir) == 56 and _records(output_dir)["train/loss"][-1][0] == 59
    finished = _resume(overrides)
    assert finished.returncode == 0, finished.stderr
    _assert_same_run(output_dir, straight_dir)
    _assert_same_records(output_dir, straight_dir)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(uninterrupted, data_dir, tmp_path):
    straight_dir, _ = uninterrupted
    output_dir = str(tmp_path)
    overrides = _overrides(data_dir, output_dir, "Global.save_interval=1000")
    stopped = _train_with_signal("SIGINT", 40, overrides)  # Ctrl-C as step 40 (mid-epoch 1) starts
    assert stopped.returncode == 130, stopped.stderr
    assert "training stopped by Ctrl-C at step 41" in stopped.stderr and "Global.resume=auto" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert _latest_step(output_dir) == 41  # the step under way finished, then the checkpoint was saved
    assert _records(output_dir)["train/loss"][-1][0] == 40  # its records are in the file
    resumed = _resume(overrides)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(output_dir, straight_dir)
    _assert_same_records(output_dir, straight_dir)


def test_missing_resume_path_is_an_error_not_a_fresh_start(data_dir, tmp_path):
    for resume in ("auto", str(tmp_path / "nowhere")):
        with pytest.raises(CheckpointError, match="Global.resume"):
            train(load_config("configs/mynet_cifar10.yml",
                              _overrides(data_dir, str(tmp_path), f"Global.resume={resume}")))
    assert not os.path.exists(tmp_path / "last_model.pdparams")


def test_optimizer_state_maps_onto_a_fresh_processes_parameter_names(tmp_path):
    paddle.seed(0)
    x = paddle.randn([5, 3])

    def step(model, optimizer):
        model(x).square().sum().backward()
        optimizer.step()
        optimizer.clear_grad()

    first = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.Linear(4, 2))
    optimizer = paddle.optimizer.Adam(learning_rate=0.1, parameters=first.parameters())
    step(first, optimizer)
    save_atomic(portable_optimizer_state(optimizer, first), str(tmp_path / "optimizer.pdopt"))
    portable = load_state_dict(str(tmp_path / "optimizer.pdopt"))
    assert "@0.weight@_moment1_0" in portable
    paddle.nn.Linear(7, 7)  # shifts the generated names, as other code in a fresh process would
    second = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.Linear(4, 2))
    assert second[0].weight.name != first[0].weight.name
    second.set_state_dict(first.state_dict())
    restored = paddle.optimizer.Adam(learning_rate=0.1, parameters=second.parameters())
    restore_optimizer_state(restored, second, portable, "test")
    step(first, optimizer)
    step(second, restored)  # continues with the saved Adam moments: the same update as the original
    for key, value in first.state_dict().items():
        np.testing.assert_allclose(second.state_dict()[key].numpy(), value.numpy(), rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_nan_loss_stops_with_the_step_and_the_last_checkpoint(data_dir, tmp_path, engine):
    overrides = _overrides(data_dir, str(tmp_path), "Optimizer.learning_rate=1.0e+30", "Global.epochs=2",
                           f"Global.engine={engine}")
    with pytest.raises(NonFiniteLoss, match=r"became (nan|inf) at step \d+.*Last good checkpoint"):
        train(load_config("configs/mynet_cifar10.yml", overrides))


def _finite(path):
    return all(np.isfinite(value.numpy()).all() for value in load_state_dict(path).values())


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_nan_weights_stop_the_run_even_when_the_loss_stays_finite(data_dir, tmp_path, monkeypatch, engine):
    # What some CPUs do (relu maps NaN to 0): weights NaN, yet constant logits keep the loss at ln 10.
    build_model = components.build_model
    forward_calls = []

    def diverging_model(config):
        model = build_model(config)

        def poison(layer, inputs):
            forward_calls.append(layer.training)
            if len(forward_calls) == 45:  # a training step of epoch 1
                layer.conv1.weight.set_value(paddle.full(layer.conv1.weight.shape, float("nan")))

        model.register_forward_pre_hook(poison)
        model.register_forward_post_hook(lambda layer, inputs, logits: paddle.nan_to_num(logits, nan=0.0))
        return model

    monkeypatch.setattr(components, "build_model", diverging_model)
    output_dir = tmp_path / engine
    overrides = _overrides(data_dir, str(output_dir), f"Global.engine={engine}", "Global.save_unit=epoch",
                           "Global.save_interval=1", "Global.eval_per_epoch=true")
    with pytest.raises(NonFiniteLoss, match=r"weights became nan or inf at step \d+ \(conv1.weight.*Last good "
                                            r"checkpoint: .*step_00000030"):
        train(load_config("configs/mynet_cifar10.yml", overrides))
    written = [os.path.join(folder, name) for folder, _, names in os.walk(output_dir) for name in names
               if name.endswith(".pdparams")]
    assert os.path.join(str(output_dir), "best_model.pdparams") in written
    assert written and all(_finite(path) for path in written), written
    assert not os.path.exists(output_dir / "last_model.pdparams") and not os.path.exists(output_dir / "results.json")


def test_a_run_shorter_than_eval_steps_evaluates_at_its_last_step(data_dir, tmp_path, capsys):
    results = train(load_config("configs/model_resnet18.yml", _overrides(data_dir, str(tmp_path), "Global.epochs=1",
                                                                         "DataLoader.Train.subset=[0, 24]")))
    out = capsys.readouterr().out
    assert "Global.eval_steps: 3000 is more than the 3 steps of this run" in out
    assert out.count("[Evaluate]  dev score") == 1 and out.count("[Test] accuracy/loss: ") == 1
    assert os.path.isfile(tmp_path / "best_model.pdparams") and results["best_dev_score"] > 0
    assert json.load(open(tmp_path / "history.json"))[0]["dev_accuracy"] == results["best_dev_score"]


def test_a_checkpoint_resumes_only_on_the_engine_that_wrote_it(data_dir, tmp_path):
    hapi = ["Global.engine=hapi", "Global.save_unit=epoch", "Global.save_interval=1", "Global.epochs=1"]
    train(load_config("configs/mynet_cifar10.yml", _overrides(data_dir, str(tmp_path), *hapi)))
    with pytest.raises(CheckpointError, match=r"written by the hapi engine and resumes only on it: add -o "
                                              r"Global.engine=hapi"):
        train(load_config("configs/mynet_cifar10.yml", _overrides(data_dir, str(tmp_path), "Global.resume=auto")))


def test_hapi_killed_then_resumed_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    hapi = ["Global.engine=hapi", "Global.save_unit=epoch", "Global.save_interval=1"]
    straight_dir = str(tmp_path / "straight")
    train(load_config("configs/mynet_cifar10.yml", _overrides(data_dir, straight_dir, *hapi)))
    output_dir = str(tmp_path / "killed")
    killed = _train_with_signal("SIGKILL", 40, _overrides(data_dir, output_dir, *hapi))  # in epoch 1
    assert killed.returncode == -9 and _latest_step(output_dir) == 30  # the checkpoint after epoch 0
    resumed = _resume(_overrides(data_dir, output_dir, *hapi))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    _assert_same_run(output_dir, straight_dir)
    _assert_same_records(output_dir, straight_dir)
