"""The callbacks both engines train with, on Paddle's protocol (`paddle.callbacks.Callback`).

RunnerV3 calls its callbacks as `paddle.Model.fit` does, and on the hapi engine `hapi.HapiEvents` passes fit's
calls on in the same form, so that one callback serves both engines. What a callback gets:

- `set_model(model)`: the `RunnerV3` or the `paddle.Model`; both have `network`, `stop_training` (set it to stop
  after the current epoch and its evaluation) and `save(path)` (writes `path.pdparams` and `path.pdopt`).
- `set_params(params)`: `epochs` (of the whole run, also when resumed), `steps` (per epoch), `verbose`, `metrics`.
- `on_train_begin(logs)`, `on_train_end(logs)`; `on_epoch_begin(epoch, logs)` with `logs["global_step"]`, the first
  step this epoch runs (epochs and steps count from the start of the run, also after a resume).
- `on_train_batch_begin(step, logs)`, `on_train_batch_end(step, logs)`: `step` within the epoch; `logs` has
  `global_step`, and at the end `loss` (the batch's mean loss: a float, or on RunnerV3 a 0-d float32 tensor,
  kept on the device so that a step never waits for it; `float()` reads it) and `lr` (the rate this step used).
- `on_epoch_end(epoch, logs)`: `loss` (the epoch's mean training loss, a float), `lr`, `global_step` (the next
  step), and the score under the metric's name when the engine measured train accuracy.
- `on_eval_begin(logs)`, `on_eval_end(logs)` around each evaluation during training: `loss` (the mean over
  every batch of every process) and the score under the metric's name (`metrics.score_name`), as floats, and
  `global_step` (the step it follows). On RunnerV3 they may come mid-epoch (`Global.eval_steps`); on hapi they
  come after `on_epoch_end`.

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


def loss_values(losses: Sequence) -> np.ndarray:
    """Step losses as given in `logs["loss"]` (floats, or 0-d tensors read back from the device at once)."""
    if losses and isinstance(losses[0], paddle.Tensor):
        return paddle.stack(list(losses)).reshape([-1]).astype("float32").numpy()
    return np.asarray(losses, dtype=np.float64)


def user_callbacks(callbacks: Iterable, save_dir: str) -> List[paddle.callbacks.Callback]:
    """The callbacks a user gives `train(config, callbacks=[...])`, checked; `paddle.callbacks.EarlyStopping` gets
    `save_dir` for its best model (`paddle.Model.fit` sets it from its own save_dir the same way).

    Raises:
        TypeError: one is not a `paddle.callbacks.Callback`.
    """
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, paddle.callbacks.Callback):
            raise TypeError(f"train(callbacks=...): {callback!r} is not a paddle.callbacks.Callback; subclass it and "
                            "define the hooks you need (on_epoch_end(epoch, logs), ...)")
        if isinstance(callback, paddle.callbacks.EarlyStopping) and callback.save_dir is None:
            callback.save_dir = save_dir
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

    `evaluates_after_epoch`: the engine evaluates after `on_epoch_end` (hapi), so the row waits for that.
    """

    def __init__(self, history: EpochHistory, score_name: str, train_accuracy: bool = False,
                 evaluates_after_epoch: bool = False) -> None:
        super().__init__()
        self.history = history
        self.score_name = score_name
        self.train_accuracy = train_accuracy
        self.evaluates_after_epoch = evaluates_after_epoch
        self._row = None
        self._evaluation = None

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._start = time.time()
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
    """Stops the run (NonFiniteLoss) when a step's loss is NaN or infinite, or the weights are: losses given as
    floats are checked at once, tensors every `CHECK_EVERY` steps, at each epoch's end and after each step where
    `saves_after(global_step)` (a checkpoint follows: it must hold no broken step), read back together; the
    weights as often (on some CPUs relu maps NaN to 0, so the loss can stay finite while they are NaN)."""

    def __init__(self, saves_after: Callable[[int], bool] = lambda step: False, check_every: int = CHECK_EVERY) -> None:
        super().__init__()
        self.saves_after = saves_after
        self.check_every = check_every
        self._pending = []

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        self._pending.append((logs["global_step"], logs["loss"]))
        if len(self._pending) >= self.check_every or self.saves_after(logs["global_step"]):
            self._check()
        elif not isinstance(logs["loss"], paddle.Tensor):
            self._check(weights=False)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._check()

    def _check(self, weights=True):
        if self._pending:
            steps = [step for step, _ in self._pending]
            values = loss_values([loss for _, loss in self._pending])
            self._pending = []
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                raise NonFiniteLoss(f"the training loss became {values[bad[0]]} at step {steps[bad[0]]}")
            self._last_step = steps[-1]
        if weights and hasattr(self, "_last_step"):
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
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, paddle.callbacks.Callback):
            raise TypeError(f"RunnerV3.train: callback {callback!r} is not a paddle.callbacks.Callback")
    if not any(isinstance(callback, StopOnNonFinite) for callback in callbacks):
        callbacks.insert(0, StopOnNonFinite())
    if not any(isinstance(callback, ProgressBars) for callback in callbacks):
        callbacks.append(ProgressBars(progress))
    return callbacks


def run_callbacks(history: EpochHistory, score_name: str, settings: dict, engine_callbacks: Sequence,
                  scalars: Optional[paddle.callbacks.Callback], scheduler: Optional[paddle.optimizer.lr.LRScheduler],
                  by_epoch: bool, checkpointer: paddle.callbacks.Callback, evaluates_after_epoch: bool = False
                  ) -> List[paddle.callbacks.Callback]:
    """The callbacks of a config's run on either engine, in the order they must run: the NaN check first (nothing
    is recorded or saved from a broken step), then the engine's own (`engine_callbacks`: the per-epoch evaluation,
    the best model), the epoch's row, the VisualDL records, the schedule stepped before the checkpoint that saves
    it, and the progress bars last."""
    callbacks = [StopOnNonFinite(checkpointer.saves_after), *engine_callbacks,
                 EpochRecorder(history, score_name, settings["train_accuracy"], evaluates_after_epoch)]
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
