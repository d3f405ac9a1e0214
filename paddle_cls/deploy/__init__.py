"""Using a trained model: finding and loading its weights, evaluating it, classifying images with it, exporting
it, and running the export (`backends`: paddle.inference, onnxruntime; `Predictor`)."""
from .evaluate import evaluate
from .export import export
from .predict import predict
from .predictor import Predictor

__all__ = ["Predictor", "evaluate", "export", "predict"]
