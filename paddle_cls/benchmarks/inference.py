"""Inference speed: one model through every engine (dygraph, paddle.inference with Paddle's defaults and with
oneDNN, onnxruntime), at batch 64 and 1, best of several timings, with the ratio to dygraph."""
from __future__ import annotations

import tempfile
import time
from typing import List, Sequence, Tuple

import numpy as np
import paddle

from ..deploy.backends import InferenceModel, OnnxModel
from ..deploy.export import to_onnx
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
