"""PaddleClas's `transform_ops` (the quick-start configs' image pipeline), translated into our `transforms` list
(paddle.vision's transforms by name), so that a PaddleClas `DataLoader.<split>.dataset` section pastes in unchanged.

    transform_ops:
      - DecodeImage: {to_rgb: true, channel_first: false}
      - ResizeImage: {resize_short: 256}
      - CropImage: {size: 224}
      - NormalizeImage: {scale: 1.0/255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: ''}
      - ToCHWImage:           # optional: without it the images are made CHW after the ops, as PaddleClas does
"""
from __future__ import annotations

import re
from typing import Any, List

import numpy as np

from ..errors import ConfigError

_FRACTION = re.compile(r"^\s*([0-9.eE+-]+)\s*/\s*([0-9.eE+-]+)\s*$")


def parse_number(value: Any, where: str) -> float:
    """A number, or a fraction written as text ('1.0/255.0', as PaddleClas configs write `scale`), without eval."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _FRACTION.match(str(value))
    try:
        return float(match.group(1)) / float(match.group(2)) if match else float(value)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{where}: expected a number or a fraction like 1.0/255.0, got {value!r}") from None


def _args(args, where, allowed):
    args = dict(args or {})
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]} (valid: {', '.join(allowed)})")
    return args


def _decode(args, where):
    args = _args(args, where, ("to_rgb", "channel_first"))
    if not args.get("to_rgb", True) or args.get("channel_first", False):
        raise ConfigError(f"{where}: only to_rgb: true, channel_first: false is supported (images are decoded as "
                          "RGB, HWC; ToCHWImage makes them CHW)")
    return []  # images are decoded by the dataset


def _resize(args, where):
    args = _args(args, where, ("size", "resize_short", "interpolation", "backend"))
    if ("size" in args) == ("resize_short" in args):
        raise ConfigError(f"{where}: give either size or resize_short")
    if "resize_short" in args:
        return [{"name": "Resize", "size": int(args["resize_short"])}]  # an int: the short side, aspect kept
    size = args["size"]
    width, height = (size, size) if isinstance(size, int) else size  # PaddleClas writes [width, height]
    return [{"name": "Resize", "size": [int(height), int(width)]}]


def _rand_crop(args, where):
    args = _args(args, where, ("size", "scale", "ratio", "interpolation", "backend"))
    return [{"name": "RandomResizedCrop", "size": args["size"], "scale": list(args.get("scale", (0.08, 1.0))),
             "ratio": list(args.get("ratio", (3.0 / 4.0, 4.0 / 3.0)))}]


def _crop(args, where):
    return [{"name": "CenterCrop", "size": _args(args, where, ("size",))["size"]}]


def _flip(args, where):
    code = _args(args, where, ("flip_code",)).get("flip_code", 1)
    if code not in (0, 1):
        raise ConfigError(f"{where}: flip_code must be 1 (horizontal) or 0 (vertical), got {code!r}")
    return [{"name": "RandomHorizontalFlip" if code == 1 else "RandomVerticalFlip"}]


class ScaleNormalize:
    """PaddleClas's NormalizeImage: `(image * scale - mean) / std` per channel, float32, HWC (or CHW with
    order: chw)."""

    def __init__(self, scale, mean, std, order="hwc"):
        shape = (-1, 1, 1) if order == "chw" else (1, 1, -1)
        self.scale = np.float32(scale)
        self.mean = np.array(mean, dtype=np.float32).reshape(shape)
        self.std = np.array(std, dtype=np.float32).reshape(shape)

    def __call__(self, image):
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        return (array * self.scale - self.mean) / self.std


def _normalize(args, where):
    args = _args(args, where, ("scale", "mean", "std", "order", "output_fp16", "channel_num"))
    order = (args.get("order") or "hwc").lower()
    if order not in ("hwc", "chw"):
        raise ConfigError(f"{where}.order: expected '', hwc or chw, got {args['order']!r}")
    return [{"name": "ScaleNormalize", "scale": parse_number(args.get("scale", 1.0 / 255.0), f"{where}.scale"),
             "mean": list(args.get("mean", [0.485, 0.456, 0.406])),
             "std": list(args.get("std", [0.229, 0.224, 0.225])), "order": order}]


def _to_chw(args, where):
    _args(args, where, ())
    return [{"name": "Transpose", "order": [2, 0, 1]}]


PADDLECLAS_OPS = {"DecodeImage": _decode, "ResizeImage": _resize, "RandCropImage": _rand_crop, "CropImage": _crop,
                  "RandFlipImage": _flip, "NormalizeImage": _normalize, "ToCHWImage": _to_chw}


def paddleclas_transforms(ops: Any, where: str) -> List[dict]:
    """PaddleClas `transform_ops` (a list of one-key mappings `{OpName: {args}}`) as our `transforms` list.

    PaddleClas's datasets transpose each image from HWC to CHW after the ops (`CommonDataset.__getitem__`), so its
    published sections have no `ToCHWImage`; the list ends with that transpose unless an op already made CHW.
    """
    if not isinstance(ops, list):
        raise ConfigError(f"{where} must be a list like [{{DecodeImage: {{to_rgb: true}}}}, ...], got {ops!r}")
    specs = []
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or len(op) != 1:
            raise ConfigError(f"{where}.{index} must be one mapping {{OpName: {{args}}}}, got {op!r}")
        (name, args), = op.items()
        if name not in PADDLECLAS_OPS:
            raise ConfigError(f"{where}.{index}: the PaddleClas op {name} is not supported "
                              f"(supported: {', '.join(PADDLECLAS_OPS)})")
        specs.extend(PADDLECLAS_OPS[name](args, f"{where}.{index}.{name}"))
    if not any(spec["name"] == "Transpose" for spec in specs):
        specs.extend(_to_chw(None, where))
    return specs
