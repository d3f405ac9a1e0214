"""Mixed precision (`Global.amp`, `Global.amp_dtype`): the level a run computes at on its device, decorating a
model for O2, and `auto_cast`."""
from __future__ import annotations

import weakref
from typing import Any, ContextManager, Optional

import paddle

from .logger import logger


def amp_dtype_unsupported(dtype: str, device: str) -> Optional[str]:
    """Why the GPU `device` cannot train in `dtype` under Paddle's AMP, or None when it can.

    `paddle.amp.is_bfloat16_supported` (compute capability 8.0) and `is_float16_supported` (5.3) say what the
    GPU has; Paddle's AMP itself (`auto_cast`, `decorate` in paddle/amp/auto_cast.py, 2.6 and 3.x) also needs
    capability 7.0 for float16, and where either fails it trains in float32 with no more than a warning.
    """
    major, minor = paddle.device.cuda.get_device_capability(device)
    if dtype == "bfloat16":
        supported, needed = paddle.amp.is_bfloat16_supported(device), "8.0"
    else:
        supported, needed = paddle.amp.is_float16_supported(device) and major >= 7, "7.0"
    if supported:
        return None
    return (f"{paddle.device.cuda.get_device_name(device)} (compute capability {major}.{minor}) has no {dtype} "
            f"mixed precision, which needs {needed} or newer")


def amp_level(config: dict, device: str, report: bool = True) -> Optional[str]:
    """`Global.amp` as the level to run with on `device`: None when off, on a CPU, or on a GPU without
    `Global.amp_dtype` (each said in one line when `report`, then the run computes in float32)."""
    settings = config["Global"]
    level, dtype = settings["amp"], settings["amp_dtype"]
    if level == "off":
        return None
    if not device.startswith("gpu"):
        if report:
            logger.info(f"Global.amp: {level} is for GPUs; training in float32 on {device}")
        return None
    unsupported = amp_dtype_unsupported(dtype, device)
    if unsupported:
        if report:
            float16 = dtype == "bfloat16" and amp_dtype_unsupported("float16", device) is None
            hint = "Global.amp_dtype: float16 for mixed precision here" if float16 else "Global.amp: off"
            logger.info(f"Global.amp_dtype: {dtype}, but {unsupported}; training in float32 (set {hint})")
        return None
    return level


def autocast(level: Optional[str], dtype: str) -> ContextManager:
    """`paddle.amp.auto_cast` at `level` ('O1', 'O2', or None for float32) and `dtype`."""
    return paddle.amp.auto_cast(enable=bool(level), level=level or "O1", dtype=dtype)


_DECORATED = weakref.WeakSet()  # models decorate_o2 has decorated (on a CPU Paddle leaves them float32)


def _low_precision(model):
    return any(param.dtype in (paddle.float16, paddle.bfloat16) for param in model.parameters())


def decorate_o2(model: paddle.nn.Layer, optimizer: Optional[paddle.optimizer.Optimizer] = None,
                dtype: str = "float16") -> Any:
    """`paddle.amp.decorate` at level O2: the model's weights in `dtype` (batch norm kept in float32), the
    optimizer keeping float32 master weights, and `state_dict()` (so every file saved) in float32
    (`save_dtype`, as PaddleClas decorates), so that the files load anywhere. A model already decorated is
    returned as it is.

    In a data-parallel run, decorate the bare model, then wrap it in `paddle.DataParallel`: Paddle refuses a
    wrapped one (`check_models` in paddle/amp/auto_cast.py), on a GPU only.

    Returns:
        The model, or `(model, optimizer)` when an optimizer is given.

    Raises:
        ValueError: `model` is a `paddle.DataParallel` around a model not decorated yet.
    """
    done = (model, optimizer) if optimizer is not None else model
    bare = model._layers if isinstance(model, paddle.DataParallel) else model
    if bare in _DECORATED or _low_precision(bare):
        return done
    if bare is not model:
        raise ValueError("amp O2: decorate the model with paddle_cls.utils.precision.decorate_o2 before wrapping it "
                         "in paddle.DataParallel (Paddle refuses to decorate the wrapper)")
    decorated = paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", dtype=dtype,
                                    save_dtype="float32")
    _DECORATED.add(model)
    return decorated


def as_float32(tensor: paddle.Tensor) -> paddle.Tensor:
    """`tensor` in float32: under float16/bfloat16 AMP losses and logits come out in low precision; a float32
    tensor is returned as it is (no cast op added)."""
    return tensor if tensor.dtype == paddle.float32 else tensor.astype("float32")
