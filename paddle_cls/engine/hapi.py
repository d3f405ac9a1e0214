"""The high-level engine: `paddle.Model(net).prepare(optimizer, loss, metrics).fit(...)`.

The loaders are the runner engine's (`data.loader.build_loader`: the same batch sizes, workers and orders);
in a data-parallel run the evaluation splits are shared out by `DistributedBatchSampler`, whose padding
hapi's own gathering removes, so every sample still counts once. Paddle's progress lines and per-epoch
snapshots (`<output_dir>/hapi/{epoch}.pdparams`, `final`, written atomically here) are hapi's own; the
progress bars, per-epoch records, VisualDL records, NaN stop, schedule and checkpoints are the runner
engine's callbacks (`engine.callbacks`), given fit's calls by `HapiEvents` in the form RunnerV3 makes them.
Resumable checkpoints are written after each epoch's evaluation.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence

import numpy as np
import paddle

from ..data.loader import build_loader
from ..errors import ConfigError, NonFiniteLoss
from ..metrics import score_name
from ..utils.weights import save_atomic, save_weights
from ..utils.distributed import all_reduce_sum
from ..utils.history import EpochHistory
from ..utils.logger import console_into_log_files, logger
from ..utils.precision import amp_level
from .best_model import report_evaluation
from .callbacks import close_progress, note_short_run, run_callbacks
from .checkpointer import Checkpointer
from .checkpointing import restore_scaler, resume_run, scaler_state, stopped_by_nan
from .components import Components
from .stop_request import StopRequest
from .visualdl_records import VisualDLRecords, scalar_recorder


def hapi_scaler(model: paddle.Model) -> Optional[paddle.amp.GradScaler]:
    """paddle.Model's float16 loss scaler (None without one): Paddle keeps it in a private attribute."""
    return getattr(model, "_scaler", None)


def restore_hapi_scaler(model: paddle.Model, state: dict) -> None:
    """Give paddle.Model a float16 loss scaler at a checkpoint's scale (it makes its own at its first step unless
    one is set, through the same private attribute)."""
    model._scaler = paddle.amp.GradScaler()
    restore_scaler(model._scaler, state)


