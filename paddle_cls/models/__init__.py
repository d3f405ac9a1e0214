"""Models. `MODELS` maps the names a config may use in `Arch.name` to their constructors."""
from paddle.vision import models as zoo

from .resnet import Model_ResNet18, ResBlock
from .summary import layer_shapes, print_summary
from .tutorial_nets import CNN, LeNet, MyNet, SimpleCNN

MODELS = {
    # the tutorials' own networks
    "Model_ResNet18": Model_ResNet18,
    "LeNet": LeNet,
    "MyNet": MyNet,
    "CNN": CNN,
    "SimpleCNN": SimpleCNN,
    # Paddle's zoo (num_classes defaults to 1000 for the ImageNet models)
    "resnet18": zoo.resnet18,
    "resnet34": zoo.resnet34,
    "resnet50": zoo.resnet50,
    "resnet101": zoo.resnet101,
    "vgg16": zoo.vgg16,
    "mobilenet_v1": zoo.mobilenet_v1,
    "mobilenet_v2": zoo.mobilenet_v2,
    "alexnet": zoo.alexnet,
    "vision_LeNet": zoo.LeNet,  # Paddle's LeNet (ReLU), distinct from the course's LeNet above
}

__all__ = ["CNN", "LeNet", "MODELS", "Model_ResNet18", "MyNet", "ResBlock", "SimpleCNN", "layer_shapes",
           "print_summary"]
