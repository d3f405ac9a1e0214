"""The callbacks both engines train with, on Paddle's protocol (`paddle.callbacks.Callback`).

RunnerV3 calls its callbacks as `paddle.Model.fit` does, and on the hapi engine `hapi.HapiEvents` passes fit's
calls on in the same form, so that one callback serves both engines. What a callback gets:

- `set_model(model)`: the `RunnerV3` or the `paddle.Model`; both have `network`, `stop_training` (set it to stop
  after the current epoch and its evaluation), `save(path)` (writes `path.pdparams` and `path.pdopt`) and the
  optimizer under the private name Paddle's own callbacks read (`ReduceLROnPlateau`, `VisualDL` and `EarlyStopping`
  work on both engines).
- `set_params(params)`: `epochs` (of the whole run, also when resumed), `steps` (per epoch), `verbose`, `metrics`.
- `on_train_begin(logs)`, `on_train_end(logs)`; `on_epoch_begin(epoch, logs)` with `logs["global_step"]`, the first
  step this epoch runs (epochs and steps count from the start of the run, also after a resume).
- `on_train_batch_begin(step, logs)`, `on_train_batch_end(step, logs)`: `step` within the epoch; `logs` has
  `global_step`, and at the end `loss` (the batch's mean loss, a float) and `lr` (the rate this step used).
- `on_epoch_end(epoch, logs)`: `loss` (the epoch's mean training loss, a float), `lr`, `global_step` (the next
  step), and the score under the metric's name when the engine measured train accuracy.
- `on_eval_begin(logs)`, `on_eval_end(logs)` around each evaluation during training: `loss` (the mean over
  every batch of every process) and the score under the metric's name (`metrics.score_name`), as floats, and
  `global_step` (the step it follows). An evaluation after each epoch comes after `on_epoch_end` on both engines;
  RunnerV3's evaluations every `Global.eval_steps` steps come inside an epoch.

The order of a run's callbacks matters where one reads what another wrote: see `run_callbacks`.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np
import paddle

from ..errors import NonFiniteLoss
from ..utils.history import EpochHistory
from ..utils.logger import logger
from ..utils.progress import TrainingProgress
from ..utils.weights import check_finite_weights

# Step losses are read back from the device this many at a time, and the weights checked for NaN as often.
CHECK_EVERY = 200


def checked_callbacks(callbacks: Iterable, where: str) -> List[paddle.callbacks.Callback]:
    """`callbacks` as a list, each checked to be a `paddle.callbacks.Callback` (TypeError naming `where` if not)."""
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, paddle.callbacks.Callback):
            raise TypeError(f"{where}: {callback!r} is not a paddle.callbacks.Callback; subclass it and define the "
                            "hooks you need (on_epoch_end(epoch, logs), ...)")
    return callbacks


def user_callbacks(callbacks: Iterable, save_dir: str, evaluates: bool) -> List[paddle.callbacks.Callback]:
    """The callbacks a user gives `train(config, callbacks=[...])`, checked; `paddle.callbacks.EarlyStopping` keeps
    its best model in this run's `save_dir` (`paddle.Model.fit` sets it from its own save_dir the same way), and
    is said to do nothing in a run without evaluation (`evaluates` false).

    Raises:
        TypeError: one is not a `paddle.callbacks.Callback`.
    """
    callbacks = checked_callbacks(callbacks, "train(callbacks=...)")
    for callback in callbacks:
        if isinstance(callback, paddle.callbacks.EarlyStopping):
            callback.save_dir = save_dir
            if not evaluates:
                logger.info("EarlyStopping: this run evaluates nothing (set Global.eval_per_epoch or eval_steps), "
                            "so it will not stop it")
    return callbacks


def epoch_line(history: EpochHistory, epochs: int) -> None:
    """Log the `[Epoch]` line of the history's last row."""
    row = history.rows[-1]
    parts = [f"train loss: {row['train_loss']:.5f}"]
    for field in ("train_accuracy", "dev_loss", "dev_accuracy"):
        if row[field] is not None:
            parts.append(f"{field.replace('_', ' ')}: {row[field]:.5f}")
    logger.info(f"[Epoch] {row['epoch']}/{epochs}: " + ", ".join(parts) + f", time: {row['seconds']:.1f}s")


class EpochRecorder(paddle.callbacks.Callback):
    """Adds a row to the `EpochHistory` for each epoch and logs its `[Epoch]` line: the epoch's train loss and
    learning rate, the train accuracy when `train_accuracy` (and the engine measured it), the loss and score of
    the epoch's last evaluation, and the seconds from the epoch's start to its row.

    `evaluates_after_epoch`: the run evaluates after each `on_epoch_end`, so the row waits for that.
    `evaluation`: `(loss, score)` of an evaluation earlier in the epoch a run resumes inside of.
    """

    def __init__(self, history: EpochHistory, score_name: str, train_accuracy: bool = False,
                 evaluates_after_epoch: bool = False, evaluation: Optional[tuple] = None) -> None:
        super().__init__()
        self.history = history
        self.score_name = score_name
        self.train_accuracy = train_accuracy
        self.evaluates_after_epoch = evaluates_after_epoch
        self._row = None
        self._evaluation = evaluation

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._start = time.time()
        if logs["global_step"] % self.params["steps"] == 0:  # not a resume inside the epoch
            self._evaluation = None

    def on_eval_end(self, logs: Optional[dict] = None) -> None:
        self._evaluation = (logs["loss"], logs[self.score_name])
        if self._row is not None:
            self._complete()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        accuracy = logs.get(self.score_name) if self.train_accuracy else None
        self._row = dict(epoch=epoch, train_loss=float(logs["loss"]), lr=float(logs["lr"]),
                         train_accuracy=None if accuracy is None else float(accuracy))
        if not self.evaluates_after_epoch:
            self._complete()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self._complete()

    def _complete(self):
        if self._row is None:
            return
        dev_loss, dev_accuracy = self._evaluation or (None, None)
        self.history.add(**self._row, dev_loss=dev_loss, dev_accuracy=dev_accuracy, seconds=time.time() - self._start)
        self._row = None
        epoch_line(self.history, self.params["epochs"])