class HapiEvents(paddle.callbacks.Callback):
    """Passes `paddle.Model.fit`'s callback calls on to `callbacks` as RunnerV3 makes them (`engine.callbacks`):
    epochs and steps counted from the start of the run also after a resume (hapi counts from 0 again), each
    step's loss as a float with the learning rate it used, the epoch's mean loss (hapi gives its last batch's),
    and at the end of an evaluation the mean loss over every batch of every process (hapi gives each process its
    last batch's)."""

    def __init__(self, callbacks: Sequence[paddle.callbacks.Callback], epochs: int, start_epoch: int,
                 optimizer: paddle.optimizer.Optimizer, score_name: str) -> None:
        super().__init__()
        self.callbacks = list(callbacks)
        self.epochs = epochs
        self.start_epoch = start_epoch
        self.optimizer = optimizer
        self.score_name = score_name
        self._epoch = start_epoch

    def set_model(self, model: paddle.Model) -> None:
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(dict(params, epochs=self.epochs))

    def _fire(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def _step(self, step):
        return self._epoch * self.params["steps"] + step

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self._fire("on_train_begin", {"global_step": self._step(0)})

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch, self._losses = epoch + self.start_epoch, []
        self._fire("on_epoch_begin", self._epoch, {"global_step": self._step(0)})

    def on_train_batch_begin(self, step: int, logs: Optional[dict] = None) -> None:
        self._lr = self.optimizer.get_lr()
        self._fire("on_train_batch_begin", step, {"global_step": self._step(step)})

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        self._losses.append(float(np.mean(logs["loss"])))  # hapi has already read it back from the device
        self._fire("on_train_batch_end", step, {"loss": self._losses[-1], "lr": self._lr,
                                                "global_step": self._step(step)})

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        out = {"loss": float(np.mean(self._losses)), "lr": self.optimizer.get_lr(),
               "global_step": self._step(self.params["steps"])}
        if self.score_name in logs:  # hapi's running accuracy over the epoch
            out[self.score_name] = float(logs[self.score_name])
        self._fire("on_epoch_end", self._epoch, out)

    def on_eval_begin(self, logs: Optional[dict] = None) -> None:
        self._eval_losses = []
        self._fire("on_eval_begin", {"global_step": self._step(self.params["steps"] - 1)})

    def on_eval_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        self._eval_losses.append(float(np.mean(logs["loss"])))

    def on_eval_end(self, logs: Optional[dict] = None) -> None:
        totals = all_reduce_sum(paddle.to_tensor([sum(self._eval_losses), len(self._eval_losses)], dtype="float64"))
        self._fire("on_eval_end", {"loss": float(totals[0] / totals[1]), self.score_name: float(logs[self.score_name]),
                                   "global_step": self._step(self.params["steps"] - 1)})

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self._fire("on_train_end", {"global_step": self._step(self.params["steps"])})


class KeepBestModel(paddle.callbacks.Callback):
    """The course's dev lines and a best model saved atomically at each evaluation, as RunnerV3 does itself
    (hapi's own ModelCheckpoint keeps per-epoch and final files, never a best)."""

    def __init__(self, path: str, history: EpochHistory, score_name: str, best_score: float = 0) -> None:
        super().__init__()
        self.path = path
        self.history = history
        self.score_name = score_name
        self.best_score = best_score

    def on_eval_end(self, logs: Optional[dict] = None) -> None:
        first = all(row["dev_accuracy"] is None for row in self.history.rows)  # rows come back on resume
        self.best_score = report_evaluation(self.model.network, logs[self.score_name], logs["loss"], self.best_score,
                                            self.path, first)


class AtomicModelCheckpoint(paddle.callbacks.ModelCheckpoint):
    """hapi's own per-epoch snapshots (`{epoch}` and `final`, .pdparams and .pdopt, as `paddle.Model.save`
    writes them), with each file written atomically. Passed to `fit`, it replaces the default one."""

    def __init__(self, optimizer: paddle.optimizer.Optimizer, save_freq: int, save_dir: str) -> None:
        super().__init__(save_freq, save_dir)
        self.optimizer = optimizer

    def _write(self, name):
        path = os.path.join(self.save_dir, name)
        logger.info(f"save checkpoint at {os.path.abspath(path)}")
        save_weights(self.model.network, path + ".pdparams")
        save_atomic(self.optimizer.state_dict(), path + ".pdopt")

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self._is_save() and self.epoch % self.save_freq == 0:
            self._write(str(epoch))

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self._is_save():
            self._write("final")


def train_hapi(config: dict, parts: Components, history: EpochHistory, paths: dict, stop: StopRequest,
               callbacks: Iterable = ()) -> Optional[float]:
    """Fit with `paddle.Model`, calling `callbacks` (the user's) after the run's own; returns the best dev score
    (None without evaluation)."""
    settings = config["Global"]
    evaluate = bool(settings["eval_steps"] or settings["eval_per_epoch"])
    if settings["eval_steps"]:
        logger.info("Global.eval_steps: the hapi engine evaluates once per epoch (fit's eval_freq=1)")
    if settings["save_unit"] == "step":
        logger.info("Global.save_unit: the hapi engine saves checkpoints per epoch (save_interval epochs)")
    train_loader = build_loader(config, "Train")
    note_short_run(settings, len(train_loader))
    dev_loader = build_loader(config, "Eval", padded_shards=True) if evaluate else None
    # Given the input spec, paddle.Model does not inspect forward's signature, which to_static hides.
    image_spec = paddle.static.InputSpec([None, *settings["image_shape"]], "float32", "image")
    model = paddle.Model(parts.model, inputs=[image_spec])
    level = amp_level(config, paddle.get_device())  # O1 in float16 only (config.validate refuses the rest)
    optimizer = parts.optim.optimizer
    model.prepare(optimizer, parts.loss_fn, parts.metric, amp_configs={"level": level} if level else None)
    score = score_name(parts.metric)
    start_epoch, save_dir, resumed = 0, os.path.join(paths["output_dir"], "hapi"), None
    if settings["resume"]:
        resumed = resume_run(settings["resume"], paths["output_dir"], parts.model, optimizer, "hapi", history)
        start_epoch = resumed["next_step"] // len(train_loader)
        if start_epoch >= settings["epochs"]:
            raise ConfigError(f"Global.resume: {resumed['folder']} is at the end of epoch {start_epoch}, and "
                              f"Global.epochs is {settings['epochs']}: nothing left to train; raise Global.epochs")
        if hasattr(train_loader.batch_sampler, "set_epoch"):  # a data-parallel sampler shuffles by epoch number
            train_loader.batch_sampler.set_epoch(start_epoch)
        save_dir = os.path.join(save_dir, f"from_epoch_{start_epoch}")
        if resumed.get("grad_scaler"):
            restore_hapi_scaler(model, resumed["grad_scaler"])
        logger.info(f"[Train] resuming from {resumed['folder']} at epoch {start_epoch}")
    best = KeepBestModel(paths["best"], history, score, resumed["best_score"] if resumed else 0)
    checkpointer = Checkpointer(
        paths["output_dir"], optimizer, history, stop, settings["save_interval"], "epoch",
        lambda mid_epoch: {"engine": "hapi", "epoch_loss_sum": 0.0, "runner": None, "best_score": best.best_score,
                           "grad_scaler": scaler_state(hapi_scaler(model))},
        resumes_mid_epoch=False, resumed_state=resumed)
    recorder = scalar_recorder(settings, paths, len(train_loader), parts.metric,
                               start_epoch * len(train_loader) if resumed else None)
    scalars = VisualDLRecords(recorder, score, checkpointer.saves_after) if recorder is not None else None
    run = run_callbacks(history, score, settings, [best], scalars, parts.optim.scheduler, parts.optim.by_epoch,
                        checkpointer, evaluates_after_epoch=evaluate)
    events = HapiEvents(run + list(callbacks), settings["epochs"], start_epoch, optimizer, score)
    # hapi adds an LRScheduler stepping every batch unless given one: the run's own LRStep steps the schedule
    fit_callbacks = [events, paddle.callbacks.LRScheduler(by_step=False, by_epoch=False),
                     AtomicModelCheckpoint(optimizer, save_freq=1, save_dir=save_dir)]
    with console_into_log_files():
        try:
            model.fit(train_data=train_loader, eval_data=dev_loader, epochs=settings["epochs"] - start_epoch,
                      eval_freq=1, log_freq=settings["log_steps"] or 100, save_dir=save_dir, verbose=2,
                      callbacks=fit_callbacks)
        except NonFiniteLoss as exc:
            raise stopped_by_nan(exc, checkpointer.latest) from None
        finally:
            close_progress(run)
    return best.best_score if evaluate else None
