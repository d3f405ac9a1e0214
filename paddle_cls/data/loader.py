"""From a config's `DataLoader` section to datasets and loaders, the same for both engines: datasets by name,
subsets, loader settings, the samplers of a data-parallel run, and whole-batch CIFAR-10 loading."""
import copy
import random
import shutil
from typing import Optional

import numpy as np
import paddle

from ..build import build
from ..errors import ConfigError
from ..utils.distributed import rank, world_size
from ..utils.logger import logger
from . import DATASETS
from .batched import CIFAR10BatchLoader
from .transforms import build_transforms

_MIN_SHARED_MEMORY = 1 << 30


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


def build_dataset(config: dict, split: str) -> paddle.io.Dataset:
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


def loader_settings(config: dict, split: str) -> dict:
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


def build_loader(config: dict, split: str, evaluation: Optional[bool] = None, padded_shards: bool = False):
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
