"""Every model `Arch.name` takes, as timm's tests go over `list_models()`: each one trains (forward and backward,
every parameter reached by a gradient) on a small input of the smallest size it takes, exports through the
project's own `paddle-cls export` with the inference engine's parity check, and `paddle-cls models` lists it
with its parameters and FLOPs."""
import os
import shutil

import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

from paddle_cls.cli import main
from paddle_cls.config import load_config
from paddle_cls.deploy.backends import read_export_info
from paddle_cls.deploy.export import export
from paddle_cls.models import MODELS
from paddle_cls.models.complexity import count_flops, count_parameters
from paddle_cls.models.vision_zoo import INPUTS, VISION_MODELS, input_problem

CLASSES = 2
# Exporting takes 1 to 20 s a model (saving, loading and running the inference engine; 0.5 GB of weights for a
# VGG): the suite exports the smallest model of each family, `pytest -m exhaustive` every other size too.
FAST_EXPORTS = {"Model_ResNet18", "LeNet", "MyNet", "CNN", "SimpleCNN", "vision_LeNet", "googlenet", "inception_v3",
                "densenet121", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "resnet18", "resnext50_32x4d",
                "shufflenet_v2_x0_25", "squeezenet1_1"}


def small_input(name):
    """[C, H, W]: the smallest square input `name` takes, and at least 32 px (a CIFAR image)."""
    limits = INPUTS[name]
    side = max(limits.min_size, 32) if limits.max_size is None else limits.min_size
    return [limits.channels or 3, side, side]


def _build(name):
    arguments = {"num_classes": CLASSES}
    if name == "Model_ResNet18":
        arguments["in_channels"] = 3
    return MODELS[name](**arguments)


def test_every_model_has_its_inputs_and_family_and_paddle_vision_is_complete():
    assert set(INPUTS) == set(MODELS)
    zoo = paddle.vision.models
    constructors = {name for name in dir(zoo) if name[0].islower() and callable(getattr(zoo, name))}
    assert constructors == set(VISION_MODELS) - {"vision_LeNet"}  # every constructor of the installed Paddle
    assert len(VISION_MODELS) == 39 and {"densenet264", "resnext152_64x4d", "shufflenet_v2_swish",
                                         "mobilenet_v3_large", "inception_v3", "wide_resnet101_2"} <= set(MODELS)


@pytest.mark.slow  # 45 s for the 44 models; on Paddle 2.6 the list and its sizes are checked without it
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_on_its_smallest_input(name):
    paddle.seed(0)
    model = _build(name)
    model.train()
    shape = small_input(name)
    images = paddle.to_tensor(np.random.RandomState(0).rand(2, *shape).astype(np.float32))
    logits = model(images)
    assert list(logits.shape) == [2, CLASSES]
    paddle.nn.functional.cross_entropy(logits, paddle.to_tensor([0, 1])).backward()
    trainable = [(key, p) for key, p in model.named_parameters() if not p.stop_gradient]
    missing = [key for key, p in trainable if p.grad is None]
    assert not missing, f"{name}: parameters without a gradient: {missing[:5]}"
    assert all(np.isfinite(p.grad.numpy()).all() for _, p in trainable)


