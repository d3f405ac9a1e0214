"""Data-parallel runs under `paddle.distributed.launch`: which process writes, and summing across processes."""
import os

import paddle

_initialised = False


def rank():
    """This process's rank under `paddle.distributed.launch` (0 when not launched)."""
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def world_size():
    """How many processes the launcher started (1 when not launched)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def run_alone():
    """Make launched rank 0 a single process from now on: `world_size()` 1 here, in Paddle (whose `ParallelEnv`
    reads the same variables), in the CPU thread count and in the processes it starts (loader workers).
    For the commands one process does whole (eval, predict, export, check-data), which then need no process
    group: the other ranks never join one, they exit."""
    os.environ.update(PADDLE_TRAINERS_NUM="1", PADDLE_GLOBAL_SIZE="1", PADDLE_LOCAL_SIZE="1")


def is_main_process():
    """True on rank 0, the one process that writes logs, checkpoints, figures and records."""
    return rank() == 0


def init_parallel():
    """Join the launcher's process group (NCCL on GPUs, gloo on CPU) once; a no-op for a single process."""
    global _initialised
    if world_size() > 1 and not _initialised:
        paddle.distributed.init_parallel_env()
        _initialised = True


def all_reduce_sum(tensor):
    """`tensor` summed over all processes (itself when not launched)."""
    if world_size() > 1:
        paddle.distributed.all_reduce(tensor)
    return tensor
