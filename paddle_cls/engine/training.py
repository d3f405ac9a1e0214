"""A whole training run from a config, on either engine, ending with a test of the best model."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Iterable

import paddle

from ..config import dump_config
from ..data.catalog import dataset_type
from ..data.loader import CLASSES_FILE, check_batches, class_names, data_summary, datasets_built_once
from ..errors import ConfigError
from ..utils.weights import load_model_file, save_weights
from ..utils.distributed import barrier, init_parallel, is_main_process, rank, world_size
from ..utils.history import EpochHistory
from ..utils.logger import log_to_file, logger
from ..utils.plot import plot_loss_and_accuracy, plot_validation_accuracy
from ..utils.runtime import seed_everything, set_device
from .callbacks import early_stopping_dir, user_callbacks
from .components import build_components, check_components
from .hapi import train_hapi
from .input_check import check_inputs
from .stop_request import StopRequest
from .train_runner import train_runner
from ..deploy.trained import BEST_MODEL, RESULTS_FILE, test_model

ENGINES = {"runner": train_runner, "hapi": train_hapi}


def check_output_dir(path: str) -> None:
    """ConfigError when `Global.output_dir` could not be created or written, found without creating anything."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        reason = f"{existing} is a file"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
    else:
        return
    raise ConfigError(f"Global.output_dir: cannot write to {path} ({reason}); choose another folder")


def prepare_output_dir(path: str) -> str:
    """Create `Global.output_dir` and check it can be written, before any training starts."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"Global.output_dir: cannot write to {path} ({exc.strerror}); "
                          "choose another folder") from None
    return path


def weights_fingerprint(model: paddle.nn.Layer) -> float:
    """A number that differs when the weights differ: the processes of a data-parallel run must agree on it."""
    return float(sum(float(p.astype("float64").sum()) + float((p.astype("float64") ** 2).sum())
                     for p in model.parameters()))


def train(config: dict, callbacks: Iterable = ()) -> dict:
    """Train as the config says on `Global.engine`, then test the best model (the final weights without one).

    Writes into `Global.output_dir`: the best model, the final weights (`Global.save_name`), the config,
    the log, the per-epoch history (JSON, CSV) and its figures, VisualDL records and `results.json` (which
    names the weights file tested, the one eval, predict and export then use).

    `callbacks`: Paddle callbacks (`paddle.callbacks.Callback`, e.g. `paddle.callbacks.EarlyStopping` or your
    own), called on either engine with the hooks and logs of `engine.callbacks`, after the run's own.
    `EarlyStopping` keeps its best model in `<output_dir>/early_stopping/` and stops after an epoch's evaluation.

    Raises:
        ConfigError: before anything is written, when a split's transforms do not give `Global.image_shape`
            or the model takes other input channels (see `input_check.check_inputs`).
        TypeError: before anything is written, when a callback is not a `paddle.callbacks.Callback`.

    Returns:
        A dict of the results (best dev score, test accuracy and loss).
    """
    with datasets_built_once():
        return _train(config, callbacks)


def _train(config, callbacks):
    settings = config["Global"]
    if settings["engine"] not in ENGINES:
        raise ConfigError(f"Global.engine: unknown engine {settings['engine']!r} (valid: {', '.join(ENGINES)})")
    main = is_main_process()
    device = set_device(settings["device"], settings["num_threads"])  # the checks' tensors go there too
    # before any data is read or file written: names and keys, the output folder, what the data gives the model
    lazy_model = check_components(config)
    callbacks = user_callbacks(callbacks, early_stopping_dir(settings["output_dir"]),
                               bool(settings["eval_steps"] or settings["eval_per_epoch"]))
    if main:
        check_output_dir(settings["output_dir"])
    check_inputs(config, lazy_model)
    check_batches(config)
    output_dir = prepare_output_dir(settings["output_dir"]) if main else settings["output_dir"]
    if main and os.path.isfile(os.path.join(output_dir, RESULTS_FILE)):
        os.remove(os.path.join(output_dir, RESULTS_FILE))  # an earlier run's: it would name that run's weights
    paths = {"output_dir": output_dir, "best": os.path.join(output_dir, BEST_MODEL),
             "visualdl": os.path.join(output_dir, "visualdl")}
    handler = log_to_file(os.path.join(output_dir, "train.log")) if main else None
    try:
        init_parallel()
        seed_everything(settings["seed"], settings["deterministic"])
        names = class_names(config)
        if main:
            with open(os.path.join(output_dir, "config.yml"), "w", encoding="utf-8") as file:
                file.write(dump_config(config))
            with open(os.path.join(output_dir, CLASSES_FILE), "w", encoding="utf-8") as file:
                json.dump(list(names), file, indent=1)  # they travel with the model
        if dataset_type(config, "Train").own_images:
            logger.info(data_summary(config, names))
        logger.info(dump_config(config))
        parallel = f", process {rank()} of {world_size()}" if world_size() > 1 else ""
        logger.info(f"paddle {paddle.__version__} on {device}{parallel}, engine {settings['engine']}, "
                    f"writing to {output_dir}")
        logger.info(f"Watch it with: visualdl --logdir {paths['visualdl']}")
        parts = build_components(config)
        history = EpochHistory(output_dir if main else None)
        with StopRequest() as stop:
            best_dev_score = ENGINES[settings["engine"]](config, parts, history, paths, stop, callbacks)
        results = {"best_dev_score": best_dev_score, "weights_fingerprint": weights_fingerprint(parts.model)}
        logger.info(f"[Train] final weights fingerprint (process {rank()}): {results['weights_fingerprint']:.12e}")
        if main:
            save_weights(parts.model, os.path.join(output_dir, settings["save_name"]), "at the end of training")
        if main and history.rows:
            plot_loss_and_accuracy(history, os.path.join(output_dir, "loss_accuracy.png"))
            if any(row["dev_accuracy"] is not None for row in history.rows):
                plot_validation_accuracy(history, os.path.join(output_dir, "validation_accuracy.png"))
        if "Test" in config["DataLoader"]:
            barrier()  # rank 0 may still be writing best_model.pdparams (from the last evaluation) that all test
            if best_dev_score is not None and os.path.isfile(paths["best"]):
                load_model_file(parts.model, paths["best"])
                results["tested_weights"] = BEST_MODEL
            else:
                results["tested_weights"] = settings["save_name"]
                logger.info(f"No dev evaluation ran, so the final weights ({settings['save_name']}) are tested; "
                            "eval, predict and export use them too.")
            results["test_accuracy"], results["test_loss"], results["test_samples"] = test_model(parts.model, config)
        if main:
            with open(os.path.join(output_dir, RESULTS_FILE), "w", encoding="utf-8") as file:
                json.dump(results, file, indent=2)
        return results
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()
