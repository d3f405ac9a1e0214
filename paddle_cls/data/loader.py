"""From a config's `DataLoader` section to datasets and loaders, the same for both engines: datasets by name,
subsets, loader settings, the samplers of a data-parallel run, and whole-batch CIFAR-10 loading."""
from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import shutil
from typing import Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..build import build
from ..config_schema import loader_defaults
from ..errors import ConfigError, DataError
from ..utils.distributed import rank, world_size
from ..utils.logger import logger
from .catalog import DATASETS, dataset_type
from .batched import CIFAR10BatchLoader
from .file_loader import ImageFilesLoader
from .folder import ImageFiles, check_every_class_has_images
from .samples import base_dataset
from .preprocessing import split_transforms
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


_built = None  # within datasets_built_once: the datasets built so far, by split and the settings they were built from


@contextlib.contextmanager
def datasets_built_once() -> Iterator[None]:
    """Within it (one run), `build_dataset` builds each split's dataset once and hands the same one to every later
    caller with the same settings: the checks before training, the class names, the model's class count, the
    loaders and the test all share it (a folder of photos is indexed once, not a dozen times)."""
    global _built
    outer = _built
    _built = {} if outer is None else outer
    try:
        yield
    finally:
        _built = outer


def build_dataset(config: dict, split: str) -> paddle.io.Dataset:
    """The dataset of `DataLoader.<split>` (Train, Eval or Test), cut to its `subset` when one is given.

    Evaluation splits (Eval, Test) use the deterministic part of their transforms; your own images' evaluation
    splits without transforms of their own use that of the training split's.

    `subset: [start, stop]` takes positions start..stop-1 of a permutation of the dataset fixed by
    `Global.seed`, so Train [0, 20000] and Eval [20000, 25000] of the same dataset never overlap.
    """
    section = config["DataLoader"].get(split)
    if section is None:
        raise ConfigError(f"DataLoader.{split} is missing from the config")
    settings = config["Global"]
    key = json.dumps([split, config["DataLoader"], settings["data_dir"], settings["download"], settings["seed"]],
                     sort_keys=True, default=str)
    if _built is not None and key in _built:
        return _built[key]
    dataset = _build_dataset(config, split, section, settings)
    if _built is not None:
        _built[key] = dataset
    return dataset


def _build_dataset(config, split, section, settings):
    spec = copy.deepcopy(section["dataset"])
    where = f"DataLoader.{split}.dataset"
    specs = split_transforms(config, split)
    spec.pop("transform_ops", None)
    if specs is not None:
        spec["transforms"] = build_transforms(specs, f"{where}.transforms")
    dataset = build(DATASETS, spec, where, folder_path=settings["data_dir"], download=settings["download"])
    if "subset" in section:
        start, stop = section["subset"]
        if stop > len(dataset):
            raise ConfigError(f"DataLoader.{split}.subset: [{start}, {stop}] but the dataset holds {len(dataset)} "
                              "samples")
        order = np.random.RandomState(settings["seed"] or 0).permutation(len(dataset))
        dataset = paddle.io.Subset(dataset, order[start:stop].tolist())
    if len(dataset) == 0:
        raise ConfigError(f"DataLoader.{split}: the dataset is empty")
    return dataset


CLASSES_FILE = "classes.json"


def class_names(config: dict) -> Tuple[str, ...]:
    """The class names the config's model is trained on, in label order.

    CIFAR-10's and MNIST's are known by name; your own images' are the training dataset's (folder names or the
    class map), checked to be the same in every split. Where the images are not at hand (predicting on
    another machine), the `classes.json` that training wrote into `Global.output_dir` gives them.
    """
    known = dataset_type(config, "Train").label_names
    if known is not None:
        return tuple(known)
    saved = os.path.join(config["Global"]["output_dir"], CLASSES_FILE)
    try:
        datasets = {split: base_dataset(build_dataset(config, split))[0] for split in config["DataLoader"]}
    except DataError:
        if not os.path.isfile(saved):
            raise
        with open(saved, encoding="utf-8") as file:
            return tuple(json.load(file))
    check_every_class_has_images(datasets["Train"])
    names = {split: tuple(dataset.classes) for split, dataset in datasets.items()}
    for split, classes in names.items():
        if classes != names["Train"]:
            raise DataError(f"DataLoader.{split}'s classes differ from DataLoader.Train's: {list(classes)} against "
                            f"{list(names['Train'])}; give every split the same class folders (or class map)")
    return names["Train"]


