import re

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import course_reference as course
from paddle_cls import Accuracy, CIFAR10Dataset, RunnerV3
from paddle_cls.errors import ConfigError


def _small_model():
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3, stride=2), paddle.nn.ReLU(), paddle.nn.Flatten(),
                                paddle.nn.Linear(4 * 15 * 15, 10))


def _run(runner_cls, metric, cifar_folder, save_path, capsys, epochs=2):
    paddle.seed(3)
    np.random.seed(3)  # the shuffling sampler draws from NumPy
    model = _small_model()
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters(), weight_decay=0.005)
    runner = runner_cls(model, optimizer, F.cross_entropy, metric)
    train_loader = paddle.io.DataLoader(CIFAR10Dataset(cifar_folder, "train"), batch_size=32, shuffle=True)
    dev_loader = paddle.io.DataLoader(CIFAR10Dataset(cifar_folder, "dev"), batch_size=32)
    capsys.readouterr()
    runner.train(train_loader, dev_loader, num_epochs=epochs, log_steps=3, eval_steps=5, save_path=save_path)
    return runner, capsys.readouterr().out, dev_loader


def test_runner_matches_the_course_runner(cifar_folder, tmp_path, capsys):
    ref, ref_out, _ = _run(course.RunnerV3, course.Accuracy(), cifar_folder, str(tmp_path / "ref.pdparams"), capsys)
    ours, out, dev_loader = _run(RunnerV3, Accuracy(), cifar_folder, str(tmp_path / "ours.pdparams"), capsys)
    assert out == ref_out
    lines = out.splitlines()
    assert lines[0] == f"[Train] epoch: 0/2, step: 0/16, loss: {ref.train_step_losses[0][1]:.5f}"
    assert lines[-1] == "[Train] Training done!"
    # Evaluations at steps 5, 10, 15 (the last step, 16 steps in all).
    assert [step for step, _ in ours.dev_losses] == [5, 10, 15]
    assert len(ours.train_step_losses) == 16 and all(isinstance(v, float) for _, v in ours.train_step_losses)
    np.testing.assert_allclose([v for _, v in ours.train_step_losses], [v for _, v in ref.train_step_losses], rtol=1e-6)
    np.testing.assert_allclose(ours.train_epoch_losses, ref.train_epoch_losses, rtol=1e-6)
    np.testing.assert_allclose([v for _, v in ours.dev_losses], [v for _, v in ref.dev_losses], rtol=1e-5)
    assert ours.dev_scores == ref.dev_scores and ours.best_score == ref.best_score == max(ours.dev_scores)
    assert ours.best_score > 0.3  # learnable fixture: chance is 0.1
    # The best model was saved and reloads to the same dev score.
    fresh = RunnerV3(_small_model(), None, F.cross_entropy, Accuracy())
    fresh.load_model(str(tmp_path / "ours.pdparams"))
    assert fresh.evaluate(dev_loader)[0] == pytest.approx(ours.best_score)
    # Evaluating from outside training leaves the history alone.
    assert len(fresh.dev_scores) == 0
    before = list(ours.dev_scores)
    ours.evaluate(dev_loader)
    assert ours.dev_scores == before


def test_best_model_updates_only_on_improvement(cifar_folder, tmp_path, capsys):
    runner, out, _ = _run(RunnerV3, Accuracy(), cifar_folder, str(tmp_path / "best.pdparams"), capsys, epochs=3)
    updates = re.findall(r"updated: ([\d.]+) --> ([\d.]+)", out)
    scores = [f"{s:.5f}" for s in runner.dev_scores]
    running_best, expected = 0.0, []
    for score in runner.dev_scores:
        if score > running_best:
            expected.append((f"{running_best:.5f}", f"{score:.5f}"))
            running_best = score
    assert updates == expected and len(scores) == 5


def test_no_autograd_graph_is_kept_between_steps(cifar_folder, tmp_path, capsys):
    recorded = []
    runner = RunnerV3(_small_model(), None, F.cross_entropy, Accuracy())
    runner.optimizer = paddle.optimizer.SGD(learning_rate=0.01, parameters=runner.model.parameters())
    loader = paddle.io.DataLoader(CIFAR10Dataset(cifar_folder, "dev"), batch_size=16)
    runner.train(loader, num_epochs=1, log_steps=0,
                 custom_print_log=lambda r: recorded.append(len(r.train_step_losses)))
    assert recorded == [1, 2, 3, 4]  # histories are readable, as floats, inside custom_print_log
    assert all(not isinstance(v, paddle.Tensor) for _, v in runner.train_step_losses)
    assert len(runner.train_epoch_losses) == 1 and isinstance(runner.train_epoch_losses[0], float)


def test_eval_steps_without_dev_loader_or_metric_is_an_error(cifar_folder):
    loader = paddle.io.DataLoader(CIFAR10Dataset(cifar_folder, "dev"), batch_size=16)
    model = _small_model()
    with pytest.raises(RuntimeError, match="dev_loader can not be None"):
        RunnerV3(model, None, F.cross_entropy, Accuracy()).train(loader, None, num_epochs=1, eval_steps=2)
    with pytest.raises(RuntimeError, match="Metric can not be None"):
        RunnerV3(model, None, F.cross_entropy, None).train(loader, loader, num_epochs=1, eval_steps=2)


