"""Transforms by name, and the way from an image file to what a config's model takes (the same steps as its
test split's samples), written out for deployment too."""
from typing import Callable, List

import numpy as np
from paddle.vision import transforms as T
from PIL import Image, UnidentifiedImageError

from ..build import build
from ..errors import ConfigError, DataError
from .cifar10 import CIFAR10_MEAN, CIFAR10_STD, normalize_cifar10

TRANSFORMS = {
    "ToTensor": T.ToTensor,
    "Normalize": T.Normalize,
    "Transpose": T.Transpose,
    "Resize": T.Resize,
    "CenterCrop": T.CenterCrop,
    "RandomCrop": T.RandomCrop,
    "RandomHorizontalFlip": T.RandomHorizontalFlip,
}


def build_transforms(specs, where):
    """A `Compose` of the transforms listed as `[{name: ToTensor}, {name: Normalize, mean: ..., std: ...}]`."""
    if specs is None:
        return None
    if not isinstance(specs, list):
        raise ConfigError(f"{where} must be a list like [{{name: ToTensor}}], got {specs!r}")
    return T.Compose([build(TRANSFORMS, spec, f"{where}.{index}") for index, spec in enumerate(specs)])


def load_image(path: str, image_shape: List[int]) -> Image.Image:
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


def build_preprocess(config: dict, split: str = "Test") -> Callable[[Image.Image], np.ndarray]:
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


def preprocessing_steps(config):
    """The steps of `build_preprocess` written out as data (for `preprocess.json`): input shape and type, colour,
    image backend and the steps from an image to the model's input."""
    spec = config["DataLoader"]["Test"]["dataset"]
    if spec["name"] == "CIFAR10Dataset":
        steps = [{"name": "ToCHW"}, {"name": "Scale", "factor": 1 / 255},
                 {"name": "Normalize", "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}]
    else:
        steps = spec.get("transforms") or []
    return {"input_shape": config["Global"]["image_shape"], "dtype": "float32", "image_backend": spec.get("backend", "pil"),
            "color": "L" if config["Global"]["image_shape"][0] == 1 else "RGB", "steps": steps}
