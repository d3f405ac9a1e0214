"""The backends that run an exported model: `paddle.inference` (oneDNN and every core on a CPU, the GPU where
there is one) or onnxruntime, as a function of input arrays; `predictor.Predictor` makes one a classifier of
image files.

Backends, by the name `--engine` takes: `dygraph` (the trained weights in the Python model), `inference`
(`paddle.inference`) and `onnxruntime` (`model.onnx`, from `export --onnx`). `auto` picks the fastest one that
export verified against the dygraph model, provided the export is of the weights in use. The export is in
`EXPORT_DIR` of `Global.output_dir`.
"""
from __future__ import annotations

import json
import os
from types import ModuleType
from typing import Callable, Optional

import numpy as np
import paddle

from ..errors import CheckpointError, ConfigError
from ..utils.runtime import default_cpu_threads

BACKENDS = ("dygraph", "inference", "onnxruntime")
EXPORT_DIR = "inference"
PREPROCESS_FILE = "preprocess.json"


def _on_gpu(device=None):
    return (device or paddle.get_device()).startswith("gpu")


class InferenceModel:
    """An exported model run through `paddle.inference`: `model(images)` maps float32 [N, C, H, W] to logits.

    On a CPU it runs with oneDNN on `threads` cores (default: all usable), or with `cpu_tuning=False` as Paddle's
    defaults have it; on a GPU, on the GPU.

    Args:
        folder: the folder `export` wrote (holding `model.json` with Paddle 3, or `model.pdmodel` with 2.x,
            and `model.pdiparams`).
        device: a Paddle device string (cpu, gpu:N; see `runtime.resolve_device`), default Paddle's current one.
    """

    def __init__(self, folder, threads=None, cpu_tuning=True, device=None):
        program = next((os.path.join(folder, f"model{ext}") for ext in (".json", ".pdmodel")
                        if os.path.isfile(os.path.join(folder, f"model{ext}"))), None)
        params = os.path.join(folder, "model.pdiparams")
        if program is None or not os.path.isfile(params):
            raise CheckpointError(f"no exported model in {folder}: run `paddle-cls export -c CONFIG` first")
        settings = paddle.inference.Config(program, params)
        settings.disable_glog_info()  # its pass-by-pass log would bury the results
        device = device or paddle.get_device()
        if _on_gpu(device):
            settings.enable_use_gpu(256, int(device.partition(":")[2] or 0))
        else:
            settings.disable_gpu()
            if cpu_tuning:
                settings.set_cpu_math_library_num_threads(threads or default_cpu_threads())
                settings.enable_mkldnn()
        self.predictor = paddle.inference.create_predictor(settings)

    def __call__(self, images):
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        images = np.ascontiguousarray(images, dtype=np.float32)
        handle.reshape(list(images.shape))
        handle.copy_from_cpu(images)
        self.predictor.run()
        return self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()


def import_onnxruntime() -> ModuleType:
    """onnxruntime, or a ConfigError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("onnxruntime is not installed: pip install 'paddle_cls[onnx]' (or onnxruntime)") from None
    return onnxruntime


class OnnxModel:
    """`model.onnx` of an export run by onnxruntime on the CPU: `model(images)` maps float32 [N, C, H, W] to
    logits."""

    def __init__(self, folder, threads=None):
        path = os.path.join(folder, "model.onnx")
        if not os.path.isfile(path):
            raise CheckpointError(f"no model.onnx in {folder}: export with `paddle-cls export -c CONFIG --onnx`")
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or default_cpu_threads()
        options.log_severity_level = 3  # errors only: its warnings about paddle2onnx's unused constants are noise
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images):
        return self.session.run(None, {self.input_name: np.ascontiguousarray(images, dtype=np.float32)})[0]


def exported_model(folder: str, engine: str, threads: Optional[int] = None,
                   device: Optional[str] = None) -> Callable[[np.ndarray], np.ndarray]:
    """The export in `folder` run by `engine` (inference, on `device` (default Paddle's current one), or
    onnxruntime, on the CPU)."""
    if engine == "inference":
        return InferenceModel(folder, threads, device=device)
    if engine == "onnxruntime":
        return OnnxModel(folder, threads)
    raise ConfigError(f"engine {engine!r} does not run an export (valid: inference, onnxruntime)")


def read_export_info(folder: str) -> dict:
    """The `preprocess.json` of an export: preprocessing steps, class names, the engines verified at export."""
    path = os.path.join(folder, PREPROCESS_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
        info["label_names"] = list(info["label_names"])
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: missing or unreadable ({exc}); export again with "
                              "`paddle-cls export -c CONFIG`") from None
    return info


def choose_engine(requested: str, folder: str, weights: str, device: Optional[str] = None) -> str:
    """The engine to run on `device` (default Paddle's current one): `requested`, or for `auto` the fastest one
    verified at export of the same `weights` file (on a CPU onnxruntime, then inference, when installed), else
    dygraph."""
    if requested != "auto":
        if requested not in BACKENDS:
            raise ConfigError(f"--engine {requested}: valid engines are auto, {', '.join(BACKENDS)}")
        return requested
    if not os.path.isfile(os.path.join(folder, PREPROCESS_FILE)):
        return "dygraph"
    info = read_export_info(folder)
    source = info.get("weights", {})
    current = os.path.isfile(weights) and source.get("path") == os.path.abspath(weights) \
        and source.get("mtime") == os.path.getmtime(weights)
    verified = info.get("verified", {})
    if not current:
        return "dygraph"
    if "onnxruntime" in verified and onnxruntime_installed(device):
        return "onnxruntime"
    return "inference" if "inference" in verified else "dygraph"


def onnxruntime_installed(device: Optional[str] = None) -> bool:
    """Whether onnxruntime can run here and is the faster choice: not when computing on a GPU (`device`,
    default Paddle's current one), where paddle.inference uses the GPU."""
    try:
        import_onnxruntime()
    except ConfigError:
        return False
    return not _on_gpu(device)
