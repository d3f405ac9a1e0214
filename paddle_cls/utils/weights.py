"""Saving and loading model files so that a crash never leaves a half-written file and a mismatch is never silent."""
from __future__ import annotations

import os
from typing import Any, List

import numpy as np
import paddle

from ..errors import CheckpointError, NonFiniteLoss
from .safe_pickle import paddle_pickle_load


def save_atomic(obj: Any, path: str) -> None:
    """`paddle.save(obj, path)` through a temporary file in the same folder and a rename.

    A kill at any moment leaves either the previous file or the new one, never a truncated file.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp_path = f"{path}.{os.getpid()}.tmp"
    try:
        paddle.save(obj, tmp_path)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def nonfinite_weights(model: paddle.nn.Layer) -> List[str]:
    """Names of the model's floating-point parameters and buffers holding NaN or inf (one device read for all)."""
    named = [(name, value) for name, value in model.state_dict().items()
             if isinstance(value, paddle.Tensor) and paddle.is_floating_point(value)]
    if not named:
        return []
    finite = paddle.stack([paddle.isfinite(value).all() for _, value in named]).numpy()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def check_finite_weights(model: paddle.nn.Layer, when: str) -> None:
    """Raise NonFiniteLoss naming the first non-finite weights; `when` says when, e.g. 'at step 120'."""
    bad = nonfinite_weights(model)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteLoss(f"the weights became nan or inf {when} ({shown})")


def save_weights(model: paddle.nn.Layer, path: str, when: str = "before saving") -> None:
    """Save `model`'s state dict atomically, refusing (NonFiniteLoss) to write NaN or inf weights."""
    check_finite_weights(model, f"{when} ({os.path.basename(path)} not written)")
    save_atomic(model.state_dict(), path)


def _to_tensors(value):
    """The arrays in `value` as tensors, as `paddle.load` returns them (the generic writer's `(name, array)`
    tuples included)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], np.ndarray):
        value = value[1]
    if isinstance(value, np.ndarray):
        return paddle.to_tensor(value)
    if isinstance(value, dict):
        return type(value)((key, _to_tensors(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_to_tensors(item) for item in value]
    return value


def load_state_dict(path: str) -> dict:
    """Read a `.pdparams` or `.pdopt` file as `paddle.load` does, but never running code from it.

    Every read of a Paddle pickle in the toolkit comes here (`utils.safe_pickle.paddle_pickle_load`).

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, not a state dict, or names anything
            but arrays and plain values (a file crafted to run code: "refused to load 'posix.system'").
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"model file {path} not found: train first, or give the path of a saved .pdparams")
    try:
        state = paddle_pickle_load(path, CheckpointError)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    try:
        return _to_tensors(state)
    except RecursionError:
        raise CheckpointError(f"{path}: not a Paddle weights file (nested deeper than any state dict)") from None


def set_state_dict_strict(model: paddle.nn.Layer, state: dict, source: str) -> None:
    """Load `state` into `model`, refusing missing or unexpected keys and shape mismatches, and casting
    floating-point values to the dtype of the model's tensor (a float32 file into a float16 model of AMP O2,
    or a float16 file into a float32 one; Paddle's `set_state_dict` asserts "Variable dtype not match").

    Paddle's own `set_state_dict` only warns and leaves the unmatched parameters at their random init.
    """
    model = model._layers if isinstance(model, paddle.DataParallel) else model
    expected = model.state_dict(use_hook=False)  # the tensors themselves, not AMP's float32 copies (save_dtype)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} (file {list(state[key].shape)}, model {list(expected[key].shape)})"
        for key in expected
        if key in state and list(state[key].shape) != list(expected[key].shape)
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: " + "; ".join(problems)
            + ". Check that Arch (name and num_classes) matches the run that saved it."
        )
    model.set_state_dict({key: _cast_like(value, expected[key]) for key, value in state.items()})


def _cast_like(value, target):
    value = paddle.to_tensor(value) if isinstance(value, np.ndarray) else value
    if (paddle.is_tensor(value) and paddle.is_floating_point(value) and paddle.is_floating_point(target)
            and value.dtype != target.dtype):
        return value.astype(target.dtype)
    return value


def load_model_file(model: paddle.nn.Layer, path: str) -> None:
    """Load the weights saved at `path` into `model`, strictly."""
    set_state_dict_strict(model, load_state_dict(path), path)
