"""An exported model as a classifier of image files: `Predictor`, and `top_k`, the most probable classes of
one sample's logits."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
from PIL import Image

from ..data.folder import read_image
from ..data.preprocessing import build_preprocess
from ..data.reduced_decode import decode_size
from ..data.transforms import build_transforms
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
    probable `(class name, probability)`. The images are preprocessed on the CPU, in `workers` threads (default:
    one per core; Pillow decodes and resizes without holding the GIL), `batch_size` at a time while the model
    runs on the batch before; JPEG files are decoded at the reduced scale the steps allow (`decode_size`).
    `device` (cpu, gpu:N; default Paddle's current one) is where the inference engine runs the model.

    Raises:
        ConfigError: the steps of `preprocess.json` do not turn a picture of any size into the model's input
            (an export made before `export` checked that), so that no image is refused later.
    """

    def __init__(self, folder, engine="inference", threads=None, device=None, batch_size=32, workers=None):
        self.info = read_export_info(folder)
        self.names = self.info["label_names"]
        self.preprocess = build_preprocess(self.info)
        try:
            self.preprocess(Image.new(self.info["color"], PROBE_SIZE))
        except ConfigError as exc:
            raise ConfigError(f"{os.path.join(folder, PREPROCESS_FILE)}: {exc}; then export again") from None
        self.decode_size = decode_size(build_transforms(self.info["steps"], "preprocess.json steps"))
        self.model = exported_model(folder, engine, threads, device)
        self.device = "cpu" if engine == "onnxruntime" else device or paddle.get_device()  # where the model runs
        self.batch_size = batch_size
        self.workers = workers or os.cpu_count() or 1
        self._pool: Optional[ThreadPoolExecutor] = None

    def _input(self, image):
        color = self.info["color"]
        if isinstance(image, str):
            return self.preprocess(read_image(image, 1 if color == "L" else 3, self.decode_size))
        return self.preprocess(image.convert(color))

    def _start(self, images):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="preprocess")
        return [self._pool.submit(self._input, image) for image in images]

    def inputs(self, images: Sequence[Union[str, Image.Image]]) -> np.ndarray:
        """The model's float32 [N, C, H, W] input for image paths or PIL images."""
        return np.stack([future.result() for future in self._start(images)])

    def __call__(self, images, topk=1):
        batches = [images[start:start + self.batch_size] for start in range(0, len(images), self.batch_size)]
        ranked = []
        pending = self._start(batches[0]) if batches else []
        for index in range(len(batches)):
            inputs = np.stack([future.result() for future in pending])
            # the next batch is decoded while the model runs on this one
            pending = self._start(batches[index + 1]) if index + 1 < len(batches) else []
            ranked += [top_k(row, self.names, topk) for row in self.model(inputs)]
        return ranked
