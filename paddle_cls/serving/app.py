"""The HTTP API and web page over an exported model (FastAPI on uvicorn; `pip install 'paddle_cls[serve]'`).

    POST /predict   multipart field `file` (repeatable) or JSON {"images": ["<base64>", ...]}, optional `topk`
                    -> {"predictions": [{"topk": [{"label", "index", "probability"}, ...]}, ...]}
                    with `?cam=1` each prediction also has "cam": a PNG data URL of the image with its Grad-CAM
                    (where the model looks for its top-1 class; served with -c CONFIG, from the trained weights)
    GET  /health    {"status": "ok"}
    GET  /info      model folder, classes, input shape, engine, versions, whether Grad-CAM is served
    GET  /          a page to drop an image on and see its top-k labels as bars (and the Grad-CAM)

Bad requests get a 4xx status with a one-line reason (`{"error": ...}`), are logged, and the server goes on.
"""
import base64
import json
import os
import platform
from contextlib import asynccontextmanager
from typing import Any, Callable, Optional, Tuple

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image

from .. import __version__
from ..deploy.overlay import png_bytes
from ..deploy.predictor import Predictor, top_k
from ..errors import ConfigError, PaddleClsError
from ..utils.logger import logger
from .batching import Batcher
from .uploads import UploadError, base64_images, decode_upload, multipart_fields

MAX_IMAGES_PER_REQUEST = 64
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")


async def _read_body(request, limit):
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"request of {int(declared):,} bytes, over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadError(413, f"request over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _multipart_images(content_type, body):
    """`(name, bytes)` of every part named `file`, and the `topk` field if any; parsed in memory."""
    images, fields = [], {}
    for field, filename, data in multipart_fields(content_type, body):
        if field == "file":
            images.append((filename or f"file {len(images)}", data))
        elif field:
            fields[field] = data.decode("utf-8", "replace")
    if not images:
        names = ", ".join(sorted(fields)) or "none"
        raise UploadError(422, f"no image: send each image in a multipart field named 'file' (fields sent: {names})")
    return images, fields.get("topk")


def _topk(value, default, classes):
    if value is None:
        return default
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise UploadError(422, f"topk: expected an integer, got {value!r}") from None
    if not 1 <= k <= classes:
        raise UploadError(422, f"topk: expected 1..{classes}, got {k}")
    return k


def model_input(predictor: Predictor, image: Image.Image, name: str) -> np.ndarray:
    # Predictor refuses at start an export whose steps miss the model's shape; any image they still miss is
    # the request's problem to report, not a server error.
    try:
        return predictor.preprocess(image)
    except ConfigError as exc:
        raise UploadError(422, f"{name}: {exc}") from None


def _wants_cam(request):
    value = request.query_params.get("cam", "0").lower()
    if value not in ("0", "1", "true", "false"):
        raise UploadError(422, f"cam: expected 1 or 0, got {value!r}")
    return value in ("1", "true")


def create_app(folder: str, engine: str = "inference", threads: Optional[int] = None, max_bytes: int = 8 << 20,
               batch_size: int = 32, max_wait: float = 0.005, topk: int = 3, device: Optional[str] = None,
               explainer: Optional[Callable[[Image.Image], Tuple[np.ndarray, int]]] = None,
               max_gather: float = 1.0) -> Any:
    """The FastAPI app serving the export in `folder` with `engine` (inference or onnxruntime) on `device` (a
    Paddle device string, default Paddle's current one). Requests are preprocessed on the CPU, in worker
    threads; only the batches reach the device (see `Batcher` for `batch_size`, `max_wait` and `max_gather`).
    `explainer` (a `deploy.cam.ImageExplainer`) answers `?cam=1`."""
    predictor = Predictor(folder, engine, threads, device)
    batcher = Batcher(predictor.model, batch_size, max_wait, max_gather)
    channels = 1 if predictor.info["color"] == "L" else 3
    index = {name: i for i, name in enumerate(predictor.names)}

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="paddle_cls", version=__version__, lifespan=lifespan)
    app.state.batcher = batcher
    app.state.device = predictor.device

    @app.exception_handler(UploadError)
    async def refuse(request, exc):
        logger.warning(f"{request.method} {request.url.path} -> {exc.status}: {exc.reason}")
        return JSONResponse({"error": exc.reason}, status_code=exc.status)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/info")
    async def info():
        import paddle

        return {"model": os.path.abspath(folder), "engine": engine, "device": predictor.device,
                "classes": predictor.names, "input_shape": predictor.info["input_shape"], "max_upload_bytes": max_bytes,
                "batches_run": batcher.batches_run, "images_run": batcher.images_run,
                "images_being_prepared": batcher.being_prepared, "cam": explainer is not None,
                "versions": {"paddle_cls": __version__, "paddle": paddle.__version__,
                             "python": platform.python_version()}}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        with open(PAGE, encoding="utf-8") as file:
            return file.read()

    @app.post("/predict")
    async def predict(request: Request):
        content_type = request.headers.get("content-type", "")
        body = await _read_body(request, max_bytes)
        if content_type.startswith("multipart/form-data"):
            uploads, wanted = _multipart_images(content_type, body)
        elif content_type.startswith("application/json"):
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise UploadError(400, "malformed JSON body") from None
            uploads = [(f"images[{i}]", data) for i, data in enumerate(base64_images(payload))]
            wanted = payload.get("topk")
        else:
            raise UploadError(415, f"content type {content_type or 'none'}: send multipart/form-data (field "
                                   "'file') or application/json ({\"images\": [\"<base64>\"]})")
        if len(uploads) > MAX_IMAGES_PER_REQUEST:
            raise UploadError(413, f"{len(uploads)} images, over the limit of {MAX_IMAGES_PER_REQUEST} a request")
        k = _topk(wanted, topk, len(predictor.names))
        cam = _wants_cam(request)
        if cam and explainer is None:
            raise UploadError(422, "cam: Grad-CAM needs the trained dygraph weights, which an export folder lacks: "
                                   "serve with -c CONFIG instead of --model")

        def inputs():
            return np.stack([model_input(predictor, decode_upload(data, name, channels, max_bytes,
                                                                  predictor.decode_size), name)
                             for name, data in uploads])

        def overlays():  # each picture in colour, as the user sees it
            try:
                return ["data:image/png;base64," + base64.b64encode(png_bytes(explainer(
                    decode_upload(data, name, 3, max_bytes))[0])).decode("ascii") for name, data in uploads]
            except PaddleClsError as exc:  # the trained weights gone or changed since the server started
                raise UploadError(500, f"cam: {exc}") from None

        with batcher.preparing(len(uploads)):
            batch = await run_in_threadpool(inputs)
        logits = await batcher.logits(batch)
        answer = {"predictions": [{"topk": [{"label": name, "index": index[name], "probability": probability}
                                            for name, probability in top_k(row, predictor.names, k)]}
                                  for row in logits]}
        if cam:
            for prediction, image in zip(answer["predictions"], await run_in_threadpool(overlays)):
                prediction["cam"] = image
        return answer

    return app
