"""What a run does around the training loop, as small callbacks.

The runner's callbacks take the runner as their first argument (see `RunnerV3.train`); `HapiEpochRecorder`
is a `paddle.callbacks.Callback` for `paddle.Model.fit`. Both engines fill the same `EpochHistory`.
"""
import os
import sys
import time

import numpy as np
import paddle

from ..utils.checkpoint import save_atomic
from ..utils.distributed import all_reduce_sum, is_main_process
from ..utils.logger import logger
from .runner import NonFiniteLoss


def _epoch_line(history, epochs):
    row = history.rows[-1]
    parts = [f"train loss: {row['train_loss']:.5f}"]
    for field in ("train_accuracy", "dev_loss", "dev_accuracy"):
        if row[field] is not None:
            parts.append(f"{field.replace('_', ' ')}: {row[field]:.5f}")
    logger.info(f"[Epoch] {row['epoch']}/{epochs}: " + ", ".join(parts) + f", time: {row['seconds']:.1f}s")


class LRStep:
    """Steps the learning-rate schedule once per batch or once per epoch (`by_epoch`), in one place."""

    def __init__(self, scheduler, by_epoch):
        self.scheduler = scheduler
        self.by_epoch = by_epoch

    def on_train_batch_end(self, runner, step, loss):
        if not self.by_epoch:
            self.scheduler.step()

    def on_epoch_end(self, runner, epoch):
        if self.by_epoch:
            self.scheduler.step()


class EpochEvaluation:
    """Evaluates the dev split after every epoch (`Global.eval_per_epoch`), printing and saving as the course does."""

    def __init__(self, dev_loader, save_path):
        self.dev_loader = dev_loader
        self.save_path = save_path

    def on_epoch_end(self, runner, epoch):
        runner.evaluate_and_keep_best(self.dev_loader, runner.global_step - 1, self.save_path)


class RecordEpochs:
    """Adds a row to the `EpochHistory` after each epoch: train loss, the epoch's dev evaluation if any,
    train accuracy when `train_eval_loader` is given (a pass over it, as the PyTorch MNIST tutorial does),
    learning rate and seconds (training plus evaluation)."""

    def __init__(self, history, epochs, train_eval_loader=None):
        self.history = history
        self.epochs = epochs
        self.train_eval_loader = train_eval_loader

    def on_epoch_begin(self, runner, epoch):
        self._start = time.time()
        self._evaluations = len(runner.dev_scores)

    def on_epoch_end(self, runner, epoch):
        evaluated = len(runner.dev_scores) > self._evaluations
        train_accuracy = None
        if self.train_eval_loader is not None:
            train_accuracy = runner.evaluate(self.train_eval_loader)[0]
            runner.model.train()
        self.history.add(epoch=epoch, train_loss=runner.train_epoch_losses[-1], train_accuracy=train_accuracy,
                         dev_loss=runner.dev_losses[-1][1] if evaluated else None,
                         dev_accuracy=runner.dev_scores[-1] if evaluated else None,
                         lr=runner.optimizer.get_lr(), seconds=time.time() - self._start)
        _epoch_line(self.history, self.epochs)


