"""Evaluating a trained model on the test split: the course's `[Test]` line, the accuracy of each class and a
confusion matrix."""
from __future__ import annotations

import json
import os
from typing import Tuple

import numpy as np

from ..build import build
from ..data.loader import class_names
from ..metrics import Accuracy, confusion_matrix
from ..utils.logger import logger
from ..utils.plot import plot_confusion_matrix
from .trained import test_model, trained_model


class _RecordingAccuracy(Accuracy):
    """The configured Accuracy, also keeping each batch's predicted classes and labels (for the confusion matrix)."""

    def reset(self):
        super().reset()
        self.predictions, self.targets = [], []

    def update(self, outputs, labels):
        super().update(outputs, labels)
        if outputs.shape[1] == 1:
            predicted = outputs.reshape([-1]) >= (0 if self.is_logist else 0.5)
        else:
            predicted = outputs.argmax(axis=1)
        self.predictions.append(np.asarray(predicted).astype(np.int64).reshape(-1))
        self.targets.append(np.asarray(labels).astype(np.int64).reshape(-1))


METRICS_RECORDING = {"Accuracy": _RecordingAccuracy}


def evaluate(config: dict, engine: str = "auto") -> Tuple[float, float]:
    """Evaluate a saved model on the test split: the course's `[Test]` line, then the accuracy of each class
    and a confusion-matrix figure (`confusion_matrix.png` and `per_class_accuracy.json` in `Global.output_dir`).

    `engine`: dygraph, inference or onnxruntime (the last two run the export), or auto (see `trained_model`).

    Returns:
        `(accuracy, loss)`.
    """
    model = trained_model(config, engine)
    recorder = build(METRICS_RECORDING, config.get("Metric") or {"name": "Accuracy"}, "Metric")
    score, loss, _ = test_model(model, config, recorder)  # one pass gives the [Test] line and the matrix
    names = class_names(config)
    predictions, labels = np.concatenate(recorder.predictions), np.concatenate(recorder.targets)
    size = max(len(names), int(predictions.max()) + 1, int(labels.max()) + 1)
    matrix = confusion_matrix(labels, predictions, size)[:len(names), :len(names)]
    per_class = {}
    for index, name in enumerate(names):
        total = int(matrix[index].sum())
        per_class[name] = matrix[index, index] / total if total else None
        shown = f"{per_class[name]:.4f} ({matrix[index, index]}/{total})" if total else "no samples"
        logger.info(f"[Test] {name:>12}: {shown}")
    output_dir = config["Global"]["output_dir"]
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "per_class_accuracy.json"), "w", encoding="utf-8") as file:
        json.dump(per_class, file, indent=2)
    plot_confusion_matrix(matrix, names, os.path.join(output_dir, "confusion_matrix.png"))
    return score, loss
