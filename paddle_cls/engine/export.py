"""Exporting a trained model for deployment: a Paddle inference model (`paddle.jit.save`), optionally ONNX, and
`preprocess.json`, the one description of preprocessing and class names that every engine uses; each engine's
logits are checked against the dygraph model's on real test-split images before the export counts."""
import importlib.metadata
import json
import os

import numpy as np
import paddle

from ..data.loader import build_loader, class_names
from ..data.transforms import preprocessing_steps
from ..errors import CheckpointError, ConfigError
from ..utils.logger import logger
from .predictor import PREPROCESS_FILE, exported_model, import_onnxruntime
from .trained import load_trained_model, trained_weights_path

EXPORT_DIR = "inference"
PARITY_LIMIT = 1e-4  # max |logit difference| an engine may show against the dygraph model


def _test_inputs(config, count):
    """Up to `count` preprocessed test-split images, as float32 [N, C, H, W]."""
    batches, total = [], 0
    for images, _ in build_loader(config, "Test"):
        batches.append(images.numpy())
        total += len(batches[-1])
        if total >= count:
            break
    return np.concatenate(batches)[:count].astype(np.float32)


def _to_onnx(folder):
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


def export(config, onnx=False, parity_images=64):
    """Write `<output_dir>/inference/`: `model.*` (a Paddle inference model taking float32 [N, C, H, W]), with
    `onnx` also `model.onnx`, and `preprocess.json` (input shape, the steps from an image to that input, class
    names, the weights exported and the engines verified).

    Each engine is run on up to `parity_images` test-split images and its logits compared with the dygraph
    model's; the max |difference| is printed, and above 1e-4 the export is refused (CheckpointError) and its
    files removed. Refuses also when there are no trained weights to export.

    Returns:
        The folder written.
    """
    if onnx:
        import_onnxruntime()  # say what is missing before anything is written
    model = load_trained_model(config)
    folder = os.path.join(config["Global"]["output_dir"], EXPORT_DIR)
    _remove(folder, [PREPROCESS_FILE, "model.onnx"])  # an export counts once it is verified again
    spec = paddle.static.InputSpec([None, *config["Global"]["image_shape"]], "float32", "image")
    paddle.jit.save(model, os.path.join(folder, "model"), input_spec=[spec])
    engines = ["inference"]
    if onnx:
        _to_onnx(folder)
        engines.append("onnxruntime")
    inputs = _test_inputs(config, parity_images)
    with paddle.no_grad():
        reference = model(paddle.to_tensor(inputs)).numpy()
    threads = config["Global"]["num_threads"]
    verified = {}
    for engine in engines:
        difference = float(np.abs(exported_model(folder, engine, threads)(inputs) - reference).max())
        logger.info(f"[Export] {engine} against dygraph on {len(inputs)} test images: "
                    f"max |logit difference| {difference:.2e}")
        if difference > PARITY_LIMIT:
            _remove(folder, ["model.onnx"] if engine == "onnxruntime" else os.listdir(folder))
            raise CheckpointError(f"the {engine} export differs from the trained model by {difference:.2e} "
                                  f"(above {PARITY_LIMIT:g}) on test images; export refused and removed")
        verified[engine] = difference
    weights = os.path.abspath(trained_weights_path(config))
    info = dict(preprocessing_steps(config), label_names=list(class_names(config)), verified=verified,
                weights={"path": weights, "mtime": os.path.getmtime(weights)})
    with open(os.path.join(folder, PREPROCESS_FILE), "w", encoding="utf-8") as file:
        json.dump(info, file, indent=2)
    logger.info(f"Exported to {folder} ({', '.join(engines)})")
    return folder
