"""Training engines, whole runs and using trained models."""
from .inference import evaluate, predict
from .runner import RunnerV3
from .training import ENGINES, train

__all__ = ["ENGINES", "RunnerV3", "evaluate", "predict", "train"]
