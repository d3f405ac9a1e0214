"""Exporting a trained model for deployment: a Paddle inference model (`paddle.jit.save`), optionally ONNX, and
`preprocess.json`, the one description of preprocessing and class names that every engine uses; each engine's
logits are checked against the dygraph model's on real test-split images before the export counts."""
from __future__ import annotations

import importlib.metadata
import json
import os
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import numpy as np
import paddle

from ..data.loader import build_loader, class_names
from ..data.preprocessing import preprocessing_steps
from ..errors import CheckpointError, ConfigError
from ..utils.logger import logger
from ..engine.input_check import check_inputs, check_preprocessing
from .backends import EXPORT_DIR, PREPROCESS_FILE, exported_model, import_onnxruntime
from .trained import load_trained_model, trained_weights_path

# How far an engine's results may be from the dygraph model's on the same images. Kernels round float32 sums
# differently, by about 1e-6 of the logits' size (1e-4 on an untrained 224-px resnet18 whose logits reach 90):
# a limit relative to the logits passes that, and still refuses other weights or a broken graph. The same limit
# holds on a GPU because the check computes in full float32 there too (see `float32_kernels`).
LOGIT_RTOL = 1e-4  # of max(1, the image's largest |logit|)
PROBABILITY_ATOL = 1e-3  # softmax probabilities, as predict and serve show them
TOP_K = 5
# Paddle's switches for TensorFloat-32 (Ampere and newer GPUs), on by default in CUDA builds: cuDNN convolutions
# and cuBLAS matrix products then round their inputs to 10-bit mantissas, about 1e-3 of the logits' size.
TF32_SWITCHES = ("cudnn", "cublas")


@contextmanager
def float32_kernels() -> Iterator[None]:
    """TensorFloat-32 off for the convolutions and matrix products run inside, both the dygraph model's and the
    inference engine's (one process, the same switches), then as before.

    Paddle's GPU kernels read `phi::AllowTF32Cudnn()` into each convolution descriptor (CUDNN_FMA_MATH when off;
    the inference engine's fused conv+bias+activation kernel caches its descriptor at its first run) and
    `phi::AllowTF32Cublas()` on every cuBLAS call; `paddle.base.core.set_cudnn_switch` / `set_cublas_switch` set
    them (CUDA builds of 2.6; every build of 3.x, where a CPU ignores them). Full float32 on both sides leaves
    only the rounding of a different summation order and of batch norm folded into the convolutions, as on a CPU.
    """
    core = paddle.base.core
    switches = [name for name in TF32_SWITCHES if hasattr(core, f"set_{name}_switch")]
    before = {name: getattr(core, f"get_{name}_switch")() for name in switches}
    for name in switches:
        getattr(core, f"set_{name}_switch")(False)
    try:
        yield
    finally:
        for name, value in before.items():
            getattr(core, f"set_{name}_switch")(value)


def parity_inputs(config: dict, count: int) -> np.ndarray:
    """Up to `count` preprocessed test-split images, as float32 [N, C, H, W]."""
    batches, total = [], 0
    for images, _ in build_loader(config, "Test"):
        batches.append(images.numpy())
        total += len(batches[-1])
        if total >= count:
            break
    return np.concatenate(batches)[:count].astype(np.float32)


def to_onnx(folder: str) -> None:
    """Convert the Paddle inference model in `folder` to `folder/model.onnx` with paddle2onnx."""
    try:
        version = importlib.metadata.version("paddle2onnx")
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("--onnx needs paddle2onnx: pip install 'paddle_cls[onnx]'") from None
    major = int(paddle.__version__.split(".")[0])
    if major < 3 and int(version.split(".")[0]) >= 2:  # it refuses to import under Paddle 2
        raise ConfigError(f"paddle2onnx {version} converts Paddle 3 models; with Paddle {paddle.__version__} "
                          "install paddle2onnx 1.x: pip install 'paddle2onnx<2'")
    import paddle2onnx
    program = os.path.join(folder, "model.json" if major >= 3 else "model.pdmodel")
    target = os.path.join(folder, "model.onnx")
    try:
        # optimize_tool None: no constant folding, whose default (polygraphy) pip-installs modules at run time
        options = {"optimize_tool": None} if major >= 3 else {}
        paddle2onnx.export(program, os.path.join(folder, "model.pdiparams"), save_file=target, opset_version=13,
                           enable_onnx_checker=True, **options)
    except Exception as exc:  # paddle2onnx logs its own reason and leaves its result unset
        raise CheckpointError(f"paddle2onnx could not convert {program} ({type(exc).__name__}: {exc})") from None
    if not os.path.isfile(target):
        raise CheckpointError(f"paddle2onnx wrote no {target}; see its messages above")


def _remove(folder, names):
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            os.remove(path)


