"""paddle_cls: the classic Paddle/nndl image-classification tutorials as an installable toolkit.

>>> from paddle_cls import CIFAR10Dataset, Model_ResNet18, RunnerV3, Accuracy

Where things live: `data/` (datasets, transforms, loaders), `models/` (and fine-tuning), `engine/` (training on
RunnerV3 or paddle.Model), `deploy/` (using a trained model: evaluate, predict, export, Predictor), `utils/`;
the README's "Layout" draws the rooms and the path a config takes through them.
"""
# Paddle 2.6 with NumPy 2 crashes (SIGSEGV) when numpy.random is first imported after paddle, which
# paddle.jit.to_static and paddle.jit.save do; importing it before paddle avoids that.
import numpy.random  # noqa: F401  (isort: skip)

from .data import MNIST, CIFAR10Dataset, Cifar10, id2label, load_cifar10_batch
from .engine import RunnerV3
from .metrics import Accuracy
from .models import CNN, LeNet, Model_ResNet18, MyNet, ResBlock, SimpleCNN, print_summary
from .utils.history import EpochHistory
from .utils.plot import (plot_confusion_matrix, plot_loss_and_accuracy, plot_training_loss_acc,
                         plot_validation_accuracy)

__version__ = "0.1.0"

__all__ = [
    "Accuracy",
    "CIFAR10Dataset",
    "CNN",
    "Cifar10",
    "EpochHistory",
    "LeNet",
    "MNIST",
    "Model_ResNet18",
    "MyNet",
    "ResBlock",
    "RunnerV3",
    "SimpleCNN",
    "id2label",
    "load_cifar10_batch",
    "plot_confusion_matrix",
    "plot_loss_and_accuracy",
    "plot_training_loss_acc",
    "plot_validation_accuracy",
    "print_summary",
]
