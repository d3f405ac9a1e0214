"""The pieces both engines train, from the config: the model, its optimizer (and schedule), the loss and the metric."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import paddle

from ..build import build
from ..data.catalog import dataset_type
from ..data.loader import class_names
from ..errors import ConfigError
from ..losses import LOSSES
from ..metrics import METRICS
from ..models import MODELS
from ..optim import OptimizerParts, build_optimizer
from ..models.cpu_conv import apply_cpu_conv
from ..models.finetune import FINETUNE_KEYS, prepare_finetune


def build_model(config: dict) -> paddle.nn.Layer:
    """The network of the `Arch` section.

    `num_classes: auto` is the number of classes of the data; for your own images it is also what an omitted
    `num_classes` means, and a number that differs from the data's classes is an error naming both.
    """
    arch = {key: value for key, value in config["Arch"].items() if key not in FINETUNE_KEYS}
    dataset = ((config.get("DataLoader") or {}).get("Train") or {}).get("dataset", {}).get("name")
    wanted = arch.get("num_classes", "auto" if dataset and dataset_type(config, "Train").own_images else None)
    if wanted == "auto" and not dataset:
        raise ConfigError("Arch.num_classes: auto takes the classes of DataLoader.Train.dataset, which is missing")
    if wanted is not None and dataset:
        names = class_names(config)
        if wanted == "auto":
            arch["num_classes"] = len(names)
        elif wanted != len(names):
            raise ConfigError(f"Arch.num_classes: {wanted}, but the training data holds {len(names)} classes "
                              f"({', '.join(names)}): set Arch.num_classes: {len(names)}, or auto")
    return build(MODELS, arch, "Arch")


def build_loss(config: dict) -> Callable:
    """The loss of the `Loss` section (CrossEntropyLoss when the section is absent)."""
    return build(LOSSES, config.get("Loss") or {"name": "CrossEntropyLoss"}, "Loss")


def build_metric(config: dict) -> paddle.metric.Metric:
    """The metric of the `Metric` section (the course's Accuracy when the section is absent)."""
    return build(METRICS, config.get("Metric") or {"name": "Accuracy"}, "Metric")


@dataclass
class Components:
    """What both engines train: the network, its optimizer (and schedule), the loss and the metric."""

    model: paddle.nn.Layer
    optim: OptimizerParts
    loss_fn: object
    metric: object


def check_components(config: dict) -> paddle.nn.Layer:
    """Build the config's model (without initialising its weights), optimizer, loss and metric, so that an
    unknown name or key in Arch, Optimizer, Loss or Metric stops a run before any data is read or file written.

    Returns:
        The model, its weights uninitialised (for checks of its shape only).
    """
    with paddle.LazyGuard():
        model = build_model(config)
        build_optimizer(config["Optimizer"], model.parameters())
    build_loss(config)
    build_metric(config)
    return model


def build_components(config: dict) -> Components:
    """Model (with its pretrained weights, see `finetune`), optimizer, loss and metric from the config; built
    before the training data is read, so a config mistake surfaces at once. On a CPU (`Global.cpu_conv`) its
    convolutions compute as `models.cpu_conv` does; with `Global.to_static` its forward is compiled by
    `paddle.jit.to_static`."""
    model = build_model(config)
    prepare_finetune(model, config)
    apply_cpu_conv(model, config["Global"]["cpu_conv"], paddle.get_device())  # before to_static compiles it
    if config["Global"]["to_static"]:
        model = paddle.jit.to_static(model)
    return Components(model, build_optimizer(config["Optimizer"], model.parameters()),
                      build_loss(config), build_metric(config))
