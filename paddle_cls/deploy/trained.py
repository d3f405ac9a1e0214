"""A trained model: finding and loading its weights, running it (or its export) as a layer, and testing it on the
test split."""
from __future__ import annotations

import json
import os
from typing import Optional, Tuple

import paddle

from ..data.loader import build_loader, class_names
from ..engine.components import build_loss, build_metric, build_model
from ..models.cpu_conv import apply_cpu_conv
from ..engine.runner import RunnerV3
from ..errors import CheckpointError
from ..utils.logger import logger
from ..utils.precision import amp_level
from ..utils.runtime import set_device
from ..utils.weights import load_model_file
from .backends import EXPORT_DIR, choose_engine, exported_model, read_export_info

BEST_MODEL = "best_model.pdparams"
RESULTS_FILE = "results.json"


def trained_weights(config: dict) -> Tuple[str, str]:
    """The trained weights to use and what they are: `Global.checkpoint`, else the weights file the last run in
    `Global.output_dir` tested (named in its `results.json`: the best model, or the final weights of a run
    without dev evaluation), else the best model there, else its final weights (`Global.save_name`).

    Returns:
        `(path, description)`, the path not necessarily existing.
    """
    settings = config["Global"]
    if settings["checkpoint"]:
        return settings["checkpoint"], "Global.checkpoint"
    output_dir = settings["output_dir"]
    try:
        with open(os.path.join(output_dir, RESULTS_FILE), encoding="utf-8") as file:
            tested = json.load(file).get("tested_weights")
    except (OSError, ValueError, AttributeError):
        tested = None
    best, final = os.path.join(output_dir, BEST_MODEL), os.path.join(output_dir, settings["save_name"])
    if isinstance(tested, str) and tested != BEST_MODEL:
        path = os.path.join(output_dir, os.path.basename(tested))  # a file name: the folder may have moved
        if os.path.isfile(path):
            return path, "the final weights, which the run tested: no dev evaluation chose a best model"
    if not os.path.isfile(best) and os.path.isfile(final):  # a run without a dev or a test split
        return final, "the final weights: no dev evaluation chose a best model"
    return best, "the best model"


def trained_weights_path(config: dict) -> str:
    """The path of `trained_weights`."""
    return trained_weights(config)[0]


def load_trained_model(config: dict) -> paddle.nn.Layer:
    """The config's model with the weights of `trained_weights`."""
    settings = config["Global"]
    checkpoint, description = trained_weights(config)
    if not os.path.isfile(checkpoint):
        raise CheckpointError(f"no model file at {checkpoint}: train first (tools/train.py -c CONFIG) "
                              "or name one with -o Global.checkpoint=PATH")
    set_device(settings["device"], settings["num_threads"])
    model = build_model(config)
    load_model_file(model, checkpoint)
    model.eval()
    logger.info(f"Loaded {checkpoint} ({description})")
    return model


class _ExportAsLayer:
    """An exported model where RunnerV3 expects a layer: tensors in, logits tensor out."""

    def __init__(self, run):
        self.run = run

    def eval(self):
        return self

    def __call__(self, images):
        return paddle.to_tensor(self.run(images.numpy()))


def _listed(names):
    return ", ".join(names[:5]) + (f" ... ({len(names)} in all)" if len(names) > 5 else "")


def trained_model(config: dict, engine: str = "auto") -> paddle.nn.Layer:
    """The trained model run by `engine` (dygraph, inference, onnxruntime, or auto: see
    `backends.choose_engine`), as a layer: a tensor [N, C, H, W] in, its logits out."""
    settings = config["Global"]
    folder = os.path.join(settings["output_dir"], EXPORT_DIR)
    set_device(settings["device"], settings["num_threads"])  # first: auto picks onnxruntime for a CPU only
    engine = choose_engine(engine, folder, trained_weights_path(config), paddle.get_device())
    if engine == "dygraph":
        model = load_trained_model(config)
        apply_cpu_conv(model, settings["cpu_conv"], paddle.get_device())  # not in load_trained_model: export's
        return model
    info = read_export_info(folder)
    names, shape = list(class_names(config)), settings["image_shape"]
    if info["label_names"] != names or list(info["input_shape"]) != list(shape):
        raise CheckpointError(f"the export in {folder} was made for another config: its classes are "
                              f"{_listed(info['label_names'])}, input {info['input_shape']}; this config's are "
                              f"{_listed(names)}, input {shape}. Export again with `paddle-cls export -c CONFIG`")
    logger.info(f"Running the export in {folder} with {engine}")
    return _ExportAsLayer(exported_model(folder, engine, settings["num_threads"]))


def run_precision(model: paddle.nn.Layer, config: dict) -> Tuple[Optional[str], str]:
    """`(amp level, dtype)` to run `model` with as the config's run trained: its `Global.amp` where this device
    has it (see `runtime.amp_level`), None for float32; None too for a model that is not a `paddle.nn.Layer`
    (an export, which computes in float32)."""
    settings = config["Global"]
    level = amp_level(config, paddle.get_device(), report=False) if isinstance(model, paddle.nn.Layer) else None
    return level, settings["amp_dtype"]


def test_model(model: paddle.nn.Layer, config: dict,
               metric: Optional[paddle.metric.Metric] = None) -> Tuple[float, float, int]:
    """Evaluate `model` on the test split with RunnerV3 and print the course's `[Test]` line.

    The model runs under the run's mixed precision (`run_precision`); at O2 it is decorated in place
    (`utils.precision.decorate_o2`) unless the training already did it.

    Args:
        metric: the metric to use instead of the config's (built from the same `Metric` section).

    Returns:
        `(accuracy, loss, number of samples evaluated)`.
    """
    level, dtype = run_precision(model, config)
    runner = RunnerV3(model, None, build_loss(config), metric or build_metric(config), amp_level=level,
                      amp_dtype=dtype)
    score, loss = runner.evaluate(build_loader(config, "Test"))
    logger.info(f"[Test] accuracy/loss: {score:.4f}/{loss:.4f}")
    return score, loss, runner.metric.num_count
