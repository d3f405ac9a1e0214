"""Inference speed: one model through every engine (dygraph, paddle.inference with Paddle's defaults and with
oneDNN, onnxruntime), at batch 64 and 1, best of several timings, with the ratio to dygraph; and `Predictor` on
12 MP phone photos against its own model alone."""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle

from ..deploy.backends import InferenceModel, OnnxModel
from ..deploy.export import to_onnx
from ..deploy.predictor import Predictor
from ..errors import PaddleClsError
from ..models import MODELS
from ..utils.runtime import default_cpu_threads, set_cpu_threads


def _engines(name, shape, threads):
    """name -> function float32 array -> logits, for every engine that can run here."""
    paddle.seed(0)
    model = MODELS[name](num_classes=10)
    model.eval()
    folder = tempfile.mkdtemp(prefix="bench-inference-")
    paddle.jit.save(model, f"{folder}/model", input_spec=[paddle.static.InputSpec([None, *shape], "float32")])

    def dygraph(images):
        with paddle.no_grad():
            return model(paddle.to_tensor(images)).numpy()

    engines = {"dygraph": dygraph, "inference (defaults)": InferenceModel(folder, cpu_tuning=False)}
    if not paddle.get_device().startswith("gpu"):
        engines["inference + oneDNN"] = InferenceModel(folder, threads)
    try:
        to_onnx(folder)
        engines["onnxruntime"] = OnnxModel(folder, threads)
    except PaddleClsError as exc:  # paddle2onnx or onnxruntime missing: the row says so
        engines["onnxruntime"] = str(exc)
    return engines


def inference_table(name: str = "resnet18", shape: Tuple[int, int, int] = (3, 32, 32), batches: Sequence[int] = (64, 1),
                    repeats: int = 5, images_per_timing: int = 256) -> List[dict]:
    """Rows `{"batch", engine: images/s (or why it could not run), "<engine> / dygraph": ratio}`."""
    threads = default_cpu_threads()
    if not paddle.get_device().startswith("gpu"):
        set_cpu_threads(threads)
    engines = _engines(name, shape, threads)
    rows = []
    for batch in batches:
        images = np.random.RandomState(0).rand(batch, *shape).astype(np.float32)
        calls = max(1, images_per_timing // batch)
        row = {"batch": batch}
        for engine, run in engines.items():
            if isinstance(run, str):
                row[engine] = run
                continue
            run(images)  # warm-up: first calls build kernels and caches
            best = 0.0
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls):
                    run(images)
                best = max(best, calls * batch / (time.perf_counter() - start))
            row[engine] = round(best, 1)
        for engine in engines:
            if engine != "dygraph" and not isinstance(row[engine], str):
                row[f"{engine} / dygraph"] = round(row[engine] / row["dygraph"], 2)
        rows.append(row)
    return rows


# configs/imagefolder.yml's test transforms
PHOTO_STEPS = [{"name": "Resize", "size": 256}, {"name": "CenterCrop", "size": 224}, {"name": "ToTensor"},
               {"name": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]


def untrained_export(folder: str, size: int = 224, steps: Optional[List[dict]] = None) -> str:
    """An export of an untrained resnet18 (10 classes, 3 x `size` x `size`) as `paddle-cls export` lays it out,
    with `steps` (default: imagefolder.yml's at 224) and model.onnx where paddle2onnx is installed; returns the
    engine to time it with (onnxruntime, else inference). Speed does not need training."""
    paddle.seed(0)
    model = MODELS["resnet18"](num_classes=10)
    model.eval()
    paddle.jit.save(model, os.path.join(folder, "model"),
                    input_spec=[paddle.static.InputSpec([None, 3, size, size], "float32", "image")])
    info = {"input_shape": [3, size, size], "dtype": "float32", "image_backend": "pil", "color": "RGB",
            "steps": PHOTO_STEPS if steps is None else steps,
            "label_names": [f"class{index}" for index in range(10)], "verified": {"inference": 0.0}}
    with open(os.path.join(folder, "preprocess.json"), "w", encoding="utf-8") as file:
        json.dump(info, file)
    try:
        to_onnx(folder)
        return "onnxruntime"
    except PaddleClsError:
        return "inference"


def _best_rate(run, images, repeats):
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = max(best, images / (time.perf_counter() - start))
    return round(best, 1)


def predictor_table(photos: int = 64, batch: int = 32, repeats: int = 2) -> List[dict]:
    """`Predictor` on `photos` 12 MP JPEG files (`loading.phone_photos`) through imagefolder.yml's test steps,
    beside its model alone on ready inputs at `batch`, and beside today's Predictor run as before (a full decode
    of each photo, one at a time): images/s and the ratios to the model alone."""
    from .loading import phone_photos

    folder = tempfile.mkdtemp(prefix="bench-predictor-")
    engine = untrained_export(folder)
    paths = []
    for index, data in enumerate(phone_photos(min(photos, 8))):
        paths.append(os.path.join(folder, f"IMG_{index:04d}.jpg"))
        with open(paths[-1], "wb") as file:
            file.write(data)
    paths = [paths[index % len(paths)] for index in range(photos)]
    predictor = Predictor(folder, engine, batch_size=batch)
    inputs = predictor.inputs(paths[:batch])
    predictor.model(inputs)  # warm-up: kernels, caches
    model_only = _best_rate(lambda: [predictor.model(inputs) for _ in range(photos // batch)],
                            batch * (photos // batch), repeats + 1)
    ours = _best_rate(lambda: predictor(paths), photos, repeats)
    old = Predictor(folder, engine, workers=1)  # as Predictor was: full decodes one by one, then one model call
    old.decode_size = None
    before = _best_rate(lambda: old.model(old.inputs(paths)), photos, 1)
    return [{"engine": engine, "batch": batch, "model only": model_only, "Predictor": ours,
             "Predictor / model only": round(ours / model_only, 2), "before (full decode, 1 thread)": before,
             "before / model only": round(before / model_only, 2)}]
