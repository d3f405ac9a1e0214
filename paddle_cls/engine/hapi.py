"""The high-level engine: `paddle.Model(net).prepare(optimizer, loss, metrics).fit(...)`.

The loaders are the runner engine's (`data.loader.build_loader`: the same batch sizes, workers and orders);
in a data-parallel run the evaluation splits are shared out by `DistributedBatchSampler`, whose padding
hapi's own gathering removes, so every sample still counts once. Paddle's progress lines and per-epoch
snapshots (`<output_dir>/hapi/{epoch}.pdparams`, `final`, written atomically here) are hapi's own; the
progress bars, VisualDL records, best model, NaN stop and checkpoints are the same as the runner engine's.
The learning-rate schedule is stepped by an explicit `paddle.callbacks.LRScheduler`, so hapi never adds its
default one (which steps every batch, whatever the schedule was written for). Resumable checkpoints are
written after each epoch's evaluation.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np
import paddle

from ..data.loader import build_loader
from ..errors import ConfigError, NonFiniteLoss, TrainingInterrupted
from ..metrics import score_name
from ..utils.weights import check_finite_weights, save_atomic, save_weights
from ..utils.distributed import all_reduce_sum
from ..utils.history import EpochHistory
from ..utils.logger import console_into_log_files, logger
from ..utils.progress import TrainingProgress
from ..utils.precision import amp_level
from .best_model import report_evaluation
from .recording import epoch_line, note_short_run, scalar_recorder
from .checkpointing import (random_states, restore_scaler, resume_run, save_checkpoint, scaler_state,
                            stopped_by_nan)
from .components import Components
from .runner import CHECK_EVERY
from .stop_request import StopRequest


class HapiEpochRecorder(paddle.callbacks.Callback):
    """For `paddle.Model.fit`: the same per-epoch history as the runner engine, the course's dev lines and a
    best model saved atomically (hapi's own `ModelCheckpoint` keeps per-epoch and final files, never a best).

    hapi calls `on_epoch_end` before the epoch's evaluation, so a row is completed at `on_eval_end` (or when
    the next epoch starts without one). Losses are the mean of the batch losses, as RunnerV3 reports them;
    train accuracy is hapi's running accuracy over the epoch. It also stops the run (NonFiniteLoss) on a
    non-finite loss, or weights found non-finite every 200 steps and at each epoch's end, as RunnerV3 does,
    and feeds `scalars` (a `ScalarRecorder`, or None) with the same steps as RunnerV3 numbers them.
    """

    def __init__(self, history, epochs, best_path, metric_name, steps_per_epoch, record_train_accuracy=False,
                 scalars=None):
        super().__init__()
        self.history = history
        self.epochs = epochs
        self.best_path = best_path
        self.metric_name = metric_name
        self.steps_per_epoch = steps_per_epoch
        self.record_train_accuracy = record_train_accuracy
        self.scalars = scalars
        self.best_score = 0
        self.epoch_offset = 0  # epochs done before a resume: hapi counts from 0 again
        self.on_epoch_done = None  # called with the epoch once its row is complete (checkpointing)
        self._pending = None
        self._epoch = 0

    def _commit(self):
        if self._pending is not None:
            self._pending["seconds"] = time.time() - self._start
            self.history.add(**self._pending)
            epoch = self._pending["epoch"]
            self._pending = None
            epoch_line(self.history, self.epochs)
            if self.scalars is not None:
                self.scalars.flush()  # the records up to a checkpoint are in the file before it is saved
            if self.on_epoch_done is not None:
                self.on_epoch_done(epoch)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._commit()
        self._start = time.time()
        self._train_losses = []
        self._epoch = epoch + self.epoch_offset

    def _global_step(self, step):
        return self._epoch * self.steps_per_epoch + step

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        loss = float(np.mean(logs["loss"]))  # hapi has already read it back from the device
        global_step = self._global_step(step)
        if not np.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at step {global_step}")
        if (step + 1) % CHECK_EVERY == 0:
            check_finite_weights(self.model.network, f"at step {global_step}")
        self._train_losses.append(loss)
        if self.scalars is not None and global_step % self.scalars.every == 0:
            self.scalars.train_step(global_step, loss, self.model._optimizer.get_lr())

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        check_finite_weights(self.model.network, f"at step {self._global_step(self.steps_per_epoch - 1)}")
        accuracy = logs.get(self.metric_name) if self.record_train_accuracy else None
        self._pending = dict(epoch=epoch + self.epoch_offset, train_loss=float(np.mean(self._train_losses)),
                             train_accuracy=float(accuracy) if accuracy is not None else None,
                             lr=self.model._optimizer.get_lr())

    def on_eval_begin(self, logs: Optional[dict] = None) -> None:
        self._eval_losses = []

    def on_eval_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        self._eval_losses.append(float(np.mean(logs["loss"])))

    def on_eval_end(self, logs: Optional[dict] = None) -> None:
        if self._pending is None:  # an evaluate() outside fit
            return
        # hapi gathers the metric over processes but leaves each process its own batch losses: add those up.
        totals = all_reduce_sum(paddle.to_tensor([sum(self._eval_losses), len(self._eval_losses)], dtype="float64"))
        dev_loss, dev_score = float(totals[0] / totals[1]), float(logs[self.metric_name])
        first = all(row["dev_accuracy"] is None for row in self.history.rows)  # rows come back on resume
        self.best_score = report_evaluation(self.model.network, dev_score, dev_loss, self.best_score, self.best_path,
                                            first)
        if self.scalars is not None:
            self.scalars.evaluation(self._global_step(self.steps_per_epoch - 1), dev_loss, dev_score)
        self._pending.update(dev_loss=dev_loss, dev_accuracy=dev_score)
        self._commit()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self._commit()
        if self.scalars is not None:
            self.scalars.close()


class HapiProgress(paddle.callbacks.Callback):
    """The same progress bars as RunnerV3's (`utils.progress.TrainingProgress`), for `paddle.Model.fit`."""

    def __init__(self, epochs, steps_per_epoch, start_epoch=0, enabled=True):
        super().__init__()
        self.bars = TrainingProgress(epochs, steps_per_epoch, start_epoch * steps_per_epoch, enabled)
        self.start_epoch = start_epoch

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.bars.epoch_begin(epoch + self.start_epoch)

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        self.bars.step()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.bars.epoch_end()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self.bars.close()


