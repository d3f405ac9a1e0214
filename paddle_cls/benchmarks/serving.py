"""Serving speed: a `paddle-cls serve` process over an exported resnet18 (10 classes, 224 px, imagefolder.yml's
test steps), driven by 1, 8 and 32 concurrent clients each sending one 12 MP phone photo (a 3-5 MB JPEG) per
request: images/s, its ratio to the same model's batch-32 throughput alone, p50 and p99 latency, errors, and the
server's resident memory before and after each run (after a warm-up at the highest concurrency); and the same
with the photos scaled to 640 x 480, where decoding is cheap and the server's own cost shows."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..deploy.backends import exported_model
from .inference import untrained_export
from .loading import PHONE_SIZE, phone_photos

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rss_mb(pid):
    with open(f"/proc/{pid}/status", encoding="utf-8") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("VmRSS:")) / 1024


def _model_rate(folder, engine, batch=32, calls=3):
    """The export's batch-`batch` images/s alone, on the engine the server runs (best of three)."""
    model = exported_model(folder, engine)
    inputs = np.random.RandomState(0).rand(batch, 3, 224, 224).astype(np.float32)
    model(inputs)
    best = 0.0
    for _ in range(calls):
        start = time.perf_counter()
        model(inputs)
        best = max(best, batch / (time.perf_counter() - start))
    return best


def _uploads(photos, size):
    """`photos` phone photos as JPEG bytes, at their 12 MP or scaled down to `size` (width, height)."""
    images = phone_photos(photos)
    if size is None:
        return images
    scaled = []
    for data in images:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).resize(size, Image.BICUBIC).save(buffer, "JPEG", quality=92)
        scaled.append(buffer.getvalue())
    return scaled


def serving_table(clients: Sequence[int] = (1, 8, 32), requests_per_run: int = 96, photos: int = 8,
                  size: Optional[Tuple[int, int]] = None) -> List[dict]:
    """Rows `{"upload", "clients", "images_per_s", "vs_model", "p50_ms", "p99_ms", "errors", "mean_batch" (images
    per model call), "rss_before_mb", "rss_after_mb"}`, each client sending one JPEG per request: a 12 MP photo,
    or the photo scaled to `size` (width, height; 640 x 480 shows the server's own cost where decoding is cheap).
    `vs_model` is images/s over the model's own batch-32 images/s, measured before the server starts (the two
    never share the CPU)."""
    import requests

    folder = tempfile.mkdtemp(prefix="bench-serve-")
    engine = untrained_export(folder)
    model_rate = _model_rate(folder, engine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")])))
    server = subprocess.Popen([sys.executable, "-m", "paddle_cls", "serve", "--model", folder, "--port", str(port),
                               "--engine", engine],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                requests.get(f"{url}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        # multipart bodies built once: the clients share the server's cores, so they should cost it little
        boundary = "paddle-cls-benchmark-boundary"
        bodies = [(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="IMG.jpg"\r\n'
                   f'Content-Type: image/jpeg\r\n\r\n').encode() + image + f"\r\n--{boundary}--\r\n".encode()
                  for image in _uploads(photos, size)]
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

        def ask(index):
            start = time.perf_counter()
            response = requests.post(f"{url}/predict", data=bodies[index % len(bodies)], headers=headers, timeout=120)
            return time.perf_counter() - start, response.status_code == 200

        with ThreadPoolExecutor(max(clients)) as pool:  # warm-up: batch shapes, threads, allocator arenas
            list(pool.map(ask, range(2 * max(clients))))
        rows = []
        for count in clients:
            before, run_before = _rss_mb(server.pid), requests.get(f"{url}/info").json()
            start = time.perf_counter()
            with ThreadPoolExecutor(count) as pool:
                results = list(pool.map(ask, range(requests_per_run)))
            elapsed = time.perf_counter() - start
            latencies = np.array([seconds for seconds, _ in results]) * 1000
            run = requests.get(f"{url}/info").json()
            batches = max(1, run["batches_run"] - run_before["batches_run"])
            rows.append({"upload": "x".join(map(str, size or PHONE_SIZE)), "clients": count,
                         "images_per_s": round(requests_per_run / elapsed, 1),
                         "vs_model": round(requests_per_run / elapsed / model_rate, 2),
                         "p50_ms": round(float(np.percentile(latencies, 50)), 1),
                         "p99_ms": round(float(np.percentile(latencies, 99)), 1),
                         "errors": sum(not ok for _, ok in results),
                         "mean_batch": round((run["images_run"] - run_before["images_run"]) / batches, 1),
                         "rss_before_mb": round(before), "rss_after_mb": round(_rss_mb(server.pid))})
        return rows
    finally:
        server.terminate()
        server.wait(timeout=60)
