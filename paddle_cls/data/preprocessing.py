"""What a config's splits do to an image: the transform specs of each split (evaluation splits keep their
deterministic part), and the way from any picture to the model's input written out as data (`preprocess.json`)."""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .catalog import dataset_type
from .paddleclas_ops import paddleclas_transforms
from .transforms import build_transforms


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
    if specs is None and evaluation and dataset_type(config, split).own_images:  # as training sees them, minus chance
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


def preprocessing_steps(config: dict, split: str = "Test") -> dict:
    """The way from an image to the model's input, written out as data (for `preprocess.json`): input shape,
    colour, image backend and the deterministic transforms of `DataLoader.<split>.dataset`.

    CIFAR-10 and MNIST samples have one size, so any picture is first resized to the model's input; your own
    images go through the config's own resize and crop, as they did in evaluation. A config without `split`
    takes the Eval split's, else the deterministic part of the Train split's.
    """
    loaders = config["DataLoader"]
    split = split if split in loaders else next(name for name in ("Eval", "Train") if name in loaders)
    spec, kind = loaders[split]["dataset"], dataset_type(config, split)
    image_shape = config["Global"]["image_shape"]
    if kind.steps is not None:  # the dataset preprocesses its samples itself
        steps = [dict(step) for step in kind.steps]
    elif split == "Train":
        steps = transform_specs(spec, "DataLoader.Train.dataset", evaluation=True) or []
    else:
        steps = split_transforms(config, split) or []
    if not kind.own_images:  # its samples have one size, which pictures from elsewhere are resized to
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