class TerminalProgress:
    """A progress bar for the runner engine on a terminal; the course's lines print above it unchanged."""

    def __init__(self, steps_per_epoch, width=30):
        self.steps = steps_per_epoch
        self.width = width
        self.every = max(1, steps_per_epoch // 200)

    def on_epoch_begin(self, runner, epoch):
        self._epoch = epoch
        self._start = time.time()

    def on_train_batch_end(self, runner, step, loss):
        done = step % self.steps + 1
        if done % self.every and done != self.steps:
            return
        filled = self.width * done // self.steps
        rate = done / max(time.time() - self._start, 1e-9)
        sys.stdout.write(f"\repoch {self._epoch} [{'=' * filled}{'.' * (self.width - filled)}] "
                         f"{done}/{self.steps} {rate:.1f} steps/s")
        if done == self.steps:
            sys.stdout.write("\n")
        sys.stdout.flush()


class VisualDLRecorder:
    """Writes VisualDL scalars for the runner engine, with the tags hapi's VisualDL callback uses:
    `train/loss` and `train/lr` every `log_steps` steps, `eval/loss` and `eval/<metric name>` at each evaluation."""

    def __init__(self, logdir, log_steps, metric_name="Accuracy", already_written=0):
        from visualdl import LogWriter

        self.writer = LogWriter(logdir=logdir)
        self.log_steps = log_steps or 1
        self.score_tag = f"eval/{metric_name}"
        self._written_evaluations = already_written

    def _write_new_evaluations(self, runner):
        for (step, loss), score in list(zip(runner.dev_losses, runner.dev_scores))[self._written_evaluations:]:
            self.writer.add_scalar(tag="eval/loss", step=step, value=loss)
            self.writer.add_scalar(tag=self.score_tag, step=step, value=score)
        self._written_evaluations = len(runner.dev_scores)

    def on_train_batch_end(self, runner, step, loss):
        if step % self.log_steps == 0:
            self.writer.add_scalar(tag="train/loss", step=step, value=loss.item())
            self.writer.add_scalar(tag="train/lr", step=step, value=runner.optimizer.get_lr())
        self._write_new_evaluations(runner)

    def on_epoch_end(self, runner, epoch):
        self._write_new_evaluations(runner)

    def on_train_end(self, runner):
        self._write_new_evaluations(runner)
        self.writer.close()


class HapiEpochRecorder(paddle.callbacks.Callback):
    """For `paddle.Model.fit`: the same per-epoch history as the runner engine, the course's dev lines and a
    best model saved atomically (hapi's own `ModelCheckpoint` keeps per-epoch and final files, never a best).

    hapi calls `on_epoch_end` before the epoch's evaluation, so a row is completed at `on_eval_end` (or when
    the next epoch starts without one). Losses are the mean of the batch losses, as RunnerV3 reports them;
    train accuracy is hapi's running accuracy over the epoch.
    """

    def __init__(self, history, epochs, best_path, metric_name, record_train_accuracy=False):
        super().__init__()
        self.history = history
        self.epochs = epochs
        self.best_path = best_path
        self.metric_name = metric_name
        self.record_train_accuracy = record_train_accuracy
        self.best_score = 0
        self.epoch_offset = 0  # epochs done before a resume: hapi counts from 0 again
        self.on_epoch_done = None  # called with the epoch once its row is complete (checkpointing)
        self._pending = None

    def _commit(self):
        if self._pending is not None:
            self._pending["seconds"] = time.time() - self._start
            self.history.add(**self._pending)
            epoch = self._pending["epoch"]
            self._pending = None
            _epoch_line(self.history, self.epochs)
            if self.on_epoch_done is not None:
                self.on_epoch_done(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self._commit()
        self._start = time.time()
        self._train_losses = []

    def on_train_batch_end(self, step, logs=None):
        loss = float(np.mean(logs["loss"]))  # hapi has already read it back from the device
        if not np.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at step {step} of epoch "
                                f"{len(self.history.rows) + (self._pending is not None)}")
        self._train_losses.append(loss)

    def on_epoch_end(self, epoch, logs=None):
        accuracy = logs.get(self.metric_name) if self.record_train_accuracy else None
        self._pending = dict(epoch=epoch + self.epoch_offset, train_loss=float(np.mean(self._train_losses)),
                             train_accuracy=float(accuracy) if accuracy is not None else None,
                             lr=self.model._optimizer.get_lr())

    def on_eval_begin(self, logs=None):
        self._eval_losses = []

    def on_eval_batch_end(self, step, logs=None):
        self._eval_losses.append(float(np.mean(logs["loss"])))

    def on_eval_end(self, logs=None):
        if self._pending is None:  # an evaluate() outside fit
            return
        # hapi gathers the metric over processes but leaves each process its own batch losses: add those up.
        totals = all_reduce_sum(paddle.to_tensor([sum(self._eval_losses), len(self._eval_losses)], dtype="float64"))
        dev_loss, dev_score = float(totals[0] / totals[1]), float(logs[self.metric_name])
        logger.info(f"[Evaluate]  dev score: {dev_score:.5f}, dev loss: {dev_loss:.5f}")
        if dev_score > self.best_score:
            if is_main_process():
                save_atomic(self.model.network.state_dict(), self.best_path)
            logger.info(f"[Evaluate] best accuracy performence has been updated: "
                        f"{self.best_score:.5f} --> {dev_score:.5f}")
            self.best_score = dev_score
        self._pending.update(dev_loss=dev_loss, dev_accuracy=dev_score)
        self._commit()

    def on_train_end(self, logs=None):
        self._commit()


class HapiVisualDL(paddle.callbacks.VisualDL):
    """Paddle's VisualDL callback, plus the learning rate (`train/lr`), which it does not record."""

    def on_train_batch_end(self, step, logs=None):
        super().on_train_batch_end(step, logs)
        if hasattr(self, "writer"):
            self.writer.add_scalar(tag="train/lr", step=self.train_step, value=self.model._optimizer.get_lr())


class AtomicModelCheckpoint(paddle.callbacks.ModelCheckpoint):
    """hapi's own per-epoch snapshots (`{epoch}` and `final`, .pdparams and .pdopt, as `paddle.Model.save`
    writes them), with each file written atomically. Passed to `fit`, it replaces the default one."""

    def _write(self, name):
        path = os.path.join(self.save_dir, name)
        logger.info(f"save checkpoint at {os.path.abspath(path)}")
        save_atomic(self.model.network.state_dict(), path + ".pdparams")
        save_atomic(self.model._optimizer.state_dict(), path + ".pdopt")

    def on_epoch_end(self, epoch, logs=None):
        if self._is_save() and self.epoch % self.save_freq == 0:
            self._write(str(epoch))

    def on_train_end(self, logs=None):
        if self._is_save():
            self._write("final")
