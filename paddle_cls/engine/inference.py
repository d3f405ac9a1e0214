"""Using a trained model: evaluate it on the test split, and classify image files or test samples."""
from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..build import build
from ..data.folder import read_image
from ..data.loader import build_dataset, class_names
from ..data.samples import raw_image
from ..data.transforms import build_preprocess, preprocessing_steps
from ..errors import CheckpointError, PaddleClsError
from ..metrics import Accuracy, confusion_matrix
from ..utils.logger import logger
from ..utils.plot import plot_confusion_matrix, plot_predictions
from ..utils.runtime import set_device
from .export import EXPORT_DIR
from .predictor import choose_engine, exported_model, read_export_info, top_k
from .runner import RunnerV3
from .trained import load_trained_model, run_precision, test_model, trained_weights_path


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


class _ExportAsLayer:
    """An exported model where RunnerV3 expects a layer: tensors in, logits tensor out."""

    def __init__(self, run):
        self.run = run

    def eval(self):
        return self

    def __call__(self, images):
        return paddle.to_tensor(self.run(images.numpy()))


def _listed(names):
    return ", ".join(names[:5]) + (f" ... ({len(names)} in all)" if len(names) > 5 else "")


def trained_model(config: dict, engine: str = "auto") -> paddle.nn.Layer:
    """The trained model run by `engine` (dygraph, inference, onnxruntime, or auto: see
    `predictor.choose_engine`), as a layer: a tensor [N, C, H, W] in, its logits out."""
    settings = config["Global"]
    folder = os.path.join(settings["output_dir"], EXPORT_DIR)
    set_device(settings["device"], settings["num_threads"])  # first: auto picks onnxruntime for a CPU only
    engine = choose_engine(engine, folder, trained_weights_path(config), paddle.get_device())
    if engine == "dygraph":
        return load_trained_model(config)
    info = read_export_info(folder)
    names, shape = list(class_names(config)), settings["image_shape"]
    if info["label_names"] != names or list(info["input_shape"]) != list(shape):
        raise CheckpointError(f"the export in {folder} was made for another config: its classes are "
                              f"{_listed(info['label_names'])}, input {info['input_shape']}; this config's are "
                              f"{_listed(names)}, input {shape}. Export again with `paddle-cls export -c CONFIG`")
    logger.info(f"Running the export in {folder} with {engine}")
    return _ExportAsLayer(exported_model(folder, engine, settings["num_threads"]))


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


def predict(config: dict, image_paths: Sequence[str] = (), indices: Sequence[int] = (), topk: int = 3,
            figure: Optional[str] = "predictions.png", engine: str = "auto") -> Tuple[List[dict], int]:
    """Classify image files (any size and mode, converted to the model's input) and test-split samples.

    Prints the top-k labels with their probabilities for each, and saves a figure of the pictures with their
    true (where known) and predicted labels into `Global.output_dir`. A file that cannot be read is reported
    and skipped; the others are still classified.

    `engine`: dygraph, inference or onnxruntime (the last two run the export), or auto (see `trained_model`).

    Returns:
        `(results, failures)`: a list of `(source, true label or None, [(label, probability), ...])` and a
        list of error messages.
    """
    settings = config["Global"]
    network = trained_model(config, engine)
    level, dtype = run_precision(network, config)
    runner = RunnerV3(network, None, None, None, amp_level=level, amp_dtype=dtype)  # as the run computed
    model = lambda batch: runner.predict(paddle.to_tensor(batch)).astype("float32").numpy()  # noqa: E731
    results, failures, pictures = [], [], []
    test_set = build_dataset(config, "Test") if indices else None
    names = class_names(config)
    inputs = []
    if image_paths:
        preprocess = build_preprocess(preprocessing_steps(config))
        for path in image_paths:
            try:
                image = read_image(path, settings["image_shape"][0])
            except PaddleClsError as exc:
                failures.append(str(exc))
                continue
            inputs.append((path, None, preprocess(image), np.asarray(image)))
    for index in indices:
        if not 0 <= index < len(test_set):
            failures.append(f"test index {index} is outside 0..{len(test_set) - 1}")
            continue
        sample, label = test_set[index]
        sample = sample.numpy() if hasattr(sample, "numpy") else np.asarray(sample)
        inputs.append((f"test[{index}]", int(np.asarray(label).reshape(-1)[0]), sample, raw_image(test_set, index)))
    with paddle.no_grad():
        for source, label, sample, picture in inputs:
            logits = model(sample[None].astype(np.float32))[0]
            ranked = top_k(logits, names, topk)
            truth = names[label] if label is not None else None
            results.append((source, truth, ranked))
            shown = ", ".join(f"{name} {probability:.4f}" for name, probability in ranked)
            logger.info(f"{source}: {shown}" + (f" (true: {truth})" if truth is not None else ""))
            pictures.append((picture, (f"true: {truth}\n" if truth else "") + f"pred: {ranked[0][0]}"))
    if pictures:
        os.makedirs(settings["output_dir"], exist_ok=True)
        plot_predictions([p for p, _ in pictures], [t for _, t in pictures],
                         os.path.join(settings["output_dir"], figure))
    return results, failures
