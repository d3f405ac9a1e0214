"""Data-parallel runs under `paddle.distributed.launch`: which process writes, waiting for it, and summing across
processes."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import paddle

from .logger import logger

try:
    import fcntl
except ImportError:  # Windows, where Paddle launches no multi-process runs
    fcntl = None

_initialised = False


def rank() -> int:
    """This process's rank under `paddle.distributed.launch` (0 when not launched)."""
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def world_size() -> int:
    """How many processes the launcher started (1 when not launched)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def run_alone() -> None:
    """Make launched rank 0 a single process from now on: `world_size()` 1 here, in Paddle (whose `ParallelEnv`
    reads the same variables), in the CPU thread count and in the processes it starts (loader workers).
    For the commands one process does whole (eval, predict, export, check-data), which then need no process
    group: the other ranks never join one, they exit."""
    os.environ.update(PADDLE_TRAINERS_NUM="1", PADDLE_GLOBAL_SIZE="1", PADDLE_LOCAL_SIZE="1")


def is_main_process() -> bool:
    """True on rank 0, the one process that writes logs, checkpoints, figures and records."""
    return rank() == 0


def init_parallel() -> None:
    """Join the launcher's process group (NCCL on GPUs, gloo on CPU) once; a no-op for a single process."""
    global _initialised
    if world_size() > 1 and not _initialised:
        paddle.distributed.init_parallel_env()
        _initialised = True


def all_reduce_sum(tensor: paddle.Tensor) -> paddle.Tensor:
    """`tensor` summed over all processes (itself when not launched)."""
    if world_size() > 1:
        paddle.distributed.all_reduce(tensor)
    return tensor


def barrier() -> None:
    """Wait until every process of the launched run gets here (returns at once when not launched): after rank 0
    writes a file that the others then read."""
    if world_size() > 1:
        paddle.distributed.barrier()


@contextlib.contextmanager
def one_process_at_a_time(lock_path: str, what: str) -> Iterator[None]:
    """Run the block in one process at a time on this machine, the others waiting their turn: for a download that
    every rank of a launched run (or two runs at once) would otherwise write into the same file together.

    Args:
        lock_path: the lock file (created, with its folder, if missing; left in place). An advisory `flock`,
            released when the holder ends, even by a crash; none where the folder cannot be written or on Windows.
        what: what is being done, for the one line a waiting process prints, e.g. 'the CIFAR-10 download'.
    """
    try:
        os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
        lock = open(lock_path, "a") if fcntl else None
    except OSError:  # a read-only cache: the download itself says what is wrong
        lock = None
    if lock is None:
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(f"Waiting for another process to finish {what} (lock {lock_path})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock
