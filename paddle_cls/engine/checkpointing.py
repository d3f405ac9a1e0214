"""Training checkpoints that survive crashes, and resuming from them in a fresh process.

A checkpoint is a folder `<output_dir>/checkpoints/step_<N>/` holding `model.pdparams`, `optimizer.pdopt`
(learning-rate schedule included) and `state.pdstates` (the engine that wrote it, epoch and step, random
states, the runner's histories, the per-epoch history, the best score); both engines write this one format.
The file `checkpoints/latest` names the newest complete folder and is replaced atomically after the folder is
written, so a kill at any moment leaves a usable one.
"""
from __future__ import annotations

import os
import pickle
import random
import shutil
from typing import Optional

import numpy as np
import paddle

from ..errors import CheckpointError, NonFiniteLoss
from ..utils.weights import load_model_file, load_state_dict, save_atomic, save_weights
from ..utils.distributed import is_main_process
from ..utils.history import EpochHistory
from ..utils.logger import logger
from ..utils.safe_pickle import restricted_load

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
STATE_VERSION = 3  # 2: records the engine that wrote the checkpoint; 3: Paddle's CPU and device random states apart
_STATE_GLOBALS = {("paddle.base.libpaddle", "GeneratorState"): type(paddle.get_rng_state()[0])}


def _unwrapped(model):
    return getattr(model, "_layers", model)  # paddle.DataParallel keeps the network in _layers


def _parameter_names(model):
    # Paddle keys optimizer state by generated parameter names (linear_0.w_0, ...), which differ between
    # processes that create layers in another order; the model's structured names do not.
    return {param.name: key for key, param in _unwrapped(model).named_parameters()}


def portable_optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer) -> dict:
    """The optimizer's state dict with generated parameter names replaced by the model's structured names."""
    names = _parameter_names(model)
    by_length = sorted(names, key=len, reverse=True)
    portable = {}
    for key, value in optimizer.state_dict().items():
        generated = next((n for n in by_length if key.startswith(n) and key[len(n):len(n) + 1] == "_"), None)
        if key == "master_weights" and isinstance(value, dict):
            value = {names.get(k, k): v for k, v in value.items()}
        portable[f"@{names[generated]}@{key[len(generated):]}" if generated else key] = value
    return portable


def restore_optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer, portable: dict,
                            source: str) -> None:
    """Load a `portable_optimizer_state` into `optimizer`, mapping names onto this process's parameters."""
    by_key = {key: param.name for key, param in _unwrapped(model).named_parameters()}
    state = {}
    for key, value in portable.items():
        if key.startswith("@"):
            structured, _, suffix = key[1:].partition("@")
            if structured not in by_key:
                raise CheckpointError(f"{source}: optimizer state for parameter {structured}, which the model "
                                      "does not have: the checkpoint is from another Arch")
            key = by_key[structured] + suffix
        elif key == "master_weights" and isinstance(value, dict):
            value = {by_key.get(k, k): v for k, v in value.items()}
        state[key] = value
    optimizer.set_state_dict(state)


def _device_type():
    """'gpu', 'xpu' or a custom device's name: whose generators `paddle.get_rng_state()` returns; None on the CPU."""
    kind = paddle.get_device().split(":")[0]
    return None if kind == "cpu" else kind


def scaler_state(scaler: Optional[paddle.amp.GradScaler]) -> Optional[dict]:
    """A float16 `paddle.amp.GradScaler`'s state (loss scale and step counts) as plain values; None without one."""
    if scaler is None:
        return None
    return {key: np.asarray(value).item() for key, value in scaler.state_dict().items()} or None


def restore_scaler(scaler: paddle.amp.GradScaler, state: dict) -> None:
    """Set `scaler` to a `scaler_state`, so that the loss scale continues where the checkpoint left it."""
    scaler.load_state_dict(dict(state, scale=np.array([state["scale"]], dtype=np.float32)))


def random_states() -> dict:
    """Python, NumPy and Paddle random states, as a checkpoint keeps them.

    Paddle's are kept apart: `paddle_cpu`, the CPU generator's one state, and `paddle_device`, None on the CPU,
    else `{"type": "gpu", "states": [...]}` with one state per visible device (`paddle.get_rng_state()` on a
    GPU returns those, and not the CPU's).
    """
    name, keys, position, has_gauss, cached = np.random.get_state()
    device = _device_type()
    return {"python": random.getstate(), "numpy": (name, keys.tolist(), position, has_gauss, cached),
            "paddle_cpu": paddle.get_rng_state("cpu"),
            "paddle_device": {"type": device, "states": paddle.get_rng_state()} if device else None}


def _set_device_states(saved_type, saved, source):
    """Set the device generators to the `saved` states of `saved_type` devices where this process has them:
    the first min(saved, visible) devices of the same type. Anything left unrestored is said in one line."""
    device = _device_type()
    current = paddle.get_rng_state() if device else []
    restored = min(len(saved), len(current)) if saved_type in (device, None) else 0
    if restored:
        paddle.set_rng_state(list(saved[:restored]) + list(current[restored:]))
    if restored < len(saved):
        here = f"{len(current)} {device} device(s)" if device else "only the CPU"
        kind = f"{saved_type} " if saved_type else ""
        logger.info(f"[Checkpoint] {source} holds the random states of {len(saved)} {kind}device(s) and this "
                    f"process has {here}: {restored} restored, so dropout and other random operations will differ "
                    "from an uninterrupted run's")


