"""Training: the engines (RunnerV3 and paddle.Model) and whole runs."""
from .runner import RunnerV3
from .training import ENGINES, train

__all__ = ["ENGINES", "RunnerV3", "train"]
