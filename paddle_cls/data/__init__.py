"""Datasets. `DATASETS` (see `catalog`) maps the names a config may use in `DataLoader.<split>.dataset.name`."""
from .catalog import DATASETS
from .cifar10 import CIFAR10Dataset, find_cifar10, id2label, load_cifar10_batch
from .folder import ImageFolder, ImageNetDataset
from .transforms import TRANSFORMS, build_transforms
from .vision import MNIST, Cifar10

__all__ = ["CIFAR10Dataset", "Cifar10", "DATASETS", "ImageFolder", "ImageNetDataset", "MNIST", "TRANSFORMS",
           "build_transforms", "find_cifar10", "id2label", "load_cifar10_batch"]
