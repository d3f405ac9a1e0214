"""Classifying image files and test-split samples with a trained model."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..data.folder import read_image
from ..data.loader import build_dataset, class_names
from ..data.samples import raw_image
from ..data.preprocessing import build_preprocess, preprocessing_steps
from ..engine.runner import RunnerV3
from ..errors import PaddleClsError
from ..utils.logger import logger
from ..utils.plot import plot_predictions
from .predictor import top_k
from .trained import run_precision, trained_model


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
