"""paddle_cls: the classic Paddle/nndl image-classification tutorials as an installable toolkit.

>>> from paddle_cls import CIFAR10Dataset, Model_ResNet18, RunnerV3, Accuracy
"""
from .data import CIFAR10Dataset, id2label, load_cifar10_batch
from .engine import RunnerV3
from .metrics import Accuracy
from .models import Model_ResNet18, ResBlock
from .utils.plot import plot_training_loss_acc

__version__ = "0.1.0"

__all__ = [
    "Accuracy",
    "CIFAR10Dataset",
    "Model_ResNet18",
    "ResBlock",
    "RunnerV3",
    "id2label",
    "load_cifar10_batch",
    "plot_training_loss_acc",
]
