"""Serving speed: a `paddle-cls serve` process over an exported resnet18 (10 classes, 3x32x32), driven by 1, 8
and 32 concurrent clients each sending one PNG per request: images/s, p50 and p99 latency, errors, and the
server's resident memory before and after each run (after a warm-up at the highest concurrency)."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Sequence

import numpy as np
import paddle

from ..models import MODELS

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _export(folder):
    """An export of an untrained resnet18 as `paddle-cls export` lays it out (speed does not need training)."""
    paddle.seed(0)
    model = MODELS["resnet18"](num_classes=10)
    model.eval()
    paddle.jit.save(model, os.path.join(folder, "model"),
                    input_spec=[paddle.static.InputSpec([None, 3, 32, 32], "float32", "image")])
    info = {"input_shape": [3, 32, 32], "dtype": "float32", "image_backend": "pil", "color": "RGB",
            "steps": [{"name": "Resize", "size": [32, 32]}, {"name": "ToTensor"}],
            "label_names": [f"class{index}" for index in range(10)], "verified": {"inference": 0.0}}
    with open(os.path.join(folder, "preprocess.json"), "w", encoding="utf-8") as file:
        json.dump(info, file)


def _rss_mb(pid):
    with open(f"/proc/{pid}/status", encoding="utf-8") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("VmRSS:")) / 1024


def _png(seed):
    from PIL import Image

    pixels = np.random.RandomState(seed).randint(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def serving_table(clients: Sequence[int] = (1, 8, 32), requests_per_run: int = 256) -> List[dict]:
    """Rows `{"clients", "images_per_s", "p50_ms", "p99_ms", "errors", "rss_before_mb", "rss_after_mb"}`."""
    import requests

    folder = tempfile.mkdtemp(prefix="bench-serve-")
    _export(folder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")])))
    server = subprocess.Popen([sys.executable, "-m", "paddle_cls", "serve", "--model", folder, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                requests.get(f"{url}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        images = [_png(seed) for seed in range(16)]

        def ask(index):
            start = time.perf_counter()
            response = requests.post(f"{url}/predict", files={"file": images[index % len(images)]}, timeout=120)
            return time.perf_counter() - start, response.status_code == 200

        with ThreadPoolExecutor(max(clients)) as pool:  # warm-up: batch shapes, threads, allocator arenas
            list(pool.map(ask, range(4 * requests_per_run)))
        rows = []
        for count in clients:
            before = _rss_mb(server.pid)
            start = time.perf_counter()
            with ThreadPoolExecutor(count) as pool:
                results = list(pool.map(ask, range(requests_per_run)))
            elapsed = time.perf_counter() - start
            latencies = np.array([seconds for seconds, _ in results]) * 1000
            rows.append({"clients": count, "images_per_s": round(requests_per_run / elapsed, 1),
                         "p50_ms": round(float(np.percentile(latencies, 50)), 1),
                         "p99_ms": round(float(np.percentile(latencies, 99)), 1),
                         "errors": sum(not ok for _, ok in results),
                         "rss_before_mb": round(before), "rss_after_mb": round(_rss_mb(server.pid))})
        return rows
    finally:
        server.terminate()
        server.wait(timeout=60)
