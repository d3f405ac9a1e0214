"""Transforms by name, and the way from an image file to what a config's model takes (the same steps as its
test split's samples), written out for deployment too."""
from __future__ import annotations

import numbers
from typing import Callable, List, Optional, Sequence

import numpy as np
import paddle
from paddle.vision import transforms as T
from PIL import Image

from ..build import build
from ..errors import ConfigError
from .cifar10 import CIFAR10_MEAN, CIFAR10_STD
from .folder import OWN_IMAGES
from .paddleclas_ops import ScaleNormalize, paddleclas_transforms


# uint8 -> float32 as paddle.vision's ToTensor computes it (`cast(img, float32) / 255.0`): Paddle 3 divides;
# Paddle 2's eager `tensor / scalar` multiplies by the float32 reciprocal (its scale op), which differs in the
# last bit for about half the values.
_DIVIDES = int(paddle.__version__.split(".")[0]) >= 3


def _to_unit(array):
    scaled = array.astype(np.float32, order="C")
    if _DIVIDES:
        scaled /= np.float32(255)
    else:
        scaled *= np.float32(1 / 255)
    return scaled


class ToTensor(T.ToTensor):
    """paddle.vision's `ToTensor` computed with NumPy on the CPU: a PIL image or HWC array -> a CHW (or, with
    `data_format: HWC`, HWC) ndarray, uint8 scaled to float32 in [0, 1] and other types kept, as Paddle's. The
    values are Paddle's; no Paddle tensor is made, so a sample costs no copy to the GPU and no kernel launches
    there, and serving threads never touch the device beside the predictor."""

    def __init__(self, data_format="CHW", keys=None):
        if data_format not in ("CHW", "HWC"):
            raise TypeError(f"data_format must be CHW or HWC, got {data_format!r}")
        super().__init__(data_format, keys)

    def _apply_image(self, img):
        if isinstance(img, Image.Image):
            # the dtypes and channel counts of paddle.vision.transforms.functional_pil.to_tensor
            dtype = {"I": np.int32, "I;16": np.int32, "F": np.float32, "1": np.uint8}.get(img.mode)
            array = np.asarray(img, dtype).reshape(img.size[1], img.size[0], -1)
            array = array * np.uint8(255) if img.mode == "1" else array
        else:
            array = np.asarray(img)
            array = array[:, :, None] if array.ndim == 2 else array
        array = array.transpose(2, 0, 1) if self.data_format == "CHW" else array
        return _to_unit(array) if array.dtype == np.uint8 else np.ascontiguousarray(array)


class Normalize(T.Normalize):
    """paddle.vision's `Normalize`, except that a scalar `mean` or `std` applies to every channel the image has:
    Paddle's makes it three values, which turns a grey [1, H, W] image into [3, H, W]."""

    def __init__(self, mean=0.0, std=1.0, data_format="CHW", to_rgb=False, keys=None):
        super().__init__(mean, std, data_format, to_rgb, keys)
        # one value broadcasts over any number of channels
        self.mean = [mean] if isinstance(mean, numbers.Number) else mean
        self.std = [std] if isinstance(std, numbers.Number) else std


TRANSFORMS = {
    "ToTensor": ToTensor,
    "Normalize": Normalize,
    "Transpose": T.Transpose,
    "Resize": T.Resize,
    "CenterCrop": T.CenterCrop,
    "RandomCrop": T.RandomCrop,  # padding: N pads before cropping
    "RandomResizedCrop": T.RandomResizedCrop,
    "RandomHorizontalFlip": T.RandomHorizontalFlip,
    "RandomVerticalFlip": T.RandomVerticalFlip,
    "RandomRotation": T.RandomRotation,
    "ColorJitter": T.ColorJitter,
    "ScaleNormalize": ScaleNormalize,  # PaddleClas's NormalizeImage
}


# What may follow ToTensor: steps that treat its CHW array as paddle.vision treats a CHW tensor. The image
# transforms would take the array for an HWC image (paddle.vision's NumPy path), and Normalize's to_rgb would
# reverse its width, where on a tensor Paddle ignores it.
_AFTER_TO_TENSOR = ("Normalize", "ScaleNormalize", "Transpose")


def build_transforms(specs: Optional[Sequence[dict]], where: str) -> Optional[Callable]:
    """A `Compose` of the transforms listed as `[{name: ToTensor}, {name: Normalize, mean: ..., std: ...}]`,
    computed with NumPy and PIL on the CPU: the samples are float32 ndarrays, not Paddle tensors.

    Raises:
        ConfigError: a list that is not one, an unknown transform or argument, or an image transform after
            ToTensor (which ends the image part of the list).
    """
    if specs is None:
        return None
    if not isinstance(specs, list):
        raise ConfigError(f"{where} must be a list like [{{name: ToTensor}}], got {specs!r}")
    steps, to_tensor = [], None
    for index, spec in enumerate(specs):
        step = build(TRANSFORMS, spec, f"{where}.{index}")
        name = spec["name"]
        if to_tensor is not None and (name not in _AFTER_TO_TENSOR or getattr(step, "to_rgb", False)):
            what = "Normalize with to_rgb: true" if name == "Normalize" else name
            raise ConfigError(f"{where}.{index}: {what} after ToTensor ({where}.{to_tensor}): ToTensor makes the "
                              "model's CHW array and ends the image steps; move it before ToTensor"
                              + (" (or drop to_rgb)" if name == "Normalize" else ""))
        to_tensor = index if name == "ToTensor" and to_tensor is None else to_tensor
        steps.append(step)
    return T.Compose(steps)


