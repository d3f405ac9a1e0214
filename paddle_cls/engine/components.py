"""Turn a config into the pieces of a run: device, seed, model, loss, metric, datasets and loaders."""
import copy
import os
import random
import shutil
from dataclasses import dataclass

import numpy as np
import paddle

from ..build import build
from ..data import DATASETS, build_transforms
from ..data.batched import CIFAR10BatchLoader
from ..errors import ConfigError
from ..losses import LOSSES
from ..metrics import METRICS
from ..models import MODELS
from ..optim import OptimizerParts, build_optimizer
from ..utils.distributed import rank, world_size
from ..utils.logger import logger

_MIN_SHARED_MEMORY = 1 << 30


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


def default_cpu_threads():
    """The cores this process may use, shared out among the processes a launcher started on this node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("PADDLE_LOCAL_SIZE") or os.environ.get("PADDLE_TRAINERS_NUM") or 1)
    return max(1, cores // max(1, local_processes))


def set_device(name, num_threads=None):
    """Select the device of `Global.device` and return the Paddle device string.

    On CPU, Paddle computes on one thread unless told; this uses `num_threads` (`Global.num_threads`) or,
    when None, every core this process may use (shared among the processes of a data-parallel launch).
    """
    device = resolve_device(name)
    if device.startswith("gpu") and world_size() > 1:
        device = f"gpu:{paddle.distributed.ParallelEnv().device_id}"  # one GPU per launched process
    paddle.set_device(device)
    if device == "cpu":
        threads = num_threads or default_cpu_threads()
        paddle.base.core.set_num_threads(threads)
        device = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device


DETERMINISTIC_FLAGS = ("FLAGS_cudnn_deterministic", "FLAGS_embedding_deterministic", "FLAGS_cpu_deterministic")


def seed_everything(seed, deterministic=False):
    """Seed Python, NumPy and Paddle (`Global.seed`; None leaves them unseeded).

    With `deterministic` (`Global.deterministic`), also set those of Paddle's deterministic-kernel flags that
    this build has (the cuDNN and embedding ones exist in GPU builds only); loader workers are seeded from the
    seed and their id either way (see `build_loader`).

    Returns:
        The flags set.
    """
    flags = []
    for flag in DETERMINISTIC_FLAGS if deterministic else ():
        try:
            paddle.set_flags({flag: True})
            flags.append(flag)
        except ValueError:  # not a flag of this build
            continue
    if deterministic:
        logger.info(f"Global.deterministic: set {', '.join(flags) or 'no flags (none in this build)'}")
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        paddle.seed(seed)
    return flags


def build_model(config):
    """The network of the `Arch` section."""
    return build(MODELS, config["Arch"], "Arch")


def build_loss(config):
    """The loss of the `Loss` section (CrossEntropyLoss when the section is absent)."""
    return build(LOSSES, config.get("Loss") or {"name": "CrossEntropyLoss"}, "Loss")


def build_metric(config):
    """The metric of the `Metric` section (the course's Accuracy when the section is absent)."""
    return build(METRICS, config.get("Metric") or {"name": "Accuracy"}, "Metric")


def _usable_workers(requested, where):
    # Loader workers pass batches through shared memory; where /dev/shm is small (containers) they crash.
    if requested == 0:
        return 0
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        free = 0
    if free < _MIN_SHARED_MEMORY:
        logger.info(f"{where}: {free // 2**20} MB of shared memory free, too little for {requested} loader "
                    "workers; loading in the main process instead (num_workers: 0)")
        return 0
    return requested


def build_dataset(config, split):
    """The dataset of `DataLoader.<split>` (Train, Eval or Test), cut to its `subset` when one is given.

    `subset: [start, stop]` takes positions start..stop-1 of a permutation of the dataset fixed by
    `Global.seed`, so Train [0, 20000] and Eval [20000, 25000] of the same dataset never overlap.
    """
    section = config["DataLoader"].get(split)
    if section is None:
        raise ConfigError(f"DataLoader.{split} is missing from the config")
    settings = config["Global"]
    spec = copy.deepcopy(section["dataset"])
    where = f"DataLoader.{split}.dataset"
    if "transforms" in spec:
        spec["transforms"] = build_transforms(spec["transforms"], f"{where}.transforms")
    dataset = build(DATASETS, spec, where, folder_path=settings["data_dir"], download=settings["download"])
    if "subset" in section:
        start, stop = section["subset"]
        if stop > len(dataset):
            raise ConfigError(f"DataLoader.{split}.subset: [{start}, {stop}] but the dataset holds {len(dataset)} samples")
        order = np.random.RandomState(settings["seed"] or 0).permutation(len(dataset))
        dataset = paddle.io.Subset(dataset, order[start:stop].tolist())
    if len(dataset) == 0:
        raise ConfigError(f"DataLoader.{split}: the dataset is empty")
    return dataset


def loader_settings(config, split):
    """batch_size, shuffle, drop_last and num_workers of `DataLoader.<split>`, with their defaults."""
    section = config["DataLoader"][split]
    return {
        "batch_size": section.get("batch_size", 64),
        "shuffle": section.get("shuffle", split == "Train"),
        "drop_last": section.get("drop_last", False),
        "num_workers": _usable_workers(section.get("num_workers", 0), f"DataLoader.{split}.num_workers"),
    }


class ShardedBatchSampler(paddle.io.BatchSampler):
    """The batches a single process would make, in order, dealt round-robin to the processes of a
    data-parallel run: every sample is evaluated exactly once (no padding duplicates), and summing the
    per-process results gives exactly the single-process numbers."""

    def __init__(self, dataset, batch_size, rank, world_size):
        self.num_samples = len(dataset)
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def __iter__(self):
        starts = range(self.rank * self.batch_size, self.num_samples, self.world_size * self.batch_size)
        for start in starts:
            yield list(range(start, min(start + self.batch_size, self.num_samples)))

    def __len__(self):
        batches = -(-self.num_samples // self.batch_size)
        return len(range(self.rank, batches, self.world_size))


def _worker_seeder(seed):
    """A loader `worker_init_fn` giving each worker process its own fixed stream for random transforms."""
    if seed is None:
        return None

    def seed_worker(worker_id):
        random.seed(seed + worker_id)
        np.random.seed(seed + worker_id)

    return seed_worker


def build_loader(config, split, evaluation=None, padded_shards=False):
    """A `paddle.io.DataLoader` over the dataset of `DataLoader.<split>` (Train, Eval or Test), for both engines.

    In a data-parallel run the training split is shared out by Paddle's `DistributedBatchSampler` (shuffled
    per epoch), and evaluation splits (or the training split with `evaluation=True`) by `ShardedBatchSampler`,
    or, with `padded_shards`, by an unshuffled `DistributedBatchSampler`: equal shards padded with repeated
    samples, which `paddle.Model`'s evaluation needs (it gathers every batch across processes) and removes.
    """
    worker_init = _worker_seeder(config["Global"]["seed"])
    dataset, settings = build_dataset(config, split), loader_settings(config, split)
    section = config["DataLoader"][split]
    if section.get("batched") or section.get("on_device"):
        if world_size() == 1:
            return _batch_loader(dataset, settings, section, split)
        logger.info(f"DataLoader.{split}: whole-batch loading is single-process; using paddle.io.DataLoader")
    if world_size() == 1:
        return paddle.io.DataLoader(dataset, worker_init_fn=worker_init, **settings)
    evaluating = evaluation if evaluation is not None else split != "Train"
    if evaluating and not padded_shards:
        sampler = ShardedBatchSampler(dataset, settings["batch_size"], rank(), world_size())
    elif evaluating:
        sampler = paddle.io.DistributedBatchSampler(dataset, settings["batch_size"], shuffle=False)
    else:
        sampler = paddle.io.DistributedBatchSampler(dataset, settings["batch_size"], shuffle=settings["shuffle"],
                                                    drop_last=settings["drop_last"])
    return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=settings["num_workers"],
                                worker_init_fn=worker_init)


def _batch_loader(dataset, settings, section, split):
    where = f"DataLoader.{split}"
    if section["dataset"]["name"] != "CIFAR10Dataset":
        raise ConfigError(f"{where}.batched/on_device: whole-batch loading is for CIFAR10Dataset only, "
                          f"not {section['dataset']['name']}")
    return CIFAR10BatchLoader(dataset, settings["batch_size"], shuffle=settings["shuffle"],
                              drop_last=settings["drop_last"], on_device=section.get("on_device", False))


@dataclass
class Components:
    """What both engines train: the network, its optimizer (and schedule), the loss and the metric."""

    model: paddle.nn.Layer
    optim: OptimizerParts
    loss_fn: object
    metric: object


def amp_level(config, device):
    """`Global.amp` as the level to train with: None when off, and on CPU (reported, then ignored)."""
    level = config["Global"]["amp"]
    if level == "off":
        return None
    if not device.startswith("gpu"):
        logger.info(f"Global.amp: {level} is for GPUs; training in float32 on {device}")
        return None
    return level


def build_components(config):
    """Model, optimizer, loss and metric from the config; built before any data is read, so a config
    mistake surfaces at once. With `Global.to_static` the model's forward is compiled by
    `paddle.jit.to_static`."""
    model = build_model(config)
    if config["Global"]["to_static"]:
        model = paddle.jit.to_static(model)
    return Components(model, build_optimizer(config["Optimizer"], model.parameters()),
                      build_loss(config), build_metric(config))
