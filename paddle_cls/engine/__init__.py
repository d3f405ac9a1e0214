"""Training engines, whole runs and using trained models."""
from .experiment import ENGINES, train
from .inference import evaluate, predict
from .runner import RunnerV3

__all__ = ["ENGINES", "RunnerV3", "evaluate", "predict", "train"]