def data_summary(config: dict, names: Sequence[str]) -> str:
    """One line saying how many samples each split got and the class `names`, e.g. for a hold-out of your own
    images."""
    splits = [split for split in ("Train", "Eval", "Test") if split in config["DataLoader"]]
    counts = ", ".join(f"{split} {len(build_dataset(config, split)):,}" for split in splits)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"Data: {counts} samples; {len(names)} classes: {shown}"


def check_batches(config: dict) -> None:
    """Refuse, before training, a split that would give no batch: fewer samples than `batch_size` with
    `drop_last: true` (per process for the training split of a data-parallel run, which shares samples out
    before batching), or fewer samples than data-parallel processes; and whole-batch loading asked of a
    dataset that cannot give it.

    Raises:
        ConfigError: naming the split, its sample count, the batch size and what to change.
    """
    processes = world_size()
    for split in [split for split in ("Train", "Eval", "Test") if split in config["DataLoader"]]:
        _check_whole_batches(config, split)
        count, settings = len(build_dataset(config, split)), loader_settings(config, split)
        where, batch_size, drop_last = f"DataLoader.{split}", settings["batch_size"], settings["drop_last"]
        if count < processes:
            raise ConfigError(f"{where}: {count} samples for {processes} data-parallel processes; each process needs "
                              "at least one: launch fewer processes or give the split more samples")
        shared = split == "Train" and processes > 1
        each = -(-count // processes) if shared else count
        sharded = processes > 1 and split != "Train"  # evaluation shards keep every sample
        if drop_last and not sharded and each < batch_size:
            held = f"{count} samples ({each} per process of {processes})" if shared else f"{count} samples"
            raise ConfigError(f"{where}: {held} make no batch of batch_size {batch_size} with drop_last: true; "
                              f"set batch_size to at most {each}, or drop_last: false")


def loader_settings(config: dict, split: str) -> dict:
    """batch_size, shuffle, drop_last and num_workers of `DataLoader.<split>` (`config_schema.loader_defaults` where
    the section leaves one out), with loader workers dropped where shared memory is too small for them."""
    settings = {**loader_defaults(split), **config["DataLoader"][split]}
    return {"batch_size": settings["batch_size"], "shuffle": settings["shuffle"], "drop_last": settings["drop_last"],
            "num_workers": _usable_workers(settings["num_workers"], f"DataLoader.{split}.num_workers")}


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


def build_loader(config: dict, split: str, evaluation: Optional[bool] = None, padded_shards: bool = False) -> Iterable:
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
        _check_whole_batches(config, split)
        if world_size() == 1:
            return _batch_loader(dataset, settings, section)
        logger.info(f"DataLoader.{split}: whole-batch loading is single-process; using paddle.io.DataLoader")
    sampler = _batch_sampler(dataset, settings, evaluation if evaluation is not None else split != "Train",
                             padded_shards)
    if isinstance(base_dataset(dataset)[0], ImageFiles):
        return ImageFilesLoader(dataset, sampler, settings["num_workers"], worker_init)
    return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=settings["num_workers"],
                                worker_init_fn=worker_init)


def _batch_sampler(dataset, settings, evaluating, padded_shards):
    if world_size() == 1:
        return paddle.io.BatchSampler(dataset, shuffle=settings["shuffle"], batch_size=settings["batch_size"],
                                      drop_last=settings["drop_last"])
    if evaluating and not padded_shards:
        return ShardedBatchSampler(dataset, settings["batch_size"], rank(), world_size())
    if evaluating:
        return paddle.io.DistributedBatchSampler(dataset, settings["batch_size"], shuffle=False)
    return paddle.io.DistributedBatchSampler(dataset, settings["batch_size"], shuffle=settings["shuffle"],
                                             drop_last=settings["drop_last"])


def _check_whole_batches(config, split):
    section = config["DataLoader"][split]
    if (section.get("batched") or section.get("on_device")) and not dataset_type(config, split).whole_batches:
        readable = [name for name, kind in DATASETS.items() if kind.whole_batches]
        raise ConfigError(f"DataLoader.{split}.batched/on_device: whole-batch loading is for {', '.join(readable)} "
                          f"only, not {section['dataset']['name']}")


def _batch_loader(dataset, settings, section):
    return CIFAR10BatchLoader(dataset, settings["batch_size"], shuffle=settings["shuffle"],
                              drop_last=settings["drop_last"], on_device=section.get("on_device", False))
