"""A Grad-CAM map drawn on the picture as the user sees it: the whole image, upright, at its own size (at most
MAX_OVERLAY_SIDE pixels on its long side), the map placed over the part the model's input shows (the
preprocessing's Resize and CenterCrop undone)."""
from __future__ import annotations

import io
from typing import Tuple

import matplotlib
import numpy as np
from PIL import Image

from ..data.transforms import build_transforms

GEOMETRIC_STEPS = ("Resize", "CenterCrop")  # the deterministic steps that move pixels (see transforms.deterministic)
CAM_WEIGHT = 0.5  # the map's share of each pixel, as pytorch-grad-cam's show_cam_on_image (image_weight 0.5)
MAX_OVERLAY_SIDE = 1024  # an overlay of a 12 MP photo at full size takes seconds and a 35 MB PNG


def _axis_span(coordinates):
    """(start, end) in picture pixels covered by a row of model pixels whose centres are `coordinates`."""
    if len(coordinates) > 3:  # inner pixels: a resize's filter is clipped at the borders
        step = (coordinates[-2] - coordinates[1]) / (len(coordinates) - 3)
        start = coordinates[1] - 1.5 * step
    else:
        step = (coordinates[-1] - coordinates[0]) / max(1, len(coordinates) - 1) or 1.0
        start = coordinates[0] - 0.5 * step
    return float(start), float(start + step * len(coordinates))


def input_box(preprocessing: dict, size: Tuple[int, int]) -> Tuple[float, float, float, float]:
    """`(left, top, right, bottom)`: the part of a `size` (width, height) picture that the model's input shows
    after the steps of `preprocessing` (`transforms.preprocessing_steps`, or an export's `preprocess.json`).

    The Resize and CenterCrop steps are run, as Paddle runs them, on two float images holding each pixel's
    x and y coordinates; what comes out are the coordinates each input pixel was taken from."""
    steps = [step for step in preprocessing["steps"] if step.get("name") in GEOMETRIC_STEPS]
    transform = build_transforms(steps, "preprocessing steps") if steps else None
    width, height = size
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32) + 0.5, np.arange(height, dtype=np.float32) + 0.5)
    moved = []
    for ramp in (columns, rows):
        image = Image.fromarray(ramp)
        moved.append(np.asarray(transform(image) if transform else image, dtype=np.float32))
    left, right = _axis_span(moved[0][moved[0].shape[0] // 2, :])
    top, bottom = _axis_span(moved[1][:, moved[1].shape[1] // 2])
    return left, top, right, bottom


def overlay(picture: np.ndarray, cam: np.ndarray, box: Tuple[float, float, float, float]) -> np.ndarray:
    """`picture` (uint8 HWC or HW) with `cam` ([h, w] in [0, 1], the model's input) coloured by matplotlib's
    jet colour map and blended over `box` (see `input_box`); outside it, where the model saw nothing, the
    picture is left as it is. Returns uint8 [H, W, 3]."""
    picture = np.asarray(picture)
    rgb = np.repeat(picture[:, :, None], 3, axis=2) if picture.ndim == 2 else picture[:, :, :3]
    height, width = rgb.shape[:2]
    left, top, right, bottom = box
    # the map resampled onto every picture pixel whose centre lies in the box
    xs = (np.arange(width) + 0.5 - left) / (right - left) * cam.shape[1] - 0.5
    ys = (np.arange(height) + 0.5 - top) / (bottom - top) * cam.shape[0] - 0.5
    inside = ((xs >= -0.5) & (xs <= cam.shape[1] - 0.5))[None, :] & ((ys >= -0.5) & (ys <= cam.shape[0] - 0.5))[:, None]
    heat = _bilinear(cam, ys.clip(0, cam.shape[0] - 1), xs.clip(0, cam.shape[1] - 1))
    colours = matplotlib.colormaps["jet"](heat)[:, :, :3] * 255
    blended = np.where(inside[:, :, None], CAM_WEIGHT * colours + (1 - CAM_WEIGHT) * rgb, rgb)
    return blended.round().clip(0, 255).astype(np.uint8)


def picture_overlay(image: Image.Image, cam: np.ndarray, preprocessing: dict) -> np.ndarray:
    """`overlay` of `cam` on the PIL `image` as the user sees it, over the part the model's input shows
    (`input_box` of the `preprocessing` steps), the picture shrunk to at most MAX_OVERLAY_SIDE pixels on its long
    side. Returns uint8 [H, W, 3]."""
    box, scale = input_box(preprocessing, image.size), min(1.0, MAX_OVERLAY_SIDE / max(image.size))
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        box = tuple(edge * scale for edge in box)
    return overlay(np.asarray(image.convert("RGB")), cam, box)


def _bilinear(grid, ys, xs):
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, grid.shape[0] - 1), np.minimum(x0 + 1, grid.shape[1] - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x1] * wx
    bottom = grid[y1][:, x0] * (1 - wx) + grid[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 HWC image as PNG file contents."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
