"""Evaluating a trained model on the test split: the course's `[Test]` line, the accuracy of each class, a
confusion matrix and the evaluation report."""
from __future__ import annotations

import copy
import json
import os
from typing import Tuple

import numpy as np

from ..build import build
from ..config_schema import section_spec
from ..data.loader import build_dataset, class_names, datasets_built_once
from ..metrics import Accuracy, confusion_matrix
from ..utils.logger import logger
from ..utils.plot import plot_confusion_matrix
from .report import REPORT_FILE, SampleScores, read_history, write_report
from .report_figures import original_picture
from .trained import test_model, trained_model


class _RecordingAccuracy(Accuracy):
    """The configured Accuracy, also keeping what the confusion matrix and the report need of each sample
    (`report.SampleScores`: label, prediction, probabilities, loss; not the pictures)."""

    def reset(self):
        super().reset()
        self.samples = SampleScores()

    def update(self, outputs, labels):
        super().update(outputs, labels)
        if outputs.shape[1] == 1:
            predicted = outputs.reshape([-1]) >= (0 if self.is_logist else 0.5)
        else:
            predicted = outputs.argmax(axis=1)
        self.samples.add(np.asarray(outputs), np.asarray(labels), np.asarray(predicted).astype(np.int64).reshape(-1),
                         self.is_logist)


METRICS_RECORDING = {"Accuracy": _RecordingAccuracy}


BEYOND_THE_CLASSES = "(an output beyond the classes)"


def _in_order(config):
    """The config with its test split unshuffled: sample i of the evaluation is sample i of the dataset (the
    report fetches the pictures of the highest-loss ones by that index); the numbers do not depend on order."""
    if not config["DataLoader"]["Test"].get("shuffle"):
        return config
    config = copy.deepcopy(config)
    config["DataLoader"]["Test"]["shuffle"] = False
    return config


def evaluate(config: dict, engine: str = "auto") -> Tuple[float, float]:
    """Evaluate a saved model on the test split: the course's `[Test]` line, then the accuracy of each class,
    a confusion-matrix figure and the evaluation report (`per_class_accuracy.json`, `confusion_matrix.png`
    and `report.html` in `Global.output_dir`; see `report.write_report`), all from one pass over the split.

    `engine`: dygraph, inference or onnxruntime (the last two run the export), or auto (see `trained_model`).

    Returns:
        `(accuracy, loss)`.
    """
    with datasets_built_once():
        return _evaluate(_in_order(config), engine)


def _evaluate(config, engine):
    model = trained_model(config, engine)
    recorder = build(METRICS_RECORDING, section_spec(config, "Metric"), "Metric")
    score, loss, count = test_model(model, config, recorder)  # one pass gives the [Test] line and the matrix
    classes = class_names(config)
    names, samples = list(classes), recorder.samples
    if (samples.predictions >= len(classes)).any():  # a model with more outputs than classes (resnet18.yml's 1000)
        names.append(BEYOND_THE_CLASSES)  # one more column gathers those predictions: each row keeps its samples
        samples.predictions = np.minimum(samples.predictions, len(classes))
    matrix = confusion_matrix(samples.labels, samples.predictions, len(names))
    per_class = {}
    for index, name in enumerate(classes):
        total = int(matrix[index].sum())
        per_class[name] = matrix[index, index] / total if total else None
        shown = f"{per_class[name]:.4f} ({matrix[index, index]}/{total})" if total else "no samples"
        logger.info(f"[Test] {name:>12}: {shown}")
    output_dir = config["Global"]["output_dir"]
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "per_class_accuracy.json"), "w", encoding="utf-8") as file:
        json.dump(per_class, file, indent=2)
    plot_confusion_matrix(matrix, names, os.path.join(output_dir, "confusion_matrix.png"))
    test_set = config["DataLoader"]["Test"]["dataset"]["name"]
    report = write_report(os.path.join(output_dir, REPORT_FILE), f"{config['Arch']['name']} on the {test_set} test "
                          "split", names, matrix, samples, (score, loss, count),
                          original_picture(build_dataset(config, "Test")), read_history(output_dir))
    logger.info(f"Evaluation report: {report}")
    return score, loss
