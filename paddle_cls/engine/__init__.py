"""Training engines and whole runs."""
from .experiment import evaluate, train
from .runner import RunnerV3

__all__ = ["RunnerV3", "evaluate", "train"]