class StopOnNonFinite(paddle.callbacks.Callback):
    """Stops the run (NonFiniteLoss) when a step's loss is NaN or infinite, or the weights are. The loss is checked
    every step; the weights every `check_every` steps, at each epoch's end and after each step where
    `saves_after(global_step)` (a checkpoint follows: it must hold no broken weights), because on some CPUs relu
    maps NaN to 0, so the loss can stay finite while the weights are NaN."""

    def __init__(self, saves_after: Callable[[int], bool] = lambda step: False, check_every: int = CHECK_EVERY) -> None:
        super().__init__()
        self.saves_after = saves_after
        self.check_every = check_every
        self._last_step = None

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        loss, self._last_step = float(logs["loss"]), logs["global_step"]
        if not np.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at step {self._last_step}")
        if (self._last_step + 1) % self.check_every == 0 or self.saves_after(self._last_step):
            self._check_weights()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._check_weights()

    def _check_weights(self):
        if self._last_step is not None:
            check_finite_weights(self.model.network, f"at step {self._last_step}")


class LRStep(paddle.callbacks.Callback):
    """Steps the learning-rate `scheduler` once per batch, or once per epoch (`by_epoch`), for both engines."""

    def __init__(self, scheduler: paddle.optimizer.lr.LRScheduler, by_epoch: bool) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.by_epoch = by_epoch

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        if not self.by_epoch:
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self.by_epoch:
            self.scheduler.step()


class ProgressBars(paddle.callbacks.Callback):
    """The run's and the epoch's progress bars (`utils.progress.TrainingProgress`: terminal or notebook, off when
    not `enabled`). `close()` them when a run stops early: no hook says so."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.bars = None

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        steps = self.params["steps"]
        if self.bars is None:
            self.bars = TrainingProgress(self.params["epochs"], steps, logs["global_step"], self.enabled)
        self.bars.epoch_begin(epoch, logs["global_step"] - epoch * steps)

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        self.bars.step()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.bars.epoch_end()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self.close()

    def close(self) -> None:
        if self.bars is not None:
            self.bars.close()


def with_defaults(callbacks: Iterable, progress: bool) -> List[paddle.callbacks.Callback]:
    """The callbacks of a `RunnerV3.train` call, with what it always does added where missing (as `paddle.Model.fit`
    adds its defaults): the NaN stop first, the progress bars last.

    Raises:
        TypeError: one is not a `paddle.callbacks.Callback`.
    """
    callbacks = checked_callbacks(callbacks, "RunnerV3.train(callbacks=...)")
    if not any(isinstance(callback, StopOnNonFinite) for callback in callbacks):
        callbacks.insert(0, StopOnNonFinite())
    if not any(isinstance(callback, ProgressBars) for callback in callbacks):
        callbacks.append(ProgressBars(progress))
    return callbacks


def run_callbacks(history: EpochHistory, score_name: str, settings: dict, engine_callbacks: Sequence,
                  scalars: Optional[paddle.callbacks.Callback], scheduler: Optional[paddle.optimizer.lr.LRScheduler],
                  by_epoch: bool, checkpointer: paddle.callbacks.Callback, evaluates_after_epoch: bool = False,
                  evaluation: Optional[tuple] = None) -> List[paddle.callbacks.Callback]:
    """The callbacks of a config's run on either engine, in the order they must run: the NaN check first (nothing
    is recorded or saved from a broken step), then the engine's own (`engine_callbacks`: train accuracy, the best
    model), the epoch's row, the VisualDL records, the schedule stepped before the checkpoint that saves it, and
    the progress bars last. `evaluates_after_epoch` and `evaluation`: see `EpochRecorder`."""
    callbacks = [StopOnNonFinite(checkpointer.saves_after), *engine_callbacks,
                 EpochRecorder(history, score_name, settings["train_accuracy"], evaluates_after_epoch, evaluation)]
    if scalars is not None:
        callbacks.append(scalars)
    if scheduler is not None:
        callbacks.append(LRStep(scheduler, by_epoch))
    return callbacks + [checkpointer, ProgressBars(settings["progress"])]


def note_short_run(settings: dict, steps_per_epoch: int) -> None:
    """One line when the run is shorter than `eval_steps` or `log_steps`: as in the course's RunnerV3, it still
    logs its first step and evaluates at its last one."""
    total = settings["epochs"] * steps_per_epoch
    for key, what in (("eval_steps", "evaluates at its last step"), ("log_steps", "logs its first step only")):
        if settings[key] > total:
            logger.info(f"Global.{key}: {settings[key]} is more than the {total} steps of this run "
                        f"({settings['epochs']} epochs of {steps_per_epoch}); it {what}, as the course's RunnerV3 does")


def close_progress(callbacks: Iterable) -> None:
    """Close the progress bars among `callbacks`: a run that stops early (an error, Ctrl-C) ends no epoch."""
    for callback in callbacks:
        if isinstance(callback, ProgressBars):
            callback.close()


def early_stopping_dir(output_dir: str) -> str:
    """Where `paddle.callbacks.EarlyStopping` given to `train` keeps its best model, on both engines."""
    return os.path.join(output_dir, "early_stopping")
