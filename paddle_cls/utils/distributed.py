"""Which process of a data-parallel run writes files."""
import os


def rank():
    """This process's rank under `paddle.distributed.launch` (0 when not launched)."""
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def is_main_process():
    """True on rank 0, the one process that writes logs, checkpoints, figures and records."""
    return rank() == 0
