"""Looking at a dataset's samples: the dataset under `paddle.io.Subset` wrappers, a sample as a picture, and
the class names of a config's dataset, known without reading its files."""
import numpy as np

from .cifar10 import CIFAR10_LABELS, CIFAR10Dataset
from .vision import MNIST, Cifar10


def base_dataset(dataset):
    """The dataset under any `paddle.io.Subset` wrappers, and a function mapping indices down to it."""
    index_maps = []
    while hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        index_maps.append(dataset.indices)
        dataset = dataset.dataset

    def to_base(index):
        for indices in index_maps:
            index = indices[index]
        return index

    return dataset, to_base


_DATASET_LABELS = {"CIFAR10Dataset": CIFAR10_LABELS, "Cifar10": CIFAR10_LABELS,
                   "MNIST": tuple(str(digit) for digit in range(10))}


def config_label_names(config, split="Test"):
    """The class names of `DataLoader.<split>.dataset`, known without reading its files."""
    return _DATASET_LABELS[config["DataLoader"][split]["dataset"]["name"]]


def raw_image(dataset, index):
    """Sample `index` of `dataset` as a uint8 HWC (or HW for grey) picture, before any normalisation."""
    base, to_base = base_dataset(dataset)
    index = to_base(index)
    if isinstance(base, CIFAR10Dataset):
        return base.imgs[index].transpose(1, 2, 0)
    if isinstance(base, Cifar10):
        return np.reshape(base.data[index][0], (3, 32, 32)).transpose(1, 2, 0)
    if isinstance(base, MNIST):
        return np.reshape(base.images[index], (28, 28))
    raise TypeError(f"no picture view for {type(base).__name__}")