class AtomicModelCheckpoint(paddle.callbacks.ModelCheckpoint):
    """hapi's own per-epoch snapshots (`{epoch}` and `final`, .pdparams and .pdopt, as `paddle.Model.save`
    writes them), with each file written atomically. Passed to `fit`, it replaces the default one."""

    def _write(self, name):
        path = os.path.join(self.save_dir, name)
        logger.info(f"save checkpoint at {os.path.abspath(path)}")
        save_weights(self.model.network, path + ".pdparams")
        save_atomic(self.model._optimizer.state_dict(), path + ".pdopt")

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self._is_save() and self.epoch % self.save_freq == 0:
            self._write(str(epoch))

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self._is_save():
            self._write("final")


class _HapiCheckpointer(paddle.callbacks.Callback):
    """Saves a resumable checkpoint every `interval` epochs (after the epoch's evaluation), and stops the run
    on a Ctrl-C request at the end of the current batch."""

    def __init__(self, output_dir, interval, recorder, stop, steps_per_epoch):
        super().__init__()
        self.output_dir = output_dir
        self.interval = interval
        self.recorder = recorder
        self.stop = stop
        self.steps_per_epoch = steps_per_epoch
        self.latest = None

    def epoch_done(self, epoch):
        if (epoch + 1) % self.interval:
            return
        state = {"engine": "hapi", "next_step": (epoch + 1) * self.steps_per_epoch, "epoch_loss_sum": 0.0,
                 "runner": None,
                 "best_score": self.recorder.best_score, "history": list(self.recorder.history.rows),
                 "random": random_states(), "grad_scaler": scaler_state(getattr(self.model, "_scaler", None))}
        self.latest = save_checkpoint(self.output_dir, self.model.network, self.model._optimizer, state) or self.latest
        if self.latest:
            logger.info(f"[Checkpoint] epoch {epoch}: saved {self.latest}")

    def on_train_batch_end(self, step, logs=None):
        if self.stop.requested:
            where = f"the last checkpoint is {self.latest}" if self.latest else "no checkpoint was saved yet"
            raise TrainingInterrupted(f"training stopped by Ctrl-C in the middle of an epoch; {where}. "
                                      "Continue with -o Global.resume=auto (from the last completed epoch)")


