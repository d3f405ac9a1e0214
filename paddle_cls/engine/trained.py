"""A trained model: finding and loading its weights, and testing it on the test split."""
import os
from typing import Tuple

import paddle

from ..data.loader import build_loader
from ..errors import CheckpointError
from ..utils.checkpoint import load_model_file
from ..utils.logger import logger
from ..utils.runtime import set_device
from .components import build_loss, build_metric, build_model
from .runner import RunnerV3

BEST_MODEL = "best_model.pdparams"


def trained_weights_path(config: dict) -> str:
    """`Global.checkpoint`, else the best model in `Global.output_dir`."""
    settings = config["Global"]
    return settings["checkpoint"] or os.path.join(settings["output_dir"], BEST_MODEL)


def load_trained_model(config: dict) -> paddle.nn.Layer:
    """The config's model with the weights of `Global.checkpoint`, else the best model in `Global.output_dir`."""
    settings = config["Global"]
    checkpoint = trained_weights_path(config)
    if not os.path.isfile(checkpoint):
        raise CheckpointError(f"no model file at {checkpoint}: train first (tools/train.py -c CONFIG) "
                              "or name one with -o Global.checkpoint=PATH")
    set_device(settings["device"], settings["num_threads"])
    model = build_model(config)
    load_model_file(model, checkpoint)
    model.eval()
    logger.info(f"Loaded {checkpoint}")
    return model


def test_model(model: paddle.nn.Layer, config: dict, metric=None) -> Tuple[float, float, int]:
    """Evaluate `model` on the test split with RunnerV3 and print the course's `[Test]` line.

    Args:
        metric: the metric to use instead of the config's (built from the same `Metric` section).

    Returns:
        `(accuracy, loss, number of samples evaluated)`.
    """
    runner = RunnerV3(model, None, build_loss(config), metric or build_metric(config))
    score, loss = runner.evaluate(build_loader(config, "Test"))
    logger.info(f"[Test] accuracy/loss: {score:.4f}/{loss:.4f}")
    return score, loss, runner.metric.num_count
