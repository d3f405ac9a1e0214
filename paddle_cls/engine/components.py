"""Turn a config into the pieces of a run: device, seed, model, loss, metric, datasets and loaders."""
import random

import numpy as np
import paddle

from ..build import build
from ..data import DATASETS
from ..errors import ConfigError
from ..losses import LOSSES
from ..metrics import METRICS
from ..models import MODELS


def resolve_device(name):
    """Map `Global.device` (auto | cpu | gpu | gpu:N) to a Paddle device string, as the course chooses it.

    `auto` is `gpu:0` when Paddle is built with CUDA and a GPU is visible, else `cpu`.
    """
    has_cuda = paddle.is_compiled_with_cuda()
    gpus = paddle.device.cuda.device_count() if has_cuda else 0
    if name == "auto":
        return "gpu:0" if gpus else "cpu"
    if name == "cpu":
        return name
    if not has_cuda:
        raise ConfigError(f"Global.device: {name} needs a CUDA build of Paddle, but this one "
                          f"({paddle.__version__}) is CPU-only: install paddlepaddle-gpu, or set Global.device: cpu")
    index = int(name.partition(":")[2] or 0)
    if index >= gpus:
        raise ConfigError(f"Global.device: {name}, but {gpus} GPU(s) are visible: use gpu:0..gpu:{gpus - 1} or cpu")
    return f"gpu:{index}"


def set_device(name):
    """Select the device of `Global.device` and return the Paddle device string."""
    device = resolve_device(name)
    paddle.set_device(device)
    return device


def seed_everything(seed):
    """Seed Python, NumPy and Paddle (`Global.seed`; None leaves them unseeded)."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def build_model(config):
    """The network of the `Arch` section."""
    return build(MODELS, config["Arch"], "Arch")


def build_loss(config):
    """The loss of the `Loss` section (CrossEntropyLoss when the section is absent)."""
    return build(LOSSES, config.get("Loss") or {"name": "CrossEntropyLoss"}, "Loss")


def build_metric(config):
    """The metric of the `Metric` section (the course's Accuracy when the section is absent)."""
    return build(METRICS, config.get("Metric") or {"name": "Accuracy"}, "Metric")


def build_loader(config, split):
    """A `paddle.io.DataLoader` over the dataset of `DataLoader.<split>` (Train, Eval or Test)."""
    section = config["DataLoader"].get(split)
    if section is None:
        raise ConfigError(f"DataLoader.{split} is missing from the config")
    global_cfg = config["Global"]
    dataset = build(DATASETS, section["dataset"], f"DataLoader.{split}.dataset",
                    folder_path=global_cfg["data_dir"], download=global_cfg["download"])
    return paddle.io.DataLoader(
        dataset,
        batch_size=section.get("batch_size", 64),
        shuffle=section.get("shuffle", False),
        drop_last=section.get("drop_last", False),
        num_workers=section.get("num_workers", 0),
    )