def train_hapi(config: dict, parts: Components, history: EpochHistory, paths: dict,
               stop: StopRequest) -> Optional[float]:
    """Fit with `paddle.Model`; returns the best dev score (None without evaluation)."""
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
    model.prepare(parts.optim.optimizer, parts.loss_fn, parts.metric, amp_configs={"level": level} if level else None)
    recorder = HapiEpochRecorder(history, settings["epochs"], paths["best"], score_name(parts.metric),
                                 len(train_loader), record_train_accuracy=settings["train_accuracy"])
    start_epoch, save_dir = 0, os.path.join(paths["output_dir"], "hapi")
    if settings["resume"]:
        resumed = resume_run(settings["resume"], paths["output_dir"], parts.model, parts.optim.optimizer, "hapi",
                             history)
        start_epoch = resumed["next_step"] // len(train_loader)
        if start_epoch >= settings["epochs"]:
            raise ConfigError(f"Global.resume: {resumed['folder']} is at the end of epoch {start_epoch}, and "
                              f"Global.epochs is {settings['epochs']}: nothing left to train; raise Global.epochs")
        recorder.best_score, recorder.epoch_offset = resumed["best_score"], start_epoch
        if hasattr(train_loader.batch_sampler, "set_epoch"):  # a data-parallel sampler shuffles by epoch number
            train_loader.batch_sampler.set_epoch(start_epoch)
        save_dir = os.path.join(save_dir, f"from_epoch_{start_epoch}")
        if resumed.get("grad_scaler"):  # paddle.Model makes its float16 loss scaler at its first step unless set
            model._scaler = paddle.amp.GradScaler()
            restore_scaler(model._scaler, resumed["grad_scaler"])
        logger.info(f"[Train] resuming from {resumed['folder']} at epoch {start_epoch}")
    recorder.scalars = scalar_recorder(settings, paths, len(train_loader), parts.metric,
                                       start_epoch * len(train_loader) if settings["resume"] else None)
    checkpointer = _HapiCheckpointer(paths["output_dir"], settings["save_interval"], recorder, stop, len(train_loader))
    recorder.on_epoch_done = checkpointer.epoch_done
    callbacks = [
        recorder,
        paddle.callbacks.LRScheduler(by_step=not parts.optim.by_epoch, by_epoch=parts.optim.by_epoch),
        checkpointer,
        AtomicModelCheckpoint(save_freq=1, save_dir=save_dir),
        HapiProgress(settings["epochs"], len(train_loader), start_epoch, enabled=settings["progress"]),
    ]
    with console_into_log_files():
        try:
            model.fit(
                train_data=train_loader,
                eval_data=dev_loader,
                epochs=settings["epochs"] - start_epoch,
                eval_freq=1,
                log_freq=settings["log_steps"] or 100,
                save_dir=save_dir,
                verbose=2,
                callbacks=callbacks,
            )
        except NonFiniteLoss as exc:
            raise stopped_by_nan(exc, checkpointer.latest) from None
    return recorder.best_score if evaluate else None
