"""One callback protocol (Paddle's) on both engines: the user's callbacks and paddle.callbacks.EarlyStopping."""
import json

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddle_cls import Accuracy, RunnerV3
from paddle_cls.config import load_config
from paddle_cls.engine import train
from paddle_cls.errors import NonFiniteLoss

ENGINES = ["runner", "hapi"]


def _config(data_dir, output_dir, engine, *extra):
    return load_config("configs/mynet_cifar10.yml", [
        f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
        f"Global.engine={engine}", "Global.epochs=3", "Global.progress=false", "DataLoader.Train.subset=[0, 48]",
        "DataLoader.Train.batch_size=16", "DataLoader.Eval.subset=[0, 32]", "DataLoader.Test.subset=[0, 32]", *extra])


class Calls(paddle.callbacks.Callback):
    """A user's callback: what it was called with."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", None, dict(logs)))
        self.network_is_a_layer = isinstance(self.model.network, paddle.nn.Layer)

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch, dict(logs)))

    def on_train_batch_end(self, step, logs=None):
        assert all(isinstance(value, (int, float)) for value in logs.values())  # plain numbers, as fit gives
        self.calls.append(("batch_end", step, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_eval_end(self, logs=None):
        self.calls.append(("eval_end", None, dict(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", None, dict(logs)))

    def of(self, hook):
        return [(where, logs) for name, where, logs in self.calls if name == hook]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_users_callback_gets_the_same_calls_and_logs_on_both_engines(data_dir, tmp_path, engine):
    calls = Calls()
    train(_config(data_dir, str(tmp_path), engine), callbacks=[calls])
    history = json.load(open(tmp_path / "history.json"))
    assert calls.network_is_a_layer and calls.params["epochs"] == 3 and calls.params["steps"] == 3
    assert [epoch for epoch, _ in calls.of("epoch_begin")] == [0, 1, 2]
    assert [logs["global_step"] for _, logs in calls.of("epoch_begin")] == [0, 3, 6]
    batches = calls.of("batch_end")
    assert [step for step, _ in batches] == [0, 1, 2] * 3
    assert [logs["global_step"] for _, logs in batches] == list(range(9))
    assert all(set(logs) == {"loss", "lr", "global_step"} and logs["lr"] == pytest.approx(1e-3) for _, logs in batches)
    # the epoch's loss is the mean of its steps' losses, and is what the history holds
    for epoch, logs in calls.of("epoch_end"):
        steps = [logs["loss"] for _, logs in batches[3 * epoch:3 * epoch + 3]]
        assert logs["loss"] == pytest.approx(np.mean(steps), rel=1e-5)
        assert logs["loss"] == pytest.approx(history[epoch]["train_loss"], rel=1e-6)
        assert logs["global_step"] == 3 * (epoch + 1)
    evaluations = [logs for _, logs in calls.of("eval_end")]
    assert [logs["global_step"] for logs in evaluations] == [2, 5, 8]
    assert [logs["loss"] for logs in evaluations] == pytest.approx([row["dev_loss"] for row in history], rel=1e-6)
    assert [logs["Accuracy"] for logs in evaluations] == pytest.approx([row["dev_accuracy"] for row in history])
    assert calls.calls[0][0] == "train_begin" and calls.calls[-1][0] == "train_end"
    # as paddle.Model.fit: each epoch's evaluation after its on_epoch_end, on both engines
    order = [name for name, _, _ in calls.calls if name in ("epoch_begin", "epoch_end", "eval_end")]
    assert order == ["epoch_begin", "epoch_end", "eval_end"] * 3


@pytest.mark.parametrize("engine", ENGINES)
def test_paddle_early_stopping_stops_either_engine_and_keeps_its_best_model(data_dir, tmp_path, engine):
    # patience 0: the first evaluation is an improvement (saved), and the wait is already over
    stopper = paddle.callbacks.EarlyStopping(monitor="loss", mode="min", patience=0, verbose=0)
    results = train(_config(data_dir, str(tmp_path), engine), callbacks=[stopper])
    history = json.load(open(tmp_path / "history.json"))
    assert [row["epoch"] for row in history] == [0]  # 3 epochs asked for
    best = tmp_path / "early_stopping" / "best_model.pdparams"
    assert best.is_file() and (tmp_path / "early_stopping" / "best_model.pdopt").is_file()
    assert stopper.best_value == pytest.approx(history[0]["dev_loss"], rel=1e-6)
    assert results["test_samples"] == 32  # the run still ends with its test


@pytest.mark.parametrize("engine", ENGINES)
def test_early_stopping_that_never_improves_on_its_baseline_waits_its_patience(data_dir, tmp_path, engine):
    stopper = paddle.callbacks.EarlyStopping(monitor="Accuracy", mode="max", patience=2, baseline=1.5, verbose=0)
    train(_config(data_dir, str(tmp_path), engine, "Global.epochs=4"), callbacks=[stopper])
    history = json.load(open(tmp_path / "history.json"))
    assert [row["epoch"] for row in history] == [0, 1]
    assert not (tmp_path / "early_stopping").exists()  # nothing beat the baseline


def test_a_callback_that_is_not_a_paddle_callback_is_refused_before_anything_is_written(data_dir, tmp_path):
    output_dir = tmp_path / "run"
    with pytest.raises(TypeError, match="not a paddle.callbacks.Callback"):
        train(_config(data_dir, str(output_dir), "runner"), callbacks=[lambda logs: None])
    assert not output_dir.exists()


def _runner_and_loader(seed=0):
    paddle.seed(seed)
    model = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(12, 3))
    optimizer = paddle.optimizer.Momentum(learning_rate=0.1, parameters=model.parameters())
    rng = np.random.RandomState(seed)
    data = [(rng.randn(12).astype("float32"), np.int64(rng.randint(3))) for _ in range(40)]
    loader = paddle.io.DataLoader(data, batch_size=8)
    return RunnerV3(model, optimizer, F.cross_entropy, Accuracy()), loader


def test_the_course_runner_takes_early_stopping_and_stops_after_the_epoch_of_its_evaluation(tmp_path):
    runner, loader = _runner_and_loader()
    stopper = paddle.callbacks.EarlyStopping(monitor="Accuracy", mode="max", patience=0, verbose=0)
    runner.train(loader, loader, num_epochs=4, log_steps=0, eval_steps=7, callbacks=[stopper], progress=False,
                 save_path=str(tmp_path / "best_model.pdparams"))
    # steps 0-4 are epoch 0; the first evaluation (step 7, in epoch 1) stops the run at the end of epoch 1
    assert len(runner.train_epoch_losses) == 2 and runner.global_step == 10 and runner.stop_training


def test_the_course_runner_stops_on_a_nan_loss_at_its_step_without_being_asked():
    runner, loader = _runner_and_loader()
    calls = []

    def loss_going_nan_at_step_2(logits, labels):
        calls.append(1)
        return F.cross_entropy(logits, labels) * (float("nan") if len(calls) == 3 else 1.0)

    runner.loss_fn = loss_going_nan_at_step_2
    with pytest.raises(NonFiniteLoss, match=r"became nan at step 2\b"):
        runner.train(loader, num_epochs=3, log_steps=0, progress=False)
    assert runner.global_step == 2 and runner.train_step_losses[-1][0] == 2  # found at that step, not later


def test_runner_save_writes_what_paddle_model_save_writes(tmp_path):
    runner, loader = _runner_and_loader()
    runner.train(loader, num_epochs=1, log_steps=0, progress=False)
    runner.save(str(tmp_path / "snapshot"))
    weights = paddle.load(str(tmp_path / "snapshot.pdparams"))
    assert set(weights) == set(runner.model.state_dict())
    np.testing.assert_array_equal(weights["1.weight"].numpy(), runner.model[1].weight.numpy())
    moments = paddle.load(str(tmp_path / "snapshot.pdopt"))
    assert set(moments) == set(runner.optimizer.state_dict()) and any("velocity" in key for key in moments)


def test_a_resume_at_an_epoch_boundary_continues_the_epoch_losses_of_an_uninterrupted_run(data_dir, tmp_path):
    straight = train(_config(data_dir, str(tmp_path / "straight"), "runner", "Global.epochs=2"))
    assert straight["test_samples"] == 32
    first = tmp_path / "resumed"
    train(_config(data_dir, str(first), "runner", "Global.epochs=1"))
    train(_config(data_dir, str(first), "runner", "Global.epochs=2", "Global.resume=auto"))
    expected = [row["train_loss"] for row in json.load(open(tmp_path / "straight" / "history.json"))]
    resumed = [row["train_loss"] for row in json.load(open(first / "history.json"))]
    np.testing.assert_allclose(resumed, expected, rtol=1e-5)