def _set_random_states(states, source):
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    if "paddle" in states:  # version 2 kept only the current device's generators, CPU or one per visible GPU
        if _device_type() is None and len(states["paddle"]) == 1:
            paddle.set_rng_state(states["paddle"])
        else:
            _set_device_states(None, states["paddle"], source)
        return
    # paddle.set_rng_state(device="cpu") fails on Paddle 2.6 (it calls _convert_to_place on the string)
    paddle.base.core.default_cpu_generator().set_state(states["paddle_cpu"][0])
    if states["paddle_device"]:
        _set_device_states(states["paddle_device"]["type"], states["paddle_device"]["states"], source)


def save_checkpoint(output_dir: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    state: dict) -> Optional[str]:
    """Write a checkpoint folder for `state['next_step']`, then point `checkpoints/latest` at it.

    `state` says which engine wrote it (`engine`). Weights holding NaN or inf are refused (NonFiniteLoss),
    so the last checkpoint is always one to resume from.
    """
    if not is_main_process():
        return None
    root = os.path.join(output_dir, CHECKPOINT_DIR)
    name = f"step_{state['next_step']:08d}"
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    save_weights(_unwrapped(model), os.path.join(folder, "model.pdparams"), f"at step {state['next_step']}")
    save_atomic(portable_optimizer_state(optimizer, model), os.path.join(folder, "optimizer.pdopt"))
    state_path = os.path.join(folder, "state.pdstates")
    with open(state_path + ".tmp", "wb") as file:
        pickle.dump(dict(state, version=STATE_VERSION), file)
    os.replace(state_path + ".tmp", state_path)
    pointer = os.path.join(root, LATEST)
    with open(pointer + ".tmp", "w", encoding="utf-8") as file:
        file.write(name + "\n")
    os.replace(pointer + ".tmp", pointer)
    for old in os.listdir(root):
        if old.startswith("step_") and old != name:
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return folder


def find_checkpoint(resume: str, output_dir: str) -> str:
    """The checkpoint folder that `Global.resume` names: `auto` (the newest in `output_dir`), a checkpoint
    folder, a `checkpoints` folder or its `latest` file. A path that does not exist is an error."""
    if resume == "auto":
        path = os.path.join(output_dir, CHECKPOINT_DIR)
        if not os.path.isfile(os.path.join(path, LATEST)):
            raise CheckpointError(f"Global.resume: auto, but {path} holds no checkpoint to resume from; "
                                  "drop Global.resume to start afresh")
    else:
        path = os.path.expanduser(resume)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, LATEST)):
        path = os.path.join(path, LATEST)
    if os.path.isfile(path) and os.path.basename(path) == LATEST:
        with open(path, encoding="utf-8") as file:
            path = os.path.join(os.path.dirname(path), file.read().strip())
    if not os.path.isfile(os.path.join(path, "state.pdstates")):
        raise CheckpointError(f"Global.resume: no checkpoint at {path} (expected a folder with model.pdparams, "
                              "optimizer.pdopt and state.pdstates, or auto)")
    return path


def load_checkpoint(folder: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, engine: str) -> dict:
    """Load a checkpoint folder into `model` and `optimizer` and set the random states; returns its state.

    A checkpoint continues on the engine that wrote it (`engine` is the one resuming): the runner's stops
    fall mid-epoch and carry its histories, hapi's fall at epoch ends, so one is refused by the other.
    """
    state_path = os.path.join(folder, "state.pdstates")
    with open(state_path, "rb") as file:
        state = restricted_load(file, state_path, _STATE_GLOBALS, CheckpointError, "training state")
    if not isinstance(state, dict) or state.get("version") not in (1, 2, STATE_VERSION):
        raise CheckpointError(f"{state_path}: not a paddle_cls training state of version 1 to {STATE_VERSION}")
    written_by = state.get("engine") or ("runner" if state.get("runner") else "hapi")  # version 1 did not say
    if written_by != engine:
        raise CheckpointError(f"{folder} was written by the {written_by} engine and resumes only on it: "
                              f"add -o Global.engine={written_by}, or drop Global.resume to start afresh "
                              f"on the {engine} engine")
    load_model_file(model, os.path.join(folder, "model.pdparams"))
    optimizer_path = os.path.join(folder, "optimizer.pdopt")
    restore_optimizer_state(optimizer, model, load_state_dict(optimizer_path), optimizer_path)
    _set_random_states(state["random"], folder)
    return state


def resume_run(resume: str, output_dir: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, engine: str,
               history: EpochHistory) -> dict:
    """Continue the run `Global.resume` names on `engine`: load its checkpoint into `model` and `optimizer`,
    set the random states and the per-epoch `history`; returns the checkpoint's state (with its `folder`)."""
    folder = find_checkpoint(resume, output_dir)
    state = load_checkpoint(folder, model, optimizer, engine)
    history.rows = list(state["history"])
    return dict(state, folder=folder)


def stopped_by_nan(exc: Exception, latest: Optional[str]) -> NonFiniteLoss:
    """The error that ends a run whose loss became NaN or infinite, naming the last good checkpoint."""
    return NonFiniteLoss(f"{exc}; the run stopped. Last good checkpoint: {latest or 'none saved yet'} "
                         "(resume from it with -o Global.resume=auto, perhaps with a lower learning rate)")
