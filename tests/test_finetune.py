"""Fine-tuning: pretrained weights from a file, a checkpoint or Paddle's cache, a new classifier head, a frozen
or slower backbone, and label smoothing, on real images (scikit-learn's digits)."""
import os

import numpy as np
import paddle
import pytest

from own_images import digits_config
from paddle_cls.engine import train
from paddle_cls.engine.components import build_components, build_model
from paddle_cls.errors import CheckpointError, ConfigError
from paddle_cls.losses import CrossEntropyLoss
from paddle_cls.models import MODELS
from paddle_cls.models.finetune import load_pretrained, paddle_weights_file

THREE = ("four", "one", "seven")


@pytest.fixture(scope="module")
def ten_class_weights(digits, tmp_path_factory):
    """The best model of a short MyNet run on all ten digit classes."""
    tmp = tmp_path_factory.mktemp("ten")
    results = train(digits_config(tmp, digits, epochs=2))
    assert results["test_accuracy"] > 0.8
    return str(tmp / "out" / "best_model.pdparams")


def _three_class_folders(digits, root):
    """A subset of three classes, built as people build one: by linking class folders."""
    for split in ("train", "test"):
        os.makedirs(root / split)
        for name in THREE:
            os.symlink(os.path.join(digits, split, name), root / split / name)
    return str(root)


def test_a_fine_tune_from_ten_classes_to_three_keeps_the_backbone(digits, ten_class_weights, tmp_path, caplog):
    subset = _three_class_folders(digits, tmp_path / "three")
    config = digits_config(tmp_path, subset, f"Global.pretrained_model={ten_class_weights}",
                           "Arch.freeze_backbone=true", "Optimizer.learning_rate=0.02", epochs=2)
    saved = paddle.load(ten_class_weights)
    model = build_components(config).model
    assert model.linear2.weight.shape == [64, 3]
    for name, value in model.state_dict().items():
        if not name.startswith("linear2."):
            np.testing.assert_array_equal(value.numpy(), saved[name].numpy())
    assert "the classifier head is new for this data (linear2.weight [64, 10] -> [64, 3]" in caplog.text

    results = train(config)
    assert results["test_accuracy"] >= 0.9
    tuned = paddle.load(os.path.join(config["Global"]["output_dir"], "best_model.pdparams"))
    assert all(np.array_equal(tuned[name].numpy(), saved[name].numpy()) for name in saved if "linear2" not in name)
    assert not np.allclose(tuned["linear2.bias"].numpy(), 0)  # the head learnt


def test_weights_that_do_not_fit_beyond_the_head_are_refused(ten_class_weights, tmp_path):
    lenet = tmp_path / "lenet.pdparams"
    paddle.save(MODELS["LeNet"](num_classes=10).state_dict(), str(lenet))
    with pytest.raises(CheckpointError, match=r"lenet.pdparams is not a MyNet model file: only 0 of its weights fit"):
        load_pretrained(MODELS["MyNet"](num_classes=3), str(lenet), "MyNet")
    state = paddle.load(ten_class_weights)
    state["conv2.weight"] = paddle.zeros([8, 32, 3, 3])
    state["extra.weight"] = paddle.zeros([2])
    odd = tmp_path / "odd.pdparams"
    paddle.save(state, str(odd))
    with pytest.raises(CheckpointError, match=r"unexpected: extra.weight; shape mismatch: conv2.weight \(file \[8, 32"):
        load_pretrained(MODELS["MyNet"](num_classes=3), str(odd), "MyNet")


def test_paddle_weights_come_from_its_cache_and_offline_the_error_says_where_to_put_them(tmp_path, monkeypatch):
    import paddle.utils.download as download

    def offline(url, md5sum=None):
        raise RuntimeError(f"Download from {url} failed. Retry limit reached")

    monkeypatch.setattr(download, "WEIGHTS_HOME", str(tmp_path / "weights"))
    monkeypatch.setattr(download, "get_weights_path_from_url", offline)
    with pytest.raises(ConfigError, match=r"copy it to .*weights/resnet18.pdparams \(folder .*weights\)"):
        paddle_weights_file("resnet18")
    with pytest.raises(ConfigError, match=r"Paddle has ImageNet weights for resnet18, .* not MyNet"):
        paddle_weights_file("MyNet")

    os.makedirs(tmp_path / "weights")  # the file copied there from a machine with internet
    paddle.save(MODELS["resnet18"](num_classes=1000).state_dict(), str(tmp_path / "weights" / "resnet18.pdparams"))
    model = MODELS["resnet18"](num_classes=5)
    loaded = load_pretrained(model, paddle_weights_file("resnet18"), "resnet18")
    assert loaded["head"] == ["fc.weight", "fc.bias"] and len(loaded["loaded"]) == len(model.state_dict()) - 2


def test_a_frozen_backbone_keeps_its_batch_norm_statistics_and_a_slower_one_moves_less(digits, tmp_path):
    config = digits_config(tmp_path, digits, "Arch.name=resnet18", "Arch.freeze_backbone=true")
    model = build_components(config).model
    before = {name: value.numpy().copy() for name, value in model.state_dict().items()}
    model.train()
    model(paddle.randn([4, 3, 32, 32]) * 3 + 1)
    after = model.state_dict()
    assert all(np.array_equal(after[name].numpy(), before[name]) for name in before if "_mean" in name)

    slow = build_components(digits_config(tmp_path, digits, "Arch.backbone_lr_mult=0.0")).model
    optimizer = paddle.optimizer.SGD(learning_rate=0.1, parameters=slow.parameters())
    start = {name: value.numpy().copy() for name, value in slow.state_dict().items()}
    loss = paddle.nn.functional.cross_entropy(slow(paddle.randn([8, 3, 32, 32])), paddle.arange(8).reshape([8, 1]))
    loss.backward()
    optimizer.step()
    moved = {name for name, value in slow.state_dict().items() if not np.array_equal(value.numpy(), start[name])}
    assert moved == {"linear2.weight", "linear2.bias"}

    with pytest.raises(ConfigError, match=r"Arch.backbone_lr_mult must be a number >= 0, got -1"):
        build_components(digits_config(tmp_path, digits, "Arch.backbone_lr_mult=-1"))
    with pytest.raises(ConfigError, match=r"either Arch.pretrained: true .* or Global.pretrained_model"):
        build_components(digits_config(tmp_path, digits, "Arch.pretrained=true", "Global.pretrained_model=x"))
    assert build_model(digits_config(tmp_path, digits, "Arch.freeze_backbone=true")).linear2.weight.shape == [64, 10]


def test_label_smoothing_works_on_every_paddle_version():
    logits = paddle.to_tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    labels = paddle.to_tensor([[0], [2]], dtype="int64")
    log_probabilities = logits.numpy() - np.log(np.exp(logits.numpy()).sum(axis=1, keepdims=True))
    target = np.full((2, 3), 0.1 / 3) + 0.9 * np.eye(3)[[0, 2]]
    expected = -(target * log_probabilities).sum(axis=1).mean()
    assert CrossEntropyLoss(label_smoothing=0.1)(logits, labels).item() == pytest.approx(expected, rel=1e-5)
    plain = -log_probabilities[[0, 1], [0, 2]].mean()
    assert CrossEntropyLoss()(logits, labels).item() == pytest.approx(plain, rel=1e-5)
    with pytest.raises(ConfigError, match=r"Loss.label_smoothing must be a number in \[0, 1\), got 1.5"):
        CrossEntropyLoss(label_smoothing=1.5)
