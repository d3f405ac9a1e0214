"""Checkpoints survive crashes; a resumed run ends where an uninterrupted one does."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from paddle_cls.config import load_config
from paddle_cls.engine import train
from paddle_cls.engine.checkpointing import portable_optimizer_state, restore_optimizer_state
from paddle_cls.errors import CheckpointError, ConfigError
from paddle_cls.utils.checkpoint import load_state_dict, save_atomic

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _overrides(data_dir, output_dir, *extra):
    return [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
            "Global.epochs=3", "Global.log_steps=10", "Global.save_unit=step", "Global.save_interval=4",
            "DataLoader.Train.subset=[0, 240]", "DataLoader.Train.batch_size=8", "DataLoader.Eval.subset=[0, 64]",
            "Optimizer.learning_rate={name: CosineAnnealingDecay, learning_rate: 0.003, T_max: 90}", *extra]


def _args(overrides):
    return [arg for override in overrides for arg in ("-o", override)]


def _start(overrides):
    return subprocess.Popen([sys.executable, "tools/train.py", "-c", "configs/mynet_cifar10.yml", *_args(overrides)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _latest_step(output_dir):
    try:
        return int(open(os.path.join(output_dir, "checkpoints", "latest")).read().strip()[5:])
    except (OSError, ValueError):
        return -1


def _wait_for_step(process, output_dir, step, best_model_checks):
    deadline = time.time() + 120
    while _latest_step(output_dir) < step:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline
        best = os.path.join(output_dir, "best_model.pdparams")
        if os.path.exists(best):  # the best model is loadable at every moment
            load_state_dict(best)
            best_model_checks.append(best)
        time.sleep(0.02)


def _weights(output_dir):
    return {k: v.numpy() for k, v in load_state_dict(os.path.join(output_dir, "last_model.pdparams")).items()}


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("straight"))
    results = train(load_config("configs/mynet_cifar10.yml", _overrides(data_dir, output_dir)))
    return output_dir, results


def _assert_same_run(resumed_dir, straight_dir):
    straight, resumed = _weights(straight_dir), _weights(resumed_dir)
    for key in straight:
        np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-5, atol=1e-6, err_msg=key)
    read = lambda d: __import__("json").load(open(os.path.join(d, "history.json")))
    for a, b in zip(read(resumed_dir), read(straight_dir)):
        assert a["epoch"] == b["epoch"]
        for field in ("train_loss", "dev_loss", "dev_accuracy", "lr"):
            assert a[field] == pytest.approx(b[field], rel=1e-5), field
    assert len(read(resumed_dir)) == 3


def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(uninterrupted, data_dir, tmp_path):
    straight_dir, straight_results = uninterrupted
    output_dir = str(tmp_path)
    process = _start(_overrides(data_dir, output_dir))
    checks = []
    _wait_for_step(process, output_dir, 36, checks)  # mid-epoch 1 (30 steps an epoch)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    killed_at = _latest_step(output_dir)
    assert 36 <= killed_at < 90  # killed mid-run
    load_state_dict(os.path.join(output_dir, "best_model.pdparams"))
    resumed = subprocess.run([sys.executable, "tools/train.py", "-c", "configs/mynet_cifar10.yml",
                              *_args(_overrides(data_dir, output_dir, "Global.resume=auto"))],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and f"at step {killed_at}" in resumed.stdout
    _assert_same_run(output_dir, straight_dir)
    log = open(os.path.join(output_dir, "train.log")).read()
    assert log.count("[Train] Training done!") == 1 and "step: 80/90" in log  # the step counter continued


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(uninterrupted, data_dir, tmp_path):
    straight_dir, _ = uninterrupted
    output_dir = str(tmp_path)
    process = _start(_overrides(data_dir, output_dir, "Global.save_interval=1000"))
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(output_dir, "history.json")):  # after the first epoch
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "training stopped by Ctrl-C at step" in err and "Global.resume=auto" in err and "Traceback" not in err
    stopped_at = _latest_step(output_dir)
    assert 30 < stopped_at < 90
    resumed = subprocess.run([sys.executable, "tools/train.py", "-c", "configs/mynet_cifar10.yml",
                              *_args(_overrides(data_dir, output_dir, "Global.save_interval=1000",
                                                "Global.resume=auto"))],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(output_dir, straight_dir)


def test_missing_resume_path_is_an_error_not_a_fresh_start(data_dir, tmp_path):
    for resume in ("auto", str(tmp_path / "nowhere")):
        with pytest.raises(CheckpointError, match="Global.resume"):
            train(load_config("configs/mynet_cifar10.yml", _overrides(data_dir, str(tmp_path), f"Global.resume={resume}")))
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
    from paddle_cls.engine.runner import NonFiniteLoss

    overrides = _overrides(data_dir, str(tmp_path), "Optimizer.learning_rate=1.0e+30", "Global.epochs=2",
                           f"Global.engine={engine}")
    with pytest.raises(NonFiniteLoss, match=r"became (nan|inf) at step \d+.*Last good checkpoint"):
        train(load_config("configs/mynet_cifar10.yml", overrides))


def test_eval_steps_beyond_the_run_is_an_error(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"Global.eval_steps: 3000 is more than the 90 steps"):
        train(load_config("configs/model_resnet18.yml", _overrides(data_dir, str(tmp_path))))


def test_hapi_killed_then_resumed_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    hapi = ["Global.engine=hapi", "Global.save_unit=epoch", "Global.save_interval=1"]
    straight_dir = str(tmp_path / "straight")
    train(load_config("configs/mynet_cifar10.yml", _overrides(data_dir, straight_dir, *hapi)))
    output_dir = str(tmp_path / "killed")
    process = _start(_overrides(data_dir, output_dir, *hapi))
    _wait_for_step(process, output_dir, 30, [])  # the checkpoint after epoch 0
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert 30 <= _latest_step(output_dir) < 90
    resumed = subprocess.run([sys.executable, "tools/train.py", "-c", "configs/mynet_cifar10.yml",
                              *_args(_overrides(data_dir, output_dir, *hapi, "Global.resume=auto"))],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    _assert_same_run(output_dir, straight_dir)
