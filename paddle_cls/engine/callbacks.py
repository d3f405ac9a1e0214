"""What a run does around the training loop, as small callbacks.

The runner's callbacks take the runner as their first argument (see `RunnerV3.train`); `HapiEpochRecorder`
is a `paddle.callbacks.Callback` for `paddle.Model.fit`. Both engines fill the same `EpochHistory`.
"""
import os
import time

import numpy as np
import paddle

from ..errors import NonFiniteLoss
from ..utils.checkpoint import check_finite_weights, save_atomic, save_weights
from ..metrics import score_name
from ..utils.distributed import all_reduce_sum, is_main_process
from ..utils.logger import logger
from ..utils.progress import TrainingProgress
from .runner import CHECK_EVERY, report_evaluation


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


def note_short_run(settings, steps_per_epoch):
    """One line when the run is shorter than `eval_steps` or `log_steps`: as in the course's RunnerV3, it still
    logs its first step and evaluates at its last one."""
    total = settings["epochs"] * steps_per_epoch
    for key, what in (("eval_steps", "evaluates at its last step"), ("log_steps", "logs its first step only")):
        if settings[key] > total:
            logger.info(f"Global.{key}: {settings[key]} is more than the {total} steps of this run "
                        f"({settings['epochs']} epochs of {steps_per_epoch}); it {what}, as the course's RunnerV3 does")


def scalar_recorder(settings, paths, steps_per_epoch, metric):
    """The VisualDL recorder of rank 0 (None elsewhere), every `Global.vdl_steps` steps; by default every step
    of a run of up to 1,000 steps, and about 1,000 points over a longer one."""
    if not is_main_process():
        return None
    every = settings["vdl_steps"] or max(1, settings["epochs"] * steps_per_epoch // 1000)
    return ScalarRecorder(paths["visualdl"], every, score_name(metric))


class ScalarRecorder:
    """The VisualDL records of a run, with the same tags on both engines: `train/loss` and `train/lr` every
    `every` steps (`Global.vdl_steps`), `eval/loss` and `eval/<metric name>` at each evaluation."""

    def __init__(self, logdir, every, metric_name="Accuracy"):
        from visualdl import LogWriter

        self.writer = LogWriter(logdir=logdir)
        self.every = every
        self.score_tag = f"eval/{metric_name}"

    def train_step(self, step, loss, lr):
        self.writer.add_scalar(tag="train/loss", step=step, value=loss)
        self.writer.add_scalar(tag="train/lr", step=step, value=lr)

    def evaluation(self, step, loss, score):
        self.writer.add_scalar(tag="eval/loss", step=step, value=loss)
        self.writer.add_scalar(tag=self.score_tag, step=step, value=score)

    def close(self):
        self.writer.close()


class RunnerScalars:
    """Feeds a `ScalarRecorder` from RunnerV3: step losses are kept on the device and read back in batches
    (no wait on the device per step); evaluations are taken from the runner's dev history."""

    def __init__(self, recorder, already_written=0):
        self.recorder = recorder
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

    def on_train_batch_end(self, runner, step, loss):
        if step % self.recorder.every == 0:
            self._pending.append((step, loss, runner.optimizer.get_lr()))
        if len(self._pending) >= CHECK_EVERY or len(runner.dev_scores) > self._written_evaluations:
            self._write(runner)

    def on_epoch_end(self, runner, epoch):
        self._write(runner)

    def on_train_end(self, runner):
        self._write(runner)
        self.recorder.close()


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
            _epoch_line(self.history, self.epochs)
            if self.on_epoch_done is not None:
                self.on_epoch_done(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self._commit()
        self._start = time.time()
        self._train_losses = []
        self._epoch = epoch + self.epoch_offset

    def _global_step(self, step):
        return self._epoch * self.steps_per_epoch + step

    def on_train_batch_end(self, step, logs=None):
        loss = float(np.mean(logs["loss"]))  # hapi has already read it back from the device
        global_step = self._global_step(step)
        if not np.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at step {global_step}")
        if (step + 1) % CHECK_EVERY == 0:
            check_finite_weights(self.model.network, f"at step {global_step}")
        self._train_losses.append(loss)
        if self.scalars is not None and global_step % self.scalars.every == 0:
            self.scalars.train_step(global_step, loss, self.model._optimizer.get_lr())

    def on_epoch_end(self, epoch, logs=None):
        check_finite_weights(self.model.network, f"at step {self._global_step(self.steps_per_epoch - 1)}")
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
        self.best_score = report_evaluation(self.model.network, dev_score, dev_loss, self.best_score, self.best_path)
        if self.scalars is not None:
            self.scalars.evaluation(self._global_step(self.steps_per_epoch - 1), dev_loss, dev_score)
        self._pending.update(dev_loss=dev_loss, dev_accuracy=dev_score)
        self._commit()

    def on_train_end(self, logs=None):
        self._commit()
        if self.scalars is not None:
            self.scalars.close()


class HapiProgress(paddle.callbacks.Callback):
    """The same progress bars as RunnerV3's (`utils.progress.TrainingProgress`), for `paddle.Model.fit`."""

    def __init__(self, epochs, steps_per_epoch, start_epoch=0, enabled=True):
        super().__init__()
        self.bars = TrainingProgress(epochs, steps_per_epoch, start_epoch * steps_per_epoch, enabled)
        self.start_epoch = start_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.bars.epoch_begin(epoch + self.start_epoch)

    def on_train_batch_end(self, step, logs=None):
        self.bars.step()

    def on_epoch_end(self, epoch, logs=None):
        self.bars.epoch_end()

    def on_train_end(self, logs=None):
        self.bars.close()


class AtomicModelCheckpoint(paddle.callbacks.ModelCheckpoint):
    """hapi's own per-epoch snapshots (`{epoch}` and `final`, .pdparams and .pdopt, as `paddle.Model.save`
    writes them), with each file written atomically. Passed to `fit`, it replaces the default one."""

    def _write(self, name):
        path = os.path.join(self.save_dir, name)
        logger.info(f"save checkpoint at {os.path.abspath(path)}")
        save_weights(self.model.network, path + ".pdparams")
        save_atomic(self.model._optimizer.state_dict(), path + ".pdopt")

    def on_epoch_end(self, epoch, logs=None):
        if self._is_save() and self.epoch % self.save_freq == 0:
            self._write(str(epoch))

    def on_train_end(self, logs=None):
        if self._is_save():
            self._write("final")
