"""Exporting a trained model for deployment (`paddle.jit.save`), and running the export with `paddle.inference`:
as a function of input arrays (`InferenceModel`) or as a classifier of image files (`Predictor`)."""
import json
import os

import numpy as np
import paddle

from ..data.loader import class_names
from ..data.folder import read_image
from ..data.transforms import build_preprocess, preprocessing_steps
from ..errors import CheckpointError
from ..utils.logger import logger
from .trained import load_trained_model

EXPORT_DIR = "inference"


def export(config):
    """Write `<output_dir>/inference/model.*` (a Paddle inference model taking float32 [N, C, H, W]) and
    `preprocess.json` beside it (input shape, the steps from an image to that input, label names).

    Refuses (CheckpointError) when there are no trained weights to export.

    Returns:
        The folder written.
    """
    model = load_trained_model(config)
    folder = os.path.join(config["Global"]["output_dir"], EXPORT_DIR)
    spec = paddle.static.InputSpec([None, *config["Global"]["image_shape"]], "float32", "image")
    paddle.jit.save(model, os.path.join(folder, "model"), input_spec=[spec])
    with open(os.path.join(folder, "preprocess.json"), "w", encoding="utf-8") as file:
        json.dump(dict(preprocessing_steps(config), label_names=list(class_names(config))), file, indent=2)
    logger.info(f"Exported to {folder}")
    return folder


class InferenceModel:
    """An exported model run through `paddle.inference`: `model(images)` maps float32 [N, C, H, W] to logits.

    Args:
        folder: the folder `export` wrote (holding `model.json` with Paddle 3, or `model.pdmodel` with 2.x,
            and `model.pdiparams`).
    """

    def __init__(self, folder):
        program = next((os.path.join(folder, f"model{ext}") for ext in (".json", ".pdmodel")
                        if os.path.isfile(os.path.join(folder, f"model{ext}"))), None)
        params = os.path.join(folder, "model.pdiparams")
        if program is None or not os.path.isfile(params):
            raise CheckpointError(f"no exported model in {folder}: run tools/export.py -c CONFIG first")
        settings = paddle.inference.Config(program, params)
        if not paddle.get_device().startswith("gpu"):
            settings.disable_gpu()
        self.predictor = paddle.inference.create_predictor(settings)

    def __call__(self, images):
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        images = np.ascontiguousarray(images, dtype=np.float32)
        handle.reshape(list(images.shape))
        handle.copy_from_cpu(images)
        self.predictor.run()
        return self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()


def top_k(logits, names, k):
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
    the model through `paddle.inference`, and the class names it was trained with.

    `predictor(images, topk)` takes image file paths or PIL images and returns, for each, the `topk` most
    probable `(class name, probability)`.
    """

    def __init__(self, folder):
        self.model = InferenceModel(folder)
        path = os.path.join(folder, "preprocess.json")
        try:
            with open(path, encoding="utf-8") as file:
                self.preprocessing = json.load(file)
            self.names = list(self.preprocessing["label_names"])
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: missing or unreadable ({exc}); export again with tools/export.py") from None
        self.preprocess = build_preprocess(self.preprocessing)

    def inputs(self, images):
        """The model's float32 [N, C, H, W] input for image paths or PIL images."""
        color = self.preprocessing["color"]
        return np.stack([self.preprocess(read_image(image, 1 if color == "L" else 3) if isinstance(image, str)
                                         else image.convert(color)) for image in images])

    def __call__(self, images, topk=1):
        if not images:
            return []
        logits = self.model(self.inputs(images))
        return [top_k(row, self.names, topk) for row in logits]
