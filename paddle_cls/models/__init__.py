"""Models. `MODELS` maps the names a config may use in `Arch.name` to their constructors."""
from paddle.vision import models as zoo

from .resnet import Model_ResNet18, ResBlock

MODELS = {
    "Model_ResNet18": Model_ResNet18,
    "resnet18": zoo.resnet18,
    "resnet34": zoo.resnet34,
    "resnet50": zoo.resnet50,
    "resnet101": zoo.resnet101,
    "vgg16": zoo.vgg16,
    "mobilenet_v1": zoo.mobilenet_v1,
    "mobilenet_v2": zoo.mobilenet_v2,
    "alexnet": zoo.alexnet,
}

__all__ = ["MODELS", "Model_ResNet18", "ResBlock"]
