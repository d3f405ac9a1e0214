"""Running an exported model: through `paddle.inference` (oneDNN and every core on a CPU, the GPU where there is
one) or onnxruntime, as a function of input arrays, and as a classifier of image files (`Predictor`).

Engines, by name: `dygraph` (the trained weights in the Python model), `inference` (`paddle.inference`) and
`onnxruntime` (`model.onnx`, from `export --onnx`). `auto` picks the fastest one that export verified against
the dygraph model, provided the export is of the weights in use.
"""
from __future__ import annotations

import json
import os
from types import ModuleType
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
from PIL import Image

from ..data.folder import read_image
from ..data.transforms import build_preprocess
from ..errors import CheckpointError, ConfigError
from ..utils.runtime import default_cpu_threads

ENGINES = ("dygraph", "inference", "onnxruntime")
PREPROCESS_FILE = "preprocess.json"
# An odd, non-square picture size: preprocessing that gives the model's input for it gives it for any picture.
PROBE_SIZE = (97, 61)


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
        if requested not in ENGINES:
            raise ConfigError(f"--engine {requested}: valid engines are auto, {', '.join(ENGINES)}")
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


def top_k(logits: np.ndarray, names: Sequence[str], k: int) -> List[Tuple[str, float]]:
    """The k most probable `(class name, probability)` of one sample's logits.

    Raises:
        CheckpointError: the model scores another number of classes than there are names, which would give
            wrong labels.
    """
    if len(logits) != len(names):
        raise CheckpointError(f"the model scores {len(logits)} classes but {len(names)} class names go with it "
                              f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): predict with the "
                              "config (and classes.json) of the run that trained it")
    probabilities = np.exp(logits - np.max(logits))
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities)[:k]
    return [(names[i], float(probabilities[i])) for i in order]


class Predictor:
    """An exported model as a classifier of images, needing only its folder: the steps of `preprocess.json`,
    the model through `engine` (inference or onnxruntime), and the class names it was trained with.

    `predictor(images, topk)` takes image file paths or PIL images and returns, for each, the `topk` most
    probable `(class name, probability)`. The images are preprocessed on the CPU; `device` (cpu, gpu:N; default
    Paddle's current one) is where the inference engine runs the model.

    Raises:
        ConfigError: the steps of `preprocess.json` do not turn a picture of any size into the model's input
            (an export made before `export` checked that), so that no image is refused later.
    """

    def __init__(self, folder, engine="inference", threads=None, device=None):
        self.info = read_export_info(folder)
        self.names = self.info["label_names"]
        self.preprocess = build_preprocess(self.info)
        try:
            self.preprocess(Image.new(self.info["color"], PROBE_SIZE))
        except ConfigError as exc:
            raise ConfigError(f"{os.path.join(folder, PREPROCESS_FILE)}: {exc}; then export again") from None
        self.model = exported_model(folder, engine, threads, device)
        self.device = "cpu" if engine == "onnxruntime" else device or paddle.get_device()  # where the model runs

    def inputs(self, images: Sequence[Union[str, Image.Image]]) -> np.ndarray:
        """The model's float32 [N, C, H, W] input for image paths or PIL images."""
        color = self.info["color"]
        return np.stack([self.preprocess(read_image(image, 1 if color == "L" else 3) if isinstance(image, str)
                                         else image.convert(color)) for image in images])

    def __call__(self, images, topk=1):
        if not images:
            return []
        logits = self.model(self.inputs(images))
        return [top_k(row, self.names, topk) for row in logits]