@pytest.fixture(scope="module")
def picture_folders(tmp_path_factory):
    """train/ and test/ with two classes of random RGB pictures of odd sizes."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.RandomState(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            os.makedirs(root / split / label)
            for index in range(2):
                pixels = rng.randint(0, 256, (40 + 7 * index, 50, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{index}.png")
    return str(root)


def _config(tmp_path, folders, name, shape):
    steps = [{"name": "Resize", "size": shape[1:]}, {"name": "ToTensor"},
             {"name": "Normalize", "mean": 0.5, "std": 0.5}]
    dataset = {"name": "ImageFolder", "root": "test", "channels": shape[0], "transforms": steps}
    config = {"Global": {"device": "cpu", "image_shape": shape, "data_dir": folders, "progress": False,
                         "output_dir": str(tmp_path / "out"), "checkpoint": str(tmp_path / "weights.pdparams")},
              "Arch": {"name": name, "num_classes": CLASSES}, "Optimizer": {"name": "Adam"},
              "DataLoader": {"Train": {"dataset": dict(dataset, root="train"), "batch_size": 4},
                             "Test": {"dataset": dataset, "batch_size": 4}}}
    if name == "Model_ResNet18":
        config["Arch"]["in_channels"] = shape[0]
    (tmp_path / "zoo.yml").write_text(yaml.safe_dump(config))
    return load_config(str(tmp_path / "zoo.yml"), [])


@pytest.mark.slow
@pytest.mark.parametrize("name", [name if name in FAST_EXPORTS else pytest.param(name, marks=pytest.mark.exhaustive)
                                  for name in MODELS])
def test_every_model_exports_with_parity(name, picture_folders, tmp_path):
    paddle.seed(0)
    shape = small_input(name)
    config = _config(tmp_path, picture_folders, name, shape)
    model = _build(name)
    paddle.save(model.state_dict(), str(tmp_path / "weights.pdparams"))
    folder = export(config)  # refuses (CheckpointError) an export whose logits differ from the dygraph model's
    assert "inference" in read_export_info(folder)["verified"]
    shutil.rmtree(tmp_path / "out")  # up to 0.5 GB of weights a model (VGG): 40 of them fill a disk
    os.remove(tmp_path / "weights.pdparams")


def test_flops_are_paddle_flops_counts():
    # paddle.flops's documented example: LeNet on [1, 1, 28, 28] -> "Total Flops: 347560  Total Params: 61610"
    lenet = MODELS["vision_LeNet"]()
    assert count_flops(lenet, [1, 28, 28]) == 347_560 and count_parameters(lenet) == 61_610
    # a conv's multiply-adds by hand: 8 outputs of 3x3x3 weights plus a bias over 16x16 places
    conv = paddle.nn.Sequential(paddle.nn.Conv2D(3, 8, 3, padding=1))
    assert count_flops(conv, [3, 16, 16]) == 16 * 16 * 8 * (27 + 1)


def test_a_model_that_cannot_take_the_size_says_so():
    assert input_problem("inception_v3", [3, 32, 32]) == "takes images of 59x59 px and up, not 32x32"
    assert input_problem("alexnet", [3, 32, 32]) == "takes images of 223x223 to 254x254 px, not 32x32"
    assert input_problem("LeNet", [3, 28, 28]) == "takes 1 channel(s), not 3"
    assert input_problem("resnet18", [3, 32, 32]) is None and input_problem("Model_ResNet18", [1, 28, 28]) is None


def test_models_command_lists_every_model_at_the_configs_size(tmp_path, capsys):
    config = tmp_path / "small.yml"
    config.write_text(yaml.safe_dump({"Global": {"image_shape": [3, 32, 32]}, "Arch": {"name": "resnet18",
                                      "num_classes": 10}, "Optimizer": {"name": "Adam"},
                                      "DataLoader": {"Train": {"dataset": {"name": "Cifar10"}}}}))
    assert main(["models", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "models at input 3x32x32, num_classes: 10"
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == list(MODELS)
    assert rows["Model_ResNet18"].split()[-2:] == ["11,191,306", "37,135,360"]  # the course's parameter count
    resnet18 = MODELS["resnet18"](num_classes=10)
    assert rows["resnet18"].split()[1:] == ["ResNet", f"{count_parameters(resnet18):,}",
                                            f"{count_flops(resnet18, [3, 32, 32]):,}"]
    assert rows["inception_v3"].endswith("cannot take it: takes images of 59x59 px and up, not 32x32")
    assert "cannot take it: takes 1 channel(s), not 3" in rows["LeNet"]
