"""What the model is fed, checked before a training run or an export writes anything: each split's transforms
must give samples of `Global.image_shape` [C, H, W], whose C is the number of input channels of the model
(`Arch`), and an export's preprocessing must give that shape for a picture of any size."""
from __future__ import annotations

import importlib.util
import inspect
from typing import Any, Optional, Sequence

import numpy as np
import paddle
from PIL import Image

from ..data.loader import build_dataset
from ..data.preprocessing import build_preprocess, preprocessing_steps
from ..errors import ConfigError
from ..models import MODELS

# An odd, non-square picture size: preprocessing that gives the model's input for it gives it for any picture.
PROBE_SIZE = (97, 61)


def sample_shape(sample: Any) -> Optional[list]:
    """The shape of a transformed sample (tensor or array); None for a PIL image."""
    if isinstance(sample, Image.Image):
        return None
    return list(sample.shape) if isinstance(sample, paddle.Tensor) else list(np.shape(sample))


def input_channels(model: paddle.nn.Layer) -> Optional[int]:
    """The input channels of `model`'s first convolution; None for a model without one."""
    first = next((layer for layer in model.sublayers() if isinstance(layer, paddle.nn.Conv2D)), None)
    return None if first is None else first._in_channels


def _fix_for(shape, expected):
    if shape is None:
        return "the model takes float32 [C, H, W] arrays: end the transforms with {name: ToTensor}"
    if len(shape) != 3:
        return "the model takes [C, H, W] samples: end the transforms with {name: ToTensor}"
    if shape[0] != expected[0] and shape[-1] == expected[0]:
        return "they are HWC: add {name: Transpose} (or ToTensor) to make them CHW"
    if shape[0] != expected[0]:
        statistics = "one mean and std" + (f", or {expected[0]} of each" if expected[0] > 1 else "")
        return (f"read the images with {expected[0]} channel(s) (ImageFolder's channels: {expected[0]}) and give "
                f"Normalize {statistics}; or set Global.image_shape: {shape}")
    return (f"end them with a Resize and CenterCrop to {list(expected[1:])} (the size the model takes), or set "
            f"Global.image_shape: {shape}")


def check_split(config: dict, split: str) -> None:
    """Run `DataLoader.<split>`'s transforms on its first sample: ConfigError, naming the split, the shape they
    give and `Global.image_shape`, when they do not give that shape."""
    expected = list(config["Global"]["image_shape"])
    shape = sample_shape(build_dataset(config, split)[0][0])
    if shape != expected:
        given = "PIL images" if shape is None else f"samples of shape {shape}"
        raise ConfigError(f"DataLoader.{split}.dataset: its transforms give {given}, but Global.image_shape is "
                          f"{expected}: {_fix_for(shape, expected)}")


def check_model(config: dict, model: paddle.nn.Layer) -> None:
    """ConfigError when `model` (the config's, its weights perhaps uninitialised) takes another number of input
    channels than `Global.image_shape` says."""
    expected, channels = list(config["Global"]["image_shape"]), input_channels(model)
    if channels is not None and channels != expected[0]:
        name = config["Arch"]["name"]
        settable = "in_channels" in inspect.signature(MODELS[name]).parameters if name in MODELS else False
        fix = f"set Arch.in_channels: {expected[0]}, or " if settable else ""
        raise ConfigError(f"Arch {name} takes {channels} input channel(s), but Global.image_shape is {expected}: "
                          f"{fix}set Global.image_shape: [{channels}, {expected[1]}, {expected[2]}] and read the "
                          f"images with {channels} channel(s)")


def check_inputs(config: dict, model: paddle.nn.Layer, splits: Optional[Sequence[str]] = None) -> None:
    """Check that `model` takes the channels of `Global.image_shape`, and that `splits` (default: every split
    of the config) give that shape. Raises ConfigError (see `check_model`, `check_split`)."""
    check_model(config, model)
    for split in splits or [split for split in ("Train", "Eval", "Test") if split in config["DataLoader"]]:
        check_split(config, split)


def check_preprocessing(config: dict) -> None:
    """ConfigError when the preprocessing an export writes (`preprocessing_steps`) does not turn a picture of
    another size than the model's into `Global.image_shape`, as predict and serve would then refuse it."""
    steps = preprocessing_steps(config)
    if steps["image_backend"] == "cv2" and importlib.util.find_spec("cv2") is None:
        raise ConfigError("the dataset's backend: cv2 needs OpenCV to resize the pictures predict and "
                          "serve are given: pip install opencv-python, or use backend: pil")
    preprocess_image = build_preprocess(steps)
    preprocess_image(Image.new(steps["color"], PROBE_SIZE))
