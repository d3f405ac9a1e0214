"""Classifying image files and test-split samples with a trained model."""
from __future__ import annotations

import copy
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle
from PIL import Image

from ..data.folder import read_image
from ..data.loader import build_dataset, class_names
from ..data.samples import raw_image
from ..data.preprocessing import build_preprocess, preprocessing_steps
from ..data.reduced_decode import decode_size
from ..data.transforms import build_transforms
from ..engine.runner import RunnerV3
from ..errors import ConfigError, PaddleClsError
from ..utils.logger import logger
from ..utils.plot import plot_predictions
from .cam import GradCAM
from .overlay import MAX_OVERLAY_SIDE, picture_overlay
from .predictor import top_k
from .trained import run_precision, trained_model

CAM_DIR = "cam"  # in Global.output_dir, beside predictions.png


def _cam_path(folder, source, taken):
    """`folder/<file name>.png` (test samples: `test_<index>.png`), numbered when two sources share a name."""
    stem = f"test_{source[5:-1]}" if source.startswith("test[") else os.path.splitext(os.path.basename(source))[0]
    name, number = f"{stem}.png", 1
    while name in taken:
        number += 1
        name = f"{stem}_{number}.png"
    taken.add(name)
    return os.path.join(folder, name)


def _cam_engine(engine):
    if engine not in ("auto", "dygraph"):
        raise ConfigError(f"--cam needs the trained dygraph weights (the .pdparams), not the export that --engine "
                          f"{engine} runs, which has no gradients: drop --engine or give --engine dygraph")
    return "dygraph"


def predict(config: dict, image_paths: Sequence[str] = (), indices: Sequence[int] = (), topk: int = 3,
            figure: Optional[str] = "predictions.png", engine: str = "auto", cam: bool = False,
            cam_layer: Optional[str] = None) -> Tuple[List[dict], int]:
    """Classify image files (any size and mode, converted to the model's input) and test-split samples.

    Prints the top-k labels with their probabilities for each, and saves a figure of the pictures with their
    true (where known) and predicted labels into `Global.output_dir`. A file that cannot be read is reported
    and skipped; the others are still classified.

    `engine`: dygraph, inference or onnxruntime (the last two run the export), or auto (see `trained_model`).
    `cam`: also write, for each image, its Grad-CAM for the top-1 class (see `cam.GradCAM`; `cam_layer` names the
    layer, default the last convolutional block) drawn on the picture as the user sees it (see `overlay`), to
    `Global.output_dir/cam/<file name>.png` (`test_<index>.png` for test samples). It runs the dygraph weights.

    Returns:
        `(results, failures)`: a list of `(source, true label or None, [(label, probability), ...])` and a
        list of error messages.

    Raises:
        ConfigError: `cam` with an export's engine, or a `cam_layer` the model does not have.
    """
    settings = config["Global"]
    network = trained_model(config, _cam_engine(engine) if cam else engine)
    level, dtype = run_precision(network, config)
    # at O2 the runner below casts the weights to float16 in place: the CAM keeps a float32 copy
    explainer = GradCAM(copy.deepcopy(network) if level == "O2" else network, settings["image_shape"],
                        cam_layer) if cam else None
    cams, taken = [], set()
    runner = RunnerV3(network, None, None, None, amp_level=level, amp_dtype=dtype)  # as the run computed
    model = lambda batch: runner.predict(paddle.to_tensor(batch)).astype("float32").numpy()  # noqa: E731
    results, failures, pictures = [], [], []
    test_set = build_dataset(config, "Test") if indices else None
    names = class_names(config)
    inputs = []
    steps = preprocessing_steps(config)
    size = decode_size(build_transforms(steps["steps"], "preprocessing steps"))  # as Predictor and serving decode
    if image_paths:
        preprocess = build_preprocess(steps)
        for path in image_paths:
            try:
                image = read_image(path, settings["image_shape"][0], size)
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
            if explainer is not None:  # a file in colour, upright; reduced only where the steps' first is a resize
                shown = Image.fromarray(picture) if label is not None else read_image(
                    source, 3, (MAX_OVERLAY_SIDE,) * 2 if size else None)
                cams.append((source, shown, sample, int(np.argmax(logits)), ranked[0][0]))
    if pictures:
        os.makedirs(settings["output_dir"], exist_ok=True)
        plot_predictions([p for p, _ in pictures], [t for _, t in pictures],
                         os.path.join(settings["output_dir"], figure))
    folder = os.path.join(settings["output_dir"], CAM_DIR)
    for source, picture, sample, index, name in cams:
        heat = explainer(sample[None], [index])[0][0]
        path = _cam_path(folder, source, taken)
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(picture_overlay(picture, heat, steps)).save(path)
        logger.info(f"{source}: Grad-CAM of {name} at layer {explainer.layer} -> {path}")
    return results, failures
