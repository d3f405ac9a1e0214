"""Transforms by name, and the way from an image file to what a config's model takes (the same steps as its
test split's samples), written out for deployment too."""
from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence

import numpy as np
import paddle
from paddle.vision import transforms as T
from PIL import Image

from ..build import build
from ..errors import ConfigError
from .paddleclas_ops import ScaleNormalize


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
