"""Looking at a dataset's samples: the dataset under `paddle.io.Subset` wrappers, and a sample as a picture."""
from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
import paddle

from .cifar10 import CIFAR10Dataset
from .folder import ImageFiles, read_image
from .vision import MNIST, Cifar10


def base_dataset(dataset: paddle.io.Dataset) -> Tuple[paddle.io.Dataset, Callable[[int], int]]:
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


def raw_image(dataset: paddle.io.Dataset, index: int) -> np.ndarray:
    """Sample `index` of `dataset` as a uint8 HWC (or HW for grey) picture, before any normalisation."""
    base, to_base = base_dataset(dataset)
    index = to_base(index)
    if isinstance(base, CIFAR10Dataset):
        return base.imgs[index].transpose(1, 2, 0)
    if isinstance(base, Cifar10):
        return np.reshape(base.data[index][0], (3, 32, 32)).transpose(1, 2, 0)
    if isinstance(base, MNIST):
        return np.reshape(base.images[index], (28, 28))
    if isinstance(base, ImageFiles):
        return np.asarray(read_image(base.samples[index][0], base.channels))
    raise TypeError(f"no picture view for {type(base).__name__}")
