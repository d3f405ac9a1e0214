"""The pictures of the evaluation report, as `data:` URIs to inline in the page: test samples as the user sees
them, the reliability diagram and the training curves (matplotlib)."""
from __future__ import annotations

import base64
import io
import math
import os
from typing import Callable, List, Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np
import paddle
from PIL import Image

from ..data.folder import ImageFiles, ImageFolder, read_image
from ..data.samples import base_dataset, raw_image

LARGEST_SIDE = 256  # gallery pictures are shrunk to this (px); small ones are enlarged by the page, not here
PNG_UP_TO = 128 * 128  # pixels: PNG keeps small pictures exact; larger ones (photos) go as JPEG


def picture_uri(image: np.ndarray) -> str:
    """A uint8 picture [H, W, 3] or [H, W] as a `data:` URI: PNG up to 128 x 128 pixels, else JPEG (quality
    90), shrunk to at most `LARGEST_SIDE` pixels a side, aspect kept."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    picture.thumbnail((LARGEST_SIDE, LARGEST_SIDE), Image.LANCZOS)
    buffer = io.BytesIO()
    if picture.width * picture.height <= PNG_UP_TO:
        picture.save(buffer, format="PNG")
        kind = "png"
    else:
        picture.save(buffer, format="JPEG", quality=90)
        kind = "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def original_picture(dataset: paddle.io.Dataset) -> Callable[[int], Tuple[np.ndarray, str, str]]:
    """index -> `(picture, source, path)` for `report.write_report`: sample `index` of `dataset` as the user
    sees it, not as the model does: an image file decoded upright in colour (EXIF orientation, see
    `data.folder.in_model_mode`), its path (relative to an `ImageFolder`'s root as the source); CIFAR-10's
    32 x 32 and MNIST's 28 x 28 pictures named `test[index]`, as `paddle-cls predict --index` names them."""
    base, to_base = base_dataset(dataset)

    def picture(index: int) -> Tuple[np.ndarray, str, str]:
        if isinstance(base, ImageFiles):
            path = base.samples[to_base(index)][0]
            source = os.path.relpath(path, base.root) if isinstance(base, ImageFolder) else path
            return np.asarray(read_image(path)), source, path
        return raw_image(dataset, index), f"test[{index}]", f"test[{index}]"

    return picture


def _figure_uri(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def reliability_diagram(bins: Sequence[dict], ece: float) -> str:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration and each bin's gap to it,
    above the number of samples per bin (Guo et al. 2017, fig. 1). `bins`: the rows of
    `report.expected_calibration_error`."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["upper"] - bins[0]["lower"]
    filled = [row for row in bins if row["count"]]
    left = [row["lower"] for row in filled]
    top.bar(left, [row["accuracy"] for row in filled], width=width, align="edge", color="#1f77b4",
            edgecolor="black", label="accuracy")
    top.bar(left, [row["confidence"] - row["accuracy"] for row in filled], width=width, align="edge",
            bottom=[row["accuracy"] for row in filled], color="#d62728", alpha=0.3, hatch="//", label="gap")
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"ECE = {ece:.4f} ({len(bins)} bins)")
    top.legend(loc="upper left")
    bottom.bar([row["lower"] for row in bins], [row["count"] for row in bins], width=width, align="edge",
               color="grey", edgecolor="black")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("samples")
    fig.tight_layout()
    return _figure_uri(fig)


def _points(rows: List[dict], field: str, scale: float = 1.0):
    kept = [row for row in rows if isinstance(row.get(field), (int, float)) and math.isfinite(row[field])]
    return [row["epoch"] + 1 for row in kept], [scale * row[field] for row in kept]


def training_curves(history: List[dict]) -> str:
    """Loss and accuracy per epoch (counted from 1), train and dev, from `history.json` rows (see
    `utils.history`); fields a run did not measure are left out."""
    fig, (losses, accuracies) = plt.subplots(1, 2, figsize=(10, 3.6))
    for axis, kind, scale in ((losses, "loss", 1.0), (accuracies, "accuracy", 100.0)):
        for split, style in (("train", "-o"), ("dev", "--s")):
            epochs, values = _points(history, f"{split}_{kind}", scale)
            if epochs:
                axis.plot(epochs, values, style, markersize=3, label=f"{split} {kind}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(kind if kind == "loss" else "accuracy (%)")
        if axis.has_data():
            axis.legend()
    fig.tight_layout()
    return _figure_uri(fig)
