"""An exported model as a classifier of image files: `Predictor`, and `top_k`, the most probable classes of
one sample's logits."""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple, Union

import numpy as np
import paddle
from PIL import Image

from ..data.folder import read_image
from ..data.preprocessing import build_preprocess
from ..errors import CheckpointError, ConfigError
from ..engine.input_check import PROBE_SIZE
from .backends import PREPROCESS_FILE, exported_model, read_export_info


def top_k(logits: np.ndarray, names: Sequence[str], k: int) -> List[Tuple[str, float]]:
    """The k most probable `(class name, probability)` of one sample's logits.

    Raises:
        CheckpointError: the model scores another number of classes than there are names, which would give
            wrong labels.
    """
    if len(logits) != len(names):
        raise CheckpointError(f"the model scores {len(logits)} classes but {len(names)} class names go with it "
                              f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): predict with the "
                              "config (and classes.json) of the run that trained it")
    probabilities = np.exp(logits - np.max(logits))
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities)[:k]
    return [(names[i], float(probabilities[i])) for i in order]


class Predictor:
    """An exported model as a classifier of images, needing only its folder: the steps of `preprocess.json`,
    the model through `engine` (inference or onnxruntime), and the class names it was trained with.

    `predictor(images, topk)` takes image file paths or PIL images and returns, for each, the `topk` most
    probable `(class name, probability)`. The images are preprocessed on the CPU; `device` (cpu, gpu:N; default
    Paddle's current one) is where the inference engine runs the model.

    Raises:
        ConfigError: the steps of `preprocess.json` do not turn a picture of any size into the model's input
            (an export made before `export` checked that), so that no image is refused later.
    """

    def __init__(self, folder, engine="inference", threads=None, device=None):
        self.info = read_export_info(folder)
        self.names = self.info["label_names"]
        self.preprocess = build_preprocess(self.info)
        try:
            self.preprocess(Image.new(self.info["color"], PROBE_SIZE))
        except ConfigError as exc:
            raise ConfigError(f"{os.path.join(folder, PREPROCESS_FILE)}: {exc}; then export again") from None
        self.model = exported_model(folder, engine, threads, device)
        self.device = "cpu" if engine == "onnxruntime" else device or paddle.get_device()  # where the model runs

    def inputs(self, images: Sequence[Union[str, Image.Image]]) -> np.ndarray:
        """The model's float32 [N, C, H, W] input for image paths or PIL images."""
        color = self.info["color"]
        return np.stack([self.preprocess(read_image(image, 1 if color == "L" else 3) if isinstance(image, str)
                                         else image.convert(color)) for image in images])

    def __call__(self, images, topk=1):
        if not images:
            return []
        logits = self.model(self.inputs(images))
        return [top_k(row, self.names, topk) for row in logits]
