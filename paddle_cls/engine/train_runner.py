"""The runner engine's driver: a config's run on the course's RunnerV3, with the callbacks that make it a
whole run (learning-rate steps, per-epoch evaluation and records, VisualDL, checkpoints)."""
from __future__ import annotations

import os
import time
from typing import Callable, Optional, Tuple

import paddle

from ..data.loader import build_loader
from ..errors import NonFiniteLoss
from ..utils.distributed import is_main_process, world_size
from ..utils.history import EpochHistory
from ..utils.logger import logger
from ..utils.plot import plot_training_loss_acc
from ..utils.precision import amp_level, decorate_o2
from .recording import epoch_line, note_short_run, scalar_recorder
from .checkpointing import Checkpointer, find_checkpoint, resume_run, stopped_by_nan
from .components import Components
from .runner import CHECK_EVERY, RunnerV3
from .stop_request import StopRequest


class LRStep:
    """Steps the learning-rate schedule once per batch or once per epoch (`by_epoch`), in one place."""

    def __init__(self, scheduler, by_epoch):
        self.scheduler = scheduler
        self.by_epoch = by_epoch

    def on_train_batch_end(self, runner: RunnerV3, step: int, loss: paddle.Tensor) -> None:
        if not self.by_epoch:
            self.scheduler.step()

    def on_epoch_end(self, runner: RunnerV3, epoch: int) -> None:
        if self.by_epoch:
            self.scheduler.step()


class EpochEvaluation:
    """Evaluates the dev split after every epoch (`Global.eval_per_epoch`), printing and saving as the course does."""

    def __init__(self, dev_loader, save_path):
        self.dev_loader = dev_loader
        self.save_path = save_path

    def on_epoch_end(self, runner: RunnerV3, epoch: int) -> None:
        runner.evaluate_and_keep_best(self.dev_loader, runner.global_step - 1, self.save_path)


class RecordEpochs:
    """Adds a row to the `EpochHistory` after each epoch: train loss, the epoch's dev evaluation if any,
    train accuracy when `train_eval_loader` is given (a pass over it, as the PyTorch MNIST tutorial does),
    learning rate and seconds (training plus evaluation)."""

    def __init__(self, history, epochs, train_eval_loader=None):
        self.history = history
        self.epochs = epochs
        self.train_eval_loader = train_eval_loader

    def on_epoch_begin(self, runner: RunnerV3, epoch: int) -> None:
        self._start = time.time()
        self._evaluations = len(runner.dev_scores)

    def on_epoch_end(self, runner: RunnerV3, epoch: int) -> None:
        evaluated = len(runner.dev_scores) > self._evaluations
        train_accuracy = None
        if self.train_eval_loader is not None:
            train_accuracy = runner.evaluate(self.train_eval_loader)[0]
            runner.model.train()
        self.history.add(epoch=epoch, train_loss=runner.train_epoch_losses[-1], train_accuracy=train_accuracy,
                         dev_loss=runner.dev_losses[-1][1] if evaluated else None,
                         dev_accuracy=runner.dev_scores[-1] if evaluated else None,
                         lr=runner.optimizer.get_lr(), seconds=time.time() - self._start)
        epoch_line(self.history, self.epochs)


class RunnerScalars:
    """Feeds a `ScalarRecorder` from RunnerV3: step losses are kept on the device and read back in batches
    (no wait on the device per step); evaluations are taken from the runner's dev history. Before a checkpoint
    (at each epoch's end, and after each step where `saves_after(step)`) every record so far is put into the
    file, so that a run resumed from that checkpoint continues the records without a gap."""

    def __init__(self, recorder, already_written=0, saves_after=lambda step: False):
        self.recorder = recorder
        self.saves_after = saves_after
        self._written_evaluations = already_written
        self._pending = []

    def _write(self, runner):
        if self._pending:
            values = paddle.stack([loss for _, loss, _ in self._pending]).reshape([-1]).numpy().tolist()
            for (step, _, lr), value in zip(self._pending, values):
                self.recorder.train_step(step, value, lr)
            self._pending = []
        for (step, loss), score in list(zip(runner.dev_losses, runner.dev_scores))[self._written_evaluations:]:
            self.recorder.evaluation(step, loss, score)
        self._written_evaluations = len(runner.dev_scores)

    def on_train_batch_end(self, runner: RunnerV3, step: int, loss: paddle.Tensor) -> None:
        if step % self.recorder.every == 0:
            self._pending.append((step, loss, runner.optimizer.get_lr()))
        if self.saves_after(step):
            self._write(runner)
            self.recorder.flush()
        elif len(self._pending) >= CHECK_EVERY or len(runner.dev_scores) > self._written_evaluations:
            self._write(runner)

    def on_epoch_end(self, runner: RunnerV3, epoch: int) -> None:
        self._write(runner)
        self.recorder.flush()

    def on_train_end(self, runner: RunnerV3) -> None:
        self._write(runner)
        self.recorder.close()


