import numpy as np
import paddle
import pytest

import course_reference as course
from paddle_cls import Model_ResNet18, ResBlock
from paddle_cls.engine.components import build_model
from paddle_cls.errors import ConfigError


def _param_count(model):
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def test_model_resnet18_has_the_course_size_and_keys():
    ours = Model_ResNet18(in_channels=3, num_classes=10, use_residual=True)
    assert _param_count(ours) == 11_191_306
    keys = list(ours.state_dict())
    assert keys == list(course.Model_ResNet18(3, 10, True).state_dict())
    assert len(keys) == 103
    assert keys[:6] == ["net.0.0.weight", "net.0.0.bias", "net.0.1.weight", "net.0.1.bias",
                        "net.0.1._mean", "net.0.1._variance"]
    assert "net.2.0.shortcut.weight" in keys and "net.2.0.bn3._variance" in keys
    assert "net.1.0.shortcut.weight" not in keys  # same channels and stride: identity shortcut
    assert keys[-2:] == ["net.7.weight", "net.7.bias"]


def test_same_seed_gives_the_course_initial_weights_and_outputs():
    paddle.seed(7)
    ref = course.Model_ResNet18(in_channels=3, num_classes=10)
    paddle.seed(7)
    ours = Model_ResNet18(in_channels=3, num_classes=10)
    for (key, ref_value), value in zip(ref.state_dict().items(), ours.state_dict().values()):
        np.testing.assert_array_equal(value.numpy(), ref_value.numpy(), err_msg=key)
    x = paddle.randn([2, 3, 32, 32])
    ref.eval(), ours.eval()
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-6)


def test_course_checkpoint_loads(tmp_path):
    ref = course.Model_ResNet18(in_channels=1, num_classes=10)
    path = str(tmp_path / "best_model.pdparams")
    paddle.save(ref.state_dict(), path)
    from paddle_cls.utils.weights import load_model_file

    ours = Model_ResNet18(in_channels=1, num_classes=10)
    load_model_file(ours, path)
    np.testing.assert_array_equal(ours.state_dict()["net.7.weight"].numpy(), ref.state_dict()["net.7.weight"].numpy())


def test_use_residual_false_drops_the_sum():
    paddle.seed(1)
    block = ResBlock(8, 16, stride=2, use_residual=False)
    x = paddle.randn([2, 8, 8, 8])
    block.eval()
    y = block(x)
    assert list(y.shape) == [2, 16, 4, 4]
    expected = paddle.nn.functional.relu(block.bn2(block.conv2(paddle.nn.functional.relu(block.bn1(block.conv1(x))))))
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("spec,classes", [({"name": "resnet18"}, 1000), ({"name": "resnet18", "num_classes": 10}, 10),
                                          ({"name": "Model_ResNet18", "num_classes": 4}, 4)])
def test_models_by_name(spec, classes):
    model = build_model({"Arch": spec})
    model.eval()
    assert list(model(paddle.zeros([1, 3, 32, 32])).shape) == [1, classes]


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"Arch.name: unknown name 'resnet_18'.*did you mean resnet18"):
        build_model({"Arch": {"name": "resnet_18"}})
    with pytest.raises(ConfigError, match=r"unknown key Arch.num_class .*did you mean num_classes"):
        build_model({"Arch": {"name": "Model_ResNet18", "num_class": 10}})
    with pytest.raises(ConfigError, match="Arch: resnet18 does not accept"):
        build_model({"Arch": {"name": "resnet18", "depthh": 3}})


@pytest.mark.parametrize("name,shape,params", [
    ("LeNet", [3, 1, 28, 28], 41_806),        # 156 + 2,416 + 30,840 + 7,744 + 650
    ("MyNet", [3, 3, 32, 32], 122_570),       # 896 + 18,496 + 36,928 + 65,600 + 650
    ("CNN", [3, 1, 28, 28], 206_922),         # 160 + 4,640 + 200,832 + 1,290
    ("SimpleCNN", [3, 3, 32, 32], 296_130),   # 504 + 294,976 + 650
])
def test_tutorial_nets_have_the_source_sizes(name, shape, params):
    model = build_model({"Arch": {"name": name, "num_classes": 10}})
    assert _param_count(model) == params
    assert list(model(paddle.zeros(shape)).shape) == [3, 10]


def test_lenet_shape_walkthrough_matches_the_course():
    from paddle_cls import LeNet
    from paddle_cls.models import layer_shapes

    rows = layer_shapes(LeNet(num_classes=10), [3, 1, 28, 28])
    assert rows == [
        ("conv1", [3, 6, 24, 24], [[6, 1, 5, 5], [6]]),
        ("max_pool1", [3, 6, 12, 12], []),
        ("conv2", [3, 16, 8, 8], [[16, 6, 5, 5], [16]]),
        ("max_pool2", [3, 16, 4, 4], []),
        ("conv3", [3, 120, 1, 1], [[120, 16, 4, 4], [120]]),
        ("fc1", [3, 64], [[120, 64], [64]]),
        ("fc2", [3, 10], [[64, 10], [10]]),
    ]


def test_course_lenet_and_paddles_lenet_do_not_clash():
    ours = build_model({"Arch": {"name": "LeNet", "num_classes": 10}})
    paddles = build_model({"Arch": {"name": "vision_LeNet", "num_classes": 10}})
    assert type(ours).__module__.startswith("paddle_cls") and type(paddles).__module__.startswith("paddle.vision")
    assert _param_count(paddles) == 61_610


@pytest.mark.parametrize("name", ["resnet50", "vgg16", "mobilenet_v2"])
def test_zoo_models_take_num_classes(name):
    model = build_model({"Arch": {"name": name, "num_classes": 10}})
    model.eval()
    assert list(model(paddle.zeros([1, 3, 32, 32])).shape) == [1, 10]
