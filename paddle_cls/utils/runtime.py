"""Where and how a run computes: the device, CPU threads, seeding and determinism (mixed precision: precision.py)."""
from __future__ import annotations

import ctypes
import os
import random
import re
import sys
from typing import List, Optional

import numpy as np
import paddle

from ..errors import ConfigError
from .distributed import world_size
from .logger import logger


def resolve_device(name: str, where: str = "Global.device") -> str:
    """Map a device name (auto | cpu | gpu | gpu:N; `where` names its setting in messages) to a Paddle device
    string, as the course chooses it.

    `auto` is `gpu:0` when Paddle is built with CUDA and a GPU is visible, else `cpu`.

    Raises:
        ConfigError: another name, a GPU on a CPU-only Paddle, or a GPU index that is not visible.
    """
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|gpu(:\d+)?", name):
        raise ConfigError(f"{where}: {name!r} is not a device: use auto, cpu, gpu or gpu:N")
    if name == "cpu":
        return name
    has_cuda = paddle.is_compiled_with_cuda()
    gpus = paddle.device.cuda.device_count() if has_cuda else 0
    if name == "auto":
        return "gpu:0" if gpus else "cpu"
    if not has_cuda:
        raise ConfigError(f"{where}: {name} needs a CUDA build of Paddle, but this one "
                          f"({paddle.__version__}) is CPU-only: install paddlepaddle-gpu, or set {where}: cpu")
    index = int(name.partition(":")[2] or 0)
    if index >= gpus:
        raise ConfigError(f"{where}: {name}, but {gpus} GPU(s) are visible: use gpu:0..gpu:{gpus - 1} or cpu")
    return f"gpu:{index}"


def default_cpu_threads() -> int:
    """The cores this process may use, shared out among the processes a launcher started on this node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("PADDLE_LOCAL_SIZE") or os.environ.get("PADDLE_TRAINERS_NUM") or 1)
    return max(1, cores // max(1, local_processes))


def set_cpu_threads(threads: int) -> None:
    """Compute Paddle's CPU ops on `threads` threads (Paddle has no public call for it; this is the one place
    that reaches its private `paddle.base.core.set_num_threads`)."""
    paddle.base.core.set_num_threads(threads)


# glibc's malloc gives blocks above 128 KB (a threshold it raises up to 32 MB) straight back to the kernel when they
# are freed and trims its heap's free top, so a CPU training step's large tensors (a conv's columns: 9.4 MB at batch
# 64) page-fault afresh on first touch every step: copying 9.4 MB took 3.4 ms, 1.2 ms in memory kept for reuse.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
KEPT_BLOCK_BYTES = 32 * 2 ** 20  # the cap on glibc's own adaptive mmap threshold on 64-bit systems
KEPT_FREE_BYTES = 512 * 2 ** 20
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve blocks of up to 32 MB from its heap and keep up to 512 MB of freed heap for reuse
    (mallopt M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), for this whole process and the processes it forks later
    (DataLoader workers). Each process's resident memory then stays near its peak instead of shrinking between
    steps (ResNet18 training at batch 64: 330-337 MB over a step against 306-327 without) and the CPU training
    path (`Global.cpu_conv`) runs 10-15 % faster. Nothing changes where the user set malloc's thresholds
    (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, or `glibc.malloc` in `GLIBC_TUNABLES`): theirs stand.

    Returns:
        True when glibc's mallopt took both settings; False off Linux, without a C library `mallopt`, or where the
        user's settings stand. (A preloaded jemalloc or tcmalloc ignores them, and True then means nothing.)
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in MALLOC_ENVIRONMENT) \
            or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES))


def set_device(name: str, num_threads: Optional[int] = None) -> str:
    """Select the device of `Global.device` and return the Paddle device string.

    On CPU, Paddle computes on one thread unless told; this uses `num_threads` (`Global.num_threads`) or,
    when None, every core this process may use (shared among the processes of a data-parallel launch).

    Under `paddle.distributed.launch` each process computes where the launcher puts it: a GPU setting becomes
    the GPU the launcher gave the process (`--devices`; said in one line when `Global.device` named another),
    and `cpu` stays the CPU: `paddle.distributed.init_parallel_env` would otherwise pick NCCL on a CUDA build and
    move the process to the launcher's GPU (paddle/distributed/parallel.py), so the gloo backend is chosen.
    """
    device = resolve_device(name)
    if world_size() > 1:
        if device.startswith("gpu"):
            launched = f"gpu:{paddle.distributed.ParallelEnv().device_id}"  # one GPU per launched process
            if name.startswith("gpu:") and launched != device:
                logger.info(f"Global.device: {name} under paddle.distributed.launch: each process computes on the "
                            f"GPU the launcher gives it (--devices); this one on {launched}")
            device = launched
        else:
            os.environ["PADDLE_DISTRI_BACKEND"] = "gloo"
    paddle.set_device(device)
    if device == "cpu":
        threads = num_threads or default_cpu_threads()
        set_cpu_threads(threads)
        device = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device


DETERMINISTIC_FLAGS = ("FLAGS_cudnn_deterministic", "FLAGS_embedding_deterministic", "FLAGS_cpu_deterministic")


def seed_everything(seed: Optional[int], deterministic: bool = False) -> List[str]:
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
