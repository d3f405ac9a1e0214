"""Exporting a trained model for deployment (`paddle.jit.save`), and running the export with `paddle.inference`."""
import json
import os

import numpy as np
import paddle

from ..data.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from ..data.preprocess import config_label_names
from ..errors import CheckpointError
from ..utils.logger import logger

EXPORT_DIR = "inference"


def _preprocessing(config):
    spec = config["DataLoader"]["Test"]["dataset"]
    if spec["name"] == "CIFAR10Dataset":
        steps = [{"name": "ToCHW"}, {"name": "Scale", "factor": 1 / 255},
                 {"name": "Normalize", "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}]
    else:
        steps = spec.get("transforms") or []
    return {"input_shape": config["Global"]["image_shape"], "dtype": "float32", "image_backend": spec.get("backend", "pil"),
            "color": "L" if config["Global"]["image_shape"][0] == 1 else "RGB", "steps": steps,
            "label_names": list(config_label_names(config))}


def export(config):
    """Write `<output_dir>/inference/model.*` (a Paddle inference model taking float32 [N, C, H, W]) and
    `preprocess.json` beside it (input shape, the steps from an image to that input, label names).

    Refuses (CheckpointError) when there are no trained weights to export.

    Returns:
        The folder written.
    """
    from .inference import load_trained_model  # inference imports this module

    model = load_trained_model(config)
    folder = os.path.join(config["Global"]["output_dir"], EXPORT_DIR)
    spec = paddle.static.InputSpec([None, *config["Global"]["image_shape"]], "float32", "image")
    paddle.jit.save(model, os.path.join(folder, "model"), input_spec=[spec])
    with open(os.path.join(folder, "preprocess.json"), "w", encoding="utf-8") as file:
        json.dump(_preprocessing(config), file, indent=2)
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
