"""Models. `MODELS` maps the names a config may use in `Arch.name` to their constructors."""
from .resnet import Model_ResNet18, ResBlock
from .summary import layer_shapes, print_summary
from .tutorial_nets import CNN, LeNet, MyNet, SimpleCNN
from .vision_zoo import VISION_MODELS

MODELS = {
    # the tutorials' own networks
    "Model_ResNet18": Model_ResNet18,
    "LeNet": LeNet,
    "MyNet": MyNet,
    "CNN": CNN,
    "SimpleCNN": SimpleCNN,
    # every model of paddle.vision.models by its constructor's name (num_classes defaults to 1000), and Paddle's
    # LeNet (ReLU) as vision_LeNet, distinct from the course's LeNet above; see vision_zoo.py
    **VISION_MODELS,
}

__all__ = ["CNN", "LeNet", "MODELS", "Model_ResNet18", "MyNet", "ResBlock", "SimpleCNN", "layer_shapes",
           "print_summary"]
