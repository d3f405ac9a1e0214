"""Datasets. `DATASETS` maps the names a config may use in `DataLoader.<split>.dataset.name`."""
from .cifar10 import CIFAR10Dataset, find_cifar10, id2label, load_cifar10_batch

DATASETS = {"CIFAR10Dataset": CIFAR10Dataset}

__all__ = ["CIFAR10Dataset", "DATASETS", "find_cifar10", "id2label", "load_cifar10_batch"]
