"""Where and how a run computes: the device, CPU threads, seeding and determinism, mixed precision."""
import os
import random
from typing import Optional

import numpy as np
import paddle

from ..errors import ConfigError
from .distributed import world_size
from .logger import logger


def resolve_device(name: str) -> str:
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


def default_cpu_threads() -> int:
    """The cores this process may use, shared out among the processes a launcher started on this node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("PADDLE_LOCAL_SIZE") or os.environ.get("PADDLE_TRAINERS_NUM") or 1)
    return max(1, cores // max(1, local_processes))


def set_device(name: str, num_threads: Optional[int] = None) -> str:
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


def amp_level(config: dict, device: str) -> Optional[str]:
    """`Global.amp` as the level to train with: None when off, and on CPU (reported, then ignored)."""
    level = config["Global"]["amp"]
    if level == "off":
        return None
    if not device.startswith("gpu"):
        logger.info(f"Global.amp: {level} is for GPUs; training in float32 on {device}")
        return None
    return level