def test_predict_returns_logits_in_eval_mode(cifar_folder):
    runner = RunnerV3(_small_model(), None, F.cross_entropy, Accuracy())
    runner.model.train()
    logits = runner.predict(paddle.zeros([5, 3, 32, 32]))
    assert list(logits.shape) == [5, 10] and not runner.model.training


def _always_class_2():
    """A model that predicts class 2 for every input, whatever the optimizer does with a learning rate of 0."""
    model = paddle.nn.Linear(4, 3)
    model.weight.set_value(paddle.zeros([4, 3]))
    model.bias.set_value(paddle.to_tensor([0.0, 0.0, 1.0]))
    return model


def _batches(count=2, label=0):
    paddle.seed(0)
    return [(paddle.rand([5, 4]), paddle.full([5], label, dtype="int64")) for _ in range(count)]


def test_a_run_whose_dev_score_stays_zero_keeps_its_first_model(tmp_path, capsys):
    model = _always_class_2()
    runner = RunnerV3(model, paddle.optimizer.SGD(0.0, parameters=model.parameters()), F.cross_entropy, Accuracy())
    path = tmp_path / "best.pdparams"
    runner.train(_batches(), _batches(), num_epochs=2, log_steps=0, eval_steps=1, save_path=str(path), progress=False)
    out = capsys.readouterr().out
    assert runner.dev_scores == [0.0, 0.0, 0.0] and runner.best_score == 0.0
    assert path.is_file()  # the course's rule (save when the score beats 0) never saved one
    assert out.count("[Evaluate] best model saved: the first evaluation (dev score 0.00000)") == 1
    assert "updated" not in out


class _RisingNegativeScore:
    """A metric whose score is below zero and rises at each evaluation (a negated loss, say)."""

    def __init__(self):
        self.calls = 0

    def reset(self):
        pass

    def update(self, logits, labels):
        pass

    def accumulate(self):
        self.calls += 1
        return -4.0 + self.calls


def test_a_score_below_zero_still_keeps_a_best_model_and_updates_it(tmp_path, capsys):
    model = _always_class_2()
    runner = RunnerV3(model, paddle.optimizer.SGD(0.0, parameters=model.parameters()), F.cross_entropy,
                      _RisingNegativeScore())
    path = tmp_path / "best.pdparams"
    runner.train(_batches(), _batches(), num_epochs=2, log_steps=0, eval_steps=1, save_path=str(path), progress=False)
    out = capsys.readouterr().out
    assert runner.dev_scores == [-3.0, -2.0, -1.0] and runner.best_score == -1.0 and path.is_file()
    assert "best model saved: the first evaluation (dev score -3.00000)" in out
    updates = re.findall(r"updated: (-?[\d.]+) --> (-?[\d.]+)", out)
    assert updates == [("-3.00000", "-2.00000"), ("-2.00000", "-1.00000")]


def test_misspelt_keywords_are_refused_naming_the_valid_ones():
    model = _always_class_2()
    runner = RunnerV3(model, paddle.optimizer.SGD(0.1, parameters=model.parameters()), F.cross_entropy, Accuracy())
    with pytest.raises(TypeError, match=r"^RunnerV3.train: unknown keyword 'num_epoch' \(valid: train_loader, "
                                        r"dev_loader, num_epochs, log_steps, eval_steps, save_path, custom_print_log"):
        runner.train(_batches(), num_epoch=3)
    with pytest.raises(TypeError, match=r"^RunnerV3.__init__: unknown keyword 'amp_levl' \(valid: .*amp_level"):
        RunnerV3(model, None, F.cross_entropy, Accuracy(), amp_levl="O1")
    with pytest.raises(TypeError, match=r"^RunnerV3.evaluate: unknown keyword 'globalstep' \(valid: dev_loader, "
                                        r"global_step\)"):
        runner.evaluate(_batches(), globalstep=3)
    with pytest.raises(TypeError, match=r"^RunnerV3.predict: unknown keyword 'batch_size' \(valid: x\)"):
        runner.predict(paddle.zeros([2, 4]), batch_size=2)
    assert runner.global_step == 0 and runner.train_step_losses == []  # nothing ran


@pytest.mark.parametrize("num_epochs", [None, 0, -1, 1.5, True])
def test_train_refuses_to_train_nothing(num_epochs):
    model = _always_class_2()
    before = model.weight.numpy().copy()
    runner = RunnerV3(model, paddle.optimizer.SGD(0.1, parameters=model.parameters()), F.cross_entropy, Accuracy())
    with pytest.raises(ConfigError, match=rf"^RunnerV3.train: num_epochs must be a whole number >= 1, "
                                          rf"got {re.escape(repr(num_epochs))}$"):
        runner.train(_batches(), num_epochs=num_epochs) if num_epochs is not None else runner.train(_batches())
    np.testing.assert_array_equal(model.weight.numpy(), before)


def test_a_start_step_past_the_end_is_refused():
    model = _always_class_2()
    runner = RunnerV3(model, paddle.optimizer.SGD(0.1, parameters=model.parameters()), F.cross_entropy, Accuracy())
    with pytest.raises(ConfigError, match=r"start_step 4 is past the last of 4 steps: nothing left to train"):
        runner.train(_batches(), num_epochs=2, start_step=4)
    runner.train(_batches(), num_epochs=2, start_step=3, log_steps=0, progress=False)  # the last step is left
    assert [step for step, _ in runner.train_step_losses] == [3]
