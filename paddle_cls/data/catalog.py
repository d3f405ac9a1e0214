"""The datasets a config may name in `DataLoader.<split>.dataset.name` (`DATASETS`), and what each one is.

What the rest of the toolkit needs to know of a dataset is said by its class, so that adding one is a class and
an entry here: `label_names` (its classes in label order, or None when they come from its files), `own_images`
(the user's image files: evaluation splits borrow the training split's deterministic transforms, the class count
follows the data, a picture from elsewhere goes through the config's resize), `whole_batches` (it can be read a
batch at a time: `DataLoader.<split>.batched`) and `steps` (the preprocessing it applies itself, for an export's
`preprocess.json`; None when its transforms are the config's).
"""
from __future__ import annotations

from ..build import build_choice
from .cifar10 import CIFAR10Dataset
from .folder import ImageFolder, ImageNetDataset
from .vision import MNIST, Cifar10

DATASETS = {"CIFAR10Dataset": CIFAR10Dataset, "Cifar10": Cifar10, "MNIST": MNIST, "ImageFolder": ImageFolder,
            "ImageNetDataset": ImageNetDataset}


def dataset_type(config: dict, split: str) -> type:
    """The class `DataLoader.<split>.dataset` names (ConfigError for an unknown name, with the valid ones)."""
    return build_choice(DATASETS, config["DataLoader"][split]["dataset"], f"DataLoader.{split}.dataset")