def _softmax(logits):
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def compare_logits(reference: np.ndarray, logits: np.ndarray, k: int = TOP_K) -> Tuple[str, Optional[str]]:
    """How `logits` (an engine's, [N, classes]) differ from the dygraph model's `reference`, as users see them.

    Returns:
        `(summary, problem)`: a line of the differences, and None when they are within the tolerances (the same
        top-k labels, up to classes whose reference logits tie within the logit tolerance; probabilities within
        PROBABILITY_ATOL; logits within LOGIT_RTOL of each image's largest |logit|, at least 1), else the reason.
    """
    k = min(k, reference.shape[1])
    scale = np.maximum(1.0, np.abs(reference).max(axis=1))
    tolerance = LOGIT_RTOL * scale
    order, expected = np.argsort(-logits, axis=1)[:, :k], np.argsort(-reference, axis=1)[:, :k]
    # a label counts as different only where the reference tells the two classes apart beyond the tolerance
    swapped = np.abs(np.take_along_axis(reference, order, 1) - np.take_along_axis(reference, expected, 1))
    mislabelled = int((swapped > tolerance[:, None]).any(axis=1).sum())
    absolute = float(np.abs(logits - reference).max())
    relative = float((np.abs(logits - reference).max(axis=1) / scale).max())
    probability = float(np.abs(_softmax(logits) - _softmax(reference)).max())
    summary = (f"max |logit difference| {absolute:.2e} ({relative:.1e} of the logits' size), probabilities within "
               f"{probability:.1e}, top-{k} labels {'different' if mislabelled else 'the same'}")
    if mislabelled:
        return summary, f"its top-{k} labels differ on {mislabelled} of {len(reference)} images"
    if probability > PROBABILITY_ATOL:
        return summary, f"its probabilities differ by up to {probability:.2e} (above {PROBABILITY_ATOL:g})"
    if relative > LOGIT_RTOL:
        return summary, f"its logits differ by up to {relative:.2e} of their size (above {LOGIT_RTOL:g})"
    return summary, None


def export(config: dict, onnx: bool = False, parity_images: int = 64) -> str:
    """Write `<output_dir>/inference/`: `model.*` (a Paddle inference model taking float32 [N, C, H, W]), with
    `onnx` also `model.onnx`, and `preprocess.json` (input shape, the steps from an image to that input, class
    names, the weights exported and the engines verified).

    Each engine is run on up to `parity_images` test-split images and its results compared with the dygraph
    model's, both in full float32 (`float32_kernels`: TF32 off on a GPU), see `compare_logits`; the differences
    are printed, and beyond the tolerances the export is
    refused (CheckpointError) and its files removed. Refuses also when there are no trained weights to export.

    Raises:
        ConfigError: before anything is written, when the test transforms or the preprocessing written for
            predict and serve do not give `Global.image_shape`, or the model takes other channels.

    Returns:
        The folder written.
    """
    if onnx:
        import_onnxruntime()  # say what is missing before anything is written
    model = load_trained_model(config)
    check_inputs(config, model, ["Test"])
    check_preprocessing(config)
    folder = os.path.join(config["Global"]["output_dir"], EXPORT_DIR)
    _remove(folder, [PREPROCESS_FILE, "model.onnx"])  # an export counts once it is verified again
    spec = paddle.static.InputSpec([None, *config["Global"]["image_shape"]], "float32", "image")
    paddle.jit.save(model, os.path.join(folder, "model"), input_spec=[spec])
    engines = ["inference"]
    if onnx:
        to_onnx(folder)
        engines.append("onnxruntime")
    inputs = parity_inputs(config, parity_images)
    with float32_kernels(), paddle.no_grad():  # on a GPU TF32 would differ by far more than the engines do
        reference = model(paddle.to_tensor(inputs)).numpy()
    threads = config["Global"]["num_threads"]
    verified = {}
    for engine in engines:
        with float32_kernels():
            logits = exported_model(folder, engine, threads)(inputs)
        summary, problem = compare_logits(reference, logits)
        logger.info(f"[Export] {engine} against dygraph on {len(inputs)} test images: {summary}")
        if problem:
            _remove(folder, ["model.onnx"] if engine == "onnxruntime" else os.listdir(folder))
            raise CheckpointError(f"the {engine} export differs from the trained model on test images: {problem}; "
                                  "export refused and removed")
        verified[engine] = float(np.abs(logits - reference).max())
    weights = os.path.abspath(trained_weights_path(config))
    info = dict(preprocessing_steps(config), label_names=list(class_names(config)), verified=verified,
                weights={"path": weights, "mtime": os.path.getmtime(weights)})
    with open(os.path.join(folder, PREPROCESS_FILE), "w", encoding="utf-8") as file:
        json.dump(info, file, indent=2)
    logger.info(f"Exported to {folder} ({', '.join(engines)})")
    return folder