def checkpoint_may_follow(settings: dict, stop: StopRequest) -> Callable[[int], bool]:
    """`saves_after(step)` for `RunnerScalars`: whether `Checkpointer` may save after this step within an epoch
    (a step interval is due, or Ctrl-C was pressed), asked before it runs."""
    every_steps = settings["save_interval"] if settings["save_unit"] == "step" else None
    return lambda step: stop.requested or bool(every_steps and (step + 1) % every_steps == 0)


def training_model(model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, level: Optional[str],
                   dtype: str) -> Tuple[paddle.nn.Layer, paddle.optimizer.Optimizer]:
    """The model and optimizer to train at AMP `level` (None, 'O1' or 'O2') in `dtype`: at O2 the bare model
    is decorated (`utils.precision.decorate_o2`) before a data-parallel run wraps it in `paddle.DataParallel`, the order
    Paddle requires (and PaddleClas follows).

    Returns:
        `(model, optimizer)`: the same objects, or the model wrapped.
    """
    if level == "O2":
        model, optimizer = decorate_o2(model, optimizer, dtype)
    return (paddle.DataParallel(model) if world_size() > 1 else model), optimizer


def train_runner(config: dict, parts: Components, history: EpochHistory, paths: dict,
                 stop: StopRequest) -> Optional[float]:
    """Train with the course's RunnerV3; returns the best dev score (None without evaluation)."""
    settings = config["Global"]
    level = amp_level(config, paddle.get_device())
    model, optimizer = training_model(parts.model, parts.optim.optimizer, level, settings["amp_dtype"])
    runner = RunnerV3(model, optimizer, parts.loss_fn, parts.metric, amp_level=level, amp_dtype=settings["amp_dtype"])
    train_loader = build_loader(config, "Train")
    note_short_run(settings, len(train_loader))
    evaluate = settings["eval_steps"] or settings["eval_per_epoch"]
    dev_loader = build_loader(config, "Eval") if evaluate else None
    resumed = None
    if settings["resume"]:
        resumed = resume_run(settings["resume"], paths["output_dir"], parts.model, parts.optim.optimizer, "runner",
                             history)
        runner.set_history_state(resumed["runner"])
        if hasattr(train_loader.batch_sampler, "set_epoch"):  # a data-parallel sampler shuffles by epoch number
            train_loader.batch_sampler.set_epoch(resumed["next_step"] // len(train_loader))
        logger.info(f"[Train] resuming from {resumed['folder']} at step {resumed['next_step']}")
    callbacks = [EpochEvaluation(dev_loader, paths["best"])] if settings["eval_per_epoch"] else []
    train_eval_loader = None
    if settings["train_accuracy"]:
        train_eval_loader = build_loader(config, "Train", evaluation=True) if world_size() > 1 else train_loader
    callbacks.append(RecordEpochs(history, settings["epochs"], train_eval_loader))
    scalars = scalar_recorder(settings, paths, len(train_loader), parts.metric,
                              resumed["next_step"] if resumed else None)
    if scalars is not None:
        callbacks.append(RunnerScalars(scalars, already_written=len(runner.dev_scores),
                                       saves_after=checkpoint_may_follow(settings, stop)))
    if parts.optim.scheduler is not None:
        callbacks.append(LRStep(parts.optim.scheduler, parts.optim.by_epoch))
    checkpointer = Checkpointer(paths["output_dir"], settings["save_interval"], settings["save_unit"], history, stop,
                                resumed)
    callbacks.append(checkpointer)
    try:
        runner.train(train_loader, dev_loader, num_epochs=settings["epochs"], log_steps=settings["log_steps"],
                     eval_steps=settings["eval_steps"], save_path=paths["best"], callbacks=callbacks,
                     start_step=resumed["next_step"] if resumed else 0,
                     epoch_loss_sum=resumed["epoch_loss_sum"] if resumed else 0.0, progress=settings["progress"])
    except NonFiniteLoss as exc:
        last = checkpointer.latest or (find_checkpoint("auto", paths["output_dir"]) if resumed else None)
        raise stopped_by_nan(exc, last) from None
    if is_main_process():
        plot_training_loss_acc(runner, os.path.join(paths["output_dir"], "training_loss_acc.png"))
    return runner.best_score if runner.dev_scores else None
