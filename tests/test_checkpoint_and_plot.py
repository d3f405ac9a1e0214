import os

import matplotlib.image
import numpy as np
import paddle
import pytest

from paddle_cls import Model_ResNet18, plot_training_loss_acc
from paddle_cls.errors import CheckpointError
from paddle_cls.utils.weights import load_model_file, save_atomic


def _tiny():
    return paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.ReLU(), paddle.nn.Linear(3, 2))


def test_save_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "best_model.pdparams")
    first, second = _tiny(), _tiny()
    save_atomic(first.state_dict(), path)
    save_atomic(second.state_dict(), path)
    assert os.listdir(tmp_path) == ["best_model.pdparams"]
    loaded = _tiny()
    load_model_file(loaded, path)
    np.testing.assert_array_equal(loaded.state_dict()["0.weight"].numpy(), second.state_dict()["0.weight"].numpy())


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "best_model.pdparams")
    good = _tiny()
    save_atomic(good.state_dict(), path)

    def crash(obj, target):
        open(target, "wb").write(b"half a fi")
        raise KeyboardInterrupt

    monkeypatch.setattr(paddle, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_atomic(_tiny().state_dict(), path)
    monkeypatch.undo()
    loaded = _tiny()
    load_model_file(loaded, path)
    np.testing.assert_array_equal(loaded.state_dict()["2.bias"].numpy(), good.state_dict()["2.bias"].numpy())
    assert os.listdir(tmp_path) == ["best_model.pdparams"]


def test_mismatched_checkpoint_lists_the_keys(tmp_path):
    path = str(tmp_path / "m.pdparams")
    paddle.save(Model_ResNet18(num_classes=10).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"shape mismatch: net.7.weight \(file \[512, 10\], model \[512, 5\]\)"):
        load_model_file(Model_ResNet18(num_classes=5), path)
    with pytest.raises(CheckpointError, match=r"missing: 0.weight.*unexpected: net.0.0.weight"):
        load_model_file(_tiny(), path)


def test_corrupt_or_missing_checkpoint(tmp_path):
    path = tmp_path / "m.pdparams"
    paddle.save(_tiny().state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model_file(_tiny(), str(path))
    with pytest.raises(CheckpointError, match="not found"):
        load_model_file(_tiny(), str(tmp_path / "none.pdparams"))


class _History:
    train_step_losses = [(step, 2.0 / (step + 1)) for step in range(100)]
    dev_losses = [(30, 0.9), (60, 0.7), (99, 0.6)]
    dev_scores = [0.5, 0.6, 0.65]


def test_plot_training_loss_acc_draws_both_panels(tmp_path):
    path = str(tmp_path / "loss_acc.png")
    fig = plot_training_loss_acc(_History(), path, sample_step=20)
    loss_axes, acc_axes = fig.axes
    train_line, dev_line = loss_axes.get_lines()
    assert list(train_line.get_xdata()) == [0, 20, 40, 60, 80]
    assert list(dev_line.get_ydata()) == [0.9, 0.7, 0.6]
    assert list(acc_axes.get_lines()[0].get_ydata()) == [0.5, 0.6, 0.65]
    image = matplotlib.image.imread(path)
    assert image.shape[1] == 1600 and image.shape[0] == 600  # figsize (16, 6) at 100 dpi
