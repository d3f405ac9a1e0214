"""Saving and loading model files so that a crash never leaves a half-written file and a mismatch is never silent."""
import os
import pickle

import paddle

from ..errors import CheckpointError, NonFiniteLoss


def save_atomic(obj, path):
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


def nonfinite_weights(model):
    """Names of the model's floating-point parameters and buffers holding NaN or inf (one device read for all)."""
    named = [(name, value) for name, value in model.state_dict().items()
             if isinstance(value, paddle.Tensor) and paddle.is_floating_point(value)]
    if not named:
        return []
    finite = paddle.stack([paddle.isfinite(value).all() for _, value in named]).numpy()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def check_finite_weights(model, when):
    """Raise NonFiniteLoss naming the first non-finite weights; `when` says when, e.g. 'at step 120'."""
    bad = nonfinite_weights(model)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteLoss(f"the weights became nan or inf {when} ({shown})")


def save_weights(model, path, when="before saving"):
    """Save `model`'s state dict atomically, refusing (NonFiniteLoss) to write NaN or inf weights."""
    check_finite_weights(model, f"{when} ({os.path.basename(path)} not written)")
    save_atomic(model.state_dict(), path)


def load_state_dict(path):
    """Read a `.pdparams` file, with a clear error when it is missing, truncated or corrupt."""
    if not os.path.isfile(path):
        raise CheckpointError(f"model file {path} not found: train first, or give the path of a saved .pdparams")
    try:
        state = paddle.load(path)
    except (pickle.UnpicklingError, EOFError, ValueError, RuntimeError, OSError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable Paddle model file (truncated or corrupt: {exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def set_state_dict_strict(model, state, source):
    """Load `state` into `model`, refusing missing or unexpected keys and shape mismatches.

    Paddle's own `set_state_dict` only warns and leaves the unmatched parameters at their random init.
    """
    expected = model.state_dict()
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
    model.set_state_dict(state)


def load_model_file(model, path):
    """Load the weights saved at `path` into `model`, strictly."""
    set_state_dict_strict(model, load_state_dict(path), path)
