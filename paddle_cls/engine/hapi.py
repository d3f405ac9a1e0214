"""The high-level engine: `paddle.Model(net).prepare(optimizer, loss, metrics).fit(...)`.

The loaders are the runner engine's (`components.build_loader`: the same batch sizes, workers and orders);
in a data-parallel run the evaluation splits are shared out by `DistributedBatchSampler`, whose padding
hapi's own gathering removes, so every sample still counts once. Paddle's progress lines and per-epoch
snapshots (`<output_dir>/hapi/{epoch}.pdparams`, `final`, written atomically here) are hapi's own; the
progress bars, VisualDL records, best model, NaN stop and checkpoints are the same as the runner engine's.
The learning-rate schedule is stepped by an explicit `paddle.callbacks.LRScheduler`, so hapi never adds its
default one (which steps every batch, whatever the schedule was written for). Resumable checkpoints are
written after each epoch's evaluation.
"""
import os

import paddle

from ..errors import ConfigError, NonFiniteLoss, TrainingInterrupted
from ..metrics import score_name
from ..utils.logger import console_into_log_files, logger
from .callbacks import AtomicModelCheckpoint, HapiEpochRecorder, HapiProgress, note_short_run, scalar_recorder
from .checkpointing import random_states, resume_run, save_checkpoint, stopped_by_nan
from .components import amp_level, build_loader


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
        state = {"engine": "hapi", "next_step": (epoch + 1) * self.steps_per_epoch, "epoch_loss_sum": 0.0, "runner": None,
                 "best_score": self.recorder.best_score, "history": list(self.recorder.history.rows),
                 "random": random_states()}
        self.latest = save_checkpoint(self.output_dir, self.model.network, self.model._optimizer, state) or self.latest
        if self.latest:
            logger.info(f"[Checkpoint] epoch {epoch}: saved {self.latest}")

    def on_train_batch_end(self, step, logs=None):
        if self.stop.requested:
            where = f"the last checkpoint is {self.latest}" if self.latest else "no checkpoint was saved yet"
            raise TrainingInterrupted(f"training stopped by Ctrl-C in the middle of an epoch; {where}. "
                                      "Continue with -o Global.resume=auto (from the last completed epoch)")


def train_hapi(config, parts, history, paths, stop):
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
    level = amp_level(config, paddle.get_device())
    if level and settings["amp_dtype"] != "float16":
        raise ConfigError("Global.amp_dtype: paddle.Model's AMP supports float16 only; use bfloat16 with "
                          "Global.engine: runner")
    model.prepare(parts.optim.optimizer, parts.loss_fn, parts.metric, amp_configs={"level": level} if level else None)
    recorder = HapiEpochRecorder(history, settings["epochs"], paths["best"], score_name(parts.metric),
                                 len(train_loader), record_train_accuracy=settings["train_accuracy"],
                                 scalars=scalar_recorder(settings, paths, len(train_loader), parts.metric))
    start_epoch, save_dir = 0, os.path.join(paths["output_dir"], "hapi")
    if settings["resume"]:
        resumed = resume_run(settings["resume"], paths["output_dir"], parts.model, parts.optim.optimizer, "hapi",
                             history)
        start_epoch = resumed["next_step"] // len(train_loader)
        recorder.best_score, recorder.epoch_offset = resumed["best_score"], start_epoch
        if hasattr(train_loader.batch_sampler, "set_epoch"):  # a data-parallel sampler shuffles by epoch number
            train_loader.batch_sampler.set_epoch(start_epoch)
        save_dir = os.path.join(save_dir, f"from_epoch_{start_epoch}")
        logger.info(f"[Train] resuming from {resumed['folder']} at epoch {start_epoch}")
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