def transform_specs(spec: dict, where: str, evaluation: bool = False) -> Optional[List[dict]]:
    """The transforms of a dataset section as a list of specs: its `transforms`, or PaddleClas's `transform_ops`
    translated; with `evaluation`, only their deterministic part (see `deterministic`). None when it has neither."""
    if "transforms" in spec and "transform_ops" in spec:
        raise ConfigError(f"{where}: give transforms or transform_ops, not both")
    if "transform_ops" in spec:
        specs = paddleclas_transforms(spec["transform_ops"], f"{where}.transform_ops")
    else:
        specs = spec.get("transforms")
    if specs is not None and not isinstance(specs, list):
        raise ConfigError(f"{where}.transforms must be a list like [{{name: ToTensor}}], got {specs!r}")
    return deterministic(specs) if evaluation and specs is not None else specs


def split_transforms(config: dict, split: str) -> Optional[List[dict]]:
    """The transform specs of `DataLoader.<split>.dataset`: deterministic for the evaluation splits (Eval, Test),
    which for your own images default to the deterministic part of the training split's."""
    evaluation = split != "Train"
    spec = config["DataLoader"][split]["dataset"]
    specs = transform_specs(spec, f"DataLoader.{split}.dataset", evaluation)
    if specs is None and evaluation and spec["name"] in OWN_IMAGES:  # evaluate as training sees them, minus chance
        specs = transform_specs(config["DataLoader"]["Train"]["dataset"], "DataLoader.Train.dataset", evaluation)
    return specs


_RANDOM_ONLY = ("RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "ColorJitter")


def deterministic(specs: List[dict]) -> List[dict]:
    """What evaluation does with training's transforms: flips, rotations and colour jitter dropped, a random
    crop made a center crop of its size, a random resized crop a resize of the short side and a center crop."""
    steps = []
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        if name in _RANDOM_ONLY:
            continue
        if name == "RandomCrop":
            steps.append({"name": "CenterCrop", "size": spec["size"]})
        elif name == "RandomResizedCrop":
            steps += [{"name": "Resize", "size": spec["size"]}, {"name": "CenterCrop", "size": spec["size"]}]
        else:
            steps.append(spec)
    return steps


_BUILTIN_DATASETS = ("CIFAR10Dataset", "Cifar10", "MNIST")


def preprocessing_steps(config: dict, split: str = "Test") -> dict:
    """The way from an image to the model's input, written out as data (for `preprocess.json`): input shape,
    colour, image backend and the deterministic transforms of `DataLoader.<split>.dataset`.

    CIFAR-10 and MNIST samples have one size, so any picture is first resized to the model's input; your own
    images go through the config's own resize and crop, as they did in evaluation. A config without `split`
    takes the Eval split's, else the deterministic part of the Train split's.
    """
    loaders = config["DataLoader"]
    split = split if split in loaders else next(name for name in ("Eval", "Train") if name in loaders)
    spec = loaders[split]["dataset"]
    image_shape = config["Global"]["image_shape"]
    if spec["name"] == "CIFAR10Dataset":
        steps = [{"name": "ToTensor"}, {"name": "Normalize", "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}]
    elif split == "Train":
        steps = transform_specs(spec, "DataLoader.Train.dataset", evaluation=True) or []
    else:
        steps = split_transforms(config, split) or []
    if spec["name"] in _BUILTIN_DATASETS:
        steps = [{"name": "Resize", "size": list(image_shape[1:])}] + steps
    return {"input_shape": image_shape, "dtype": "float32", "image_backend": spec.get("backend", "pil"),
            "color": "L" if image_shape[0] == 1 else "RGB", "steps": steps}


def build_preprocess(preprocessing: dict) -> Callable[[Image.Image], np.ndarray]:
    """A function PIL image -> float32 CHW array of the model's input shape, from `preprocessing_steps` (or the
    `preprocess.json` of an export).

    The function raises ConfigError when the steps do not give that shape (a config without a final resize or
    crop to the model's size), rather than feeding the model a wrong-sized input.
    """
    transform = build_transforms(preprocessing["steps"], "preprocessing steps")
    use_pil = preprocessing.get("image_backend", "pil") == "pil"
    shape = list(preprocessing["input_shape"])

    def preprocess(image):
        sample = image if use_pil else np.asarray(image)
        if transform is not None:
            sample = transform(sample)
        sample = np.asarray(sample, dtype=np.float32)
        sample = sample[None] if sample.ndim == 2 else sample
        if list(sample.shape) != shape:
            raise ConfigError(f"the test transforms turn a {image.size[0]}x{image.size[1]} image into "
                              f"{list(sample.shape)}, but the model takes {shape} (Global.image_shape); end "
                              "them with a Resize and CenterCrop to the model's size")
        return sample

    return preprocess
