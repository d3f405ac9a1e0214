"""Exporting a trained model for deployment (`paddle.jit.save`), and running the export with `paddle.inference`."""
import json
import os

import numpy as np
import paddle

from ..data.samples import config_label_names
from ..data.transforms import preprocessing_steps
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
        json.dump(dict(preprocessing_steps(config), label_names=list(config_label_names(config))), file, indent=2)
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
