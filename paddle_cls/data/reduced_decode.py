"""Decoding a JPEG at the size the model needs: libjpeg decodes at 1/2, 1/4 or 1/8 scale (Pillow's `Image.draft`)
in a fraction of a full decode's time, so that a 12 MP phone photo bound for a 224 px model is never decoded at
4032 x 3024 (about 160 ms) when 504 x 378 (about 45 ms) serves.

The scale chosen is the smallest that still leaves the first resize of the transforms at least the pixels it
keeps: that resize then does the real work, from no fewer pixels than its output, and the model's input differs
from a full decode's only by what resizing a reduced-scale decode changes (README, "Photos"). Transforms that
work on the original pixels before any resize (a crop, a rotation, padding) get a full decode, as do PNG, WebP
and every other format without reduced-scale decoding.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

from PIL import Image
from paddle.vision import transforms as T

EXIF_ORIENTATION = 0x0112
_SIDEWAYS = (5, 6, 7, 8)  # EXIF orientations stored with width and height swapped (transposed, rotated 90/270)

# Steps that keep the image's geometry, so that a reduced decode before them changes only their resampling.
_GEOMETRY_KEPT = (T.RandomHorizontalFlip, T.RandomVerticalFlip, T.ColorJitter, T.BrightnessTransform,
                  T.ContrastTransform, T.SaturationTransform, T.HueTransform)


def _height_width(size):
    """paddle.vision's `size`: an int n (n x n for a crop) or (height, width)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def decode_size(transform: Any) -> Optional[Tuple[int, int]]:
    """The least (width, height) an upright image may be decoded at for `transform` (a `Compose` of paddle.vision
    transforms, as `build_transforms` makes, or one transform) to see no fewer pixels than it uses; None where
    a reduced decode would change what it does (its first geometric step is not a resize) or it is unknown.

    From the first step that is not a flip or colour change:
        Resize(n): the short side becomes n -> (n, n) (`Image.draft` keeps both sides at least the request);
        Resize((h, w)): (w, h);
        RandomResizedCrop(size (h, w), scale (s0, s1), ratio (r0, r1)): its smallest crop (s0 of the area, at
            aspect r0 for the narrowest, r1 for the flattest) still at least w x h, i.e. both sides at least
            max(w / sqrt(s0 r0), h sqrt(r1 / s0)): 915 for paddle.vision's defaults at 224.
    """
    steps = getattr(transform, "transforms", [transform])
    for step in steps:
        if isinstance(step, _GEOMETRY_KEPT):
            continue
        if isinstance(step, T.Resize):
            if isinstance(step.size, int):
                return step.size, step.size
            height, width = _height_width(step.size)
            return width, height
        if isinstance(step, T.RandomResizedCrop):
            height, width = _height_width(step.size)
            smallest, (narrowest, flattest) = step.scale[0], step.ratio
            side = max(width / math.sqrt(smallest * narrowest), height * math.sqrt(flattest / smallest))
            return math.ceil(side), math.ceil(side)
        return None
    return None


def draft(image: Image.Image, size: Optional[Tuple[int, int]]) -> None:
    """Have `image` (opened, not yet loaded) decoded at the smallest of libjpeg's scales 1/2, 1/4, 1/8 that keeps
    it at least `size` (width, height) once turned upright: for a photo stored sideways (EXIF orientation 5-8)
    the request is turned too. Nothing happens for None, for formats without reduced decoding, or where no scale
    keeps the size (the image is then decoded in full)."""
    if size is None or min(size) <= 0 or image.format not in ("JPEG", "MPO"):
        return
    if image.getexif().get(EXIF_ORIENTATION, 1) in _SIDEWAYS:
        size = size[::-1]
    image.draft(None, size)
