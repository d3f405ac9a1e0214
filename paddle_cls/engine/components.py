"""The pieces both engines train, from the config: the model, its optimizer (and schedule), the loss and the metric."""
from dataclasses import dataclass

import paddle

from ..build import build
from ..losses import LOSSES
from ..metrics import METRICS
from ..models import MODELS
from ..optim import OptimizerParts, build_optimizer


def build_model(config: dict) -> paddle.nn.Layer:
    """The network of the `Arch` section."""
    return build(MODELS, config["Arch"], "Arch")


def build_loss(config):
    """The loss of the `Loss` section (CrossEntropyLoss when the section is absent)."""
    return build(LOSSES, config.get("Loss") or {"name": "CrossEntropyLoss"}, "Loss")


def build_metric(config):
    """The metric of the `Metric` section (the course's Accuracy when the section is absent)."""
    return build(METRICS, config.get("Metric") or {"name": "Accuracy"}, "Metric")


@dataclass
class Components:
    """What both engines train: the network, its optimizer (and schedule), the loss and the metric."""

    model: paddle.nn.Layer
    optim: OptimizerParts
    loss_fn: object
    metric: object


def build_components(config: dict) -> Components:
    """Model, optimizer, loss and metric from the config; built before any data is read, so a config
    mistake surfaces at once. With `Global.to_static` the model's forward is compiled by
    `paddle.jit.to_static`."""
    model = build_model(config)
    if config["Global"]["to_static"]:
        model = paddle.jit.to_static(model)
    return Components(model, build_optimizer(config["Optimizer"], model.parameters()),
                      build_loss(config), build_metric(config))
