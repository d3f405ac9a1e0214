"""Turning an image file into what a config's model takes, and getting a dataset sample back as a picture."""
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .cifar10 import CIFAR10_LABELS, CIFAR10Dataset, normalize_cifar10
from .vision import MNIST, Cifar10, build_transforms


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


def load_image(path, image_shape):
    """Read any image file as a PIL image of the model's mode (L for 1 channel, RGB for 3) and size.

    Raises:
        DataError: the file is missing or is not an image.
    """
    channels, height, width = image_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not an image PIL can read ({exc})") from None
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    return image


def build_preprocess(config, split="Test"):
    """A function PIL image -> float32 CHW array, doing what `DataLoader.<split>.dataset` does to its samples."""
    spec = config["DataLoader"][split]["dataset"]
    name = spec["name"]
    if name == "CIFAR10Dataset":
        return lambda image: normalize_cifar10(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
    transform = build_transforms(spec.get("transforms"), f"DataLoader.{split}.dataset.transforms")
    use_pil = spec.get("backend", "pil") == "pil"

    def preprocess(image):
        sample = image if use_pil else np.asarray(image)
        if transform is not None:
            sample = transform(sample)
        sample = np.asarray(sample.numpy() if hasattr(sample, "numpy") else sample, dtype=np.float32)
        return sample[None] if sample.ndim == 2 else sample

    return preprocess
