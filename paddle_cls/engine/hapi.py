"""The high-level engine: `paddle.Model(net).prepare(optimizer, loss, metrics).fit(...)`.

Progress bar, per-epoch snapshots (`<output_dir>/hapi/{epoch}.pdparams`, `final`) and VisualDL records are
Paddle's own callbacks (the snapshots written atomically here, and the learning rate recorded too). The learning-rate schedule is
stepped by an explicit `paddle.callbacks.LRScheduler`, so hapi never adds its default one (which steps every
batch, whatever the schedule was written for). Resumable checkpoints are written after each epoch's
evaluation; the training loader is built here with hapi's own `DistributedBatchSampler`, whose shuffle is
seeded by the epoch number, so a resumed run sees the same orders as an uninterrupted one.
"""
import os

import paddle

from ..errors import ConfigError
from ..metrics import score_name
from ..utils.distributed import is_main_process
from ..utils.logger import console_into_log_files, logger
from .callbacks import AtomicModelCheckpoint, HapiEpochRecorder, HapiVisualDL
from .checkpointing import (TrainingInterrupted, find_checkpoint, load_checkpoint, random_states, save_checkpoint,
                            stopped_by_nan)
from .components import amp_level, build_dataset, loader_settings
from .runner import NonFiniteLoss


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
        state = {"next_step": (epoch + 1) * self.steps_per_epoch, "epoch_loss_sum": 0.0, "runner": None,
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
    train_settings = loader_settings(config, "Train")
    train_set = build_dataset(config, "Train")
    sampler = paddle.io.DistributedBatchSampler(train_set, batch_size=train_settings["batch_size"],
                                                shuffle=train_settings["shuffle"], drop_last=train_settings["drop_last"])
    train_loader = paddle.io.DataLoader(train_set, batch_sampler=sampler, num_workers=train_settings["num_workers"])
    # Given the input spec, paddle.Model does not inspect forward's signature, which to_static hides.
    image_spec = paddle.static.InputSpec([None, *settings["image_shape"]], "float32", "image")
    model = paddle.Model(parts.model, inputs=[image_spec])
    level = amp_level(config, paddle.get_device())
    if level and settings["amp_dtype"] != "float16":
        raise ConfigError("Global.amp_dtype: paddle.Model's AMP supports float16 only; use bfloat16 with "
                          "Global.engine: runner")
    model.prepare(parts.optim.optimizer, parts.loss_fn, parts.metric, amp_configs={"level": level} if level else None)
    recorder = HapiEpochRecorder(history, settings["epochs"], paths["best"], score_name(parts.metric),
                                 record_train_accuracy=settings["train_accuracy"])
    start_epoch, save_dir = 0, os.path.join(paths["output_dir"], "hapi")
    if settings["resume"]:
        folder = find_checkpoint(settings["resume"], paths["output_dir"])
        resumed = load_checkpoint(folder, parts.model, parts.optim.optimizer)
        start_epoch = resumed["next_step"] // len(train_loader)
        history.rows = list(resumed["history"])
        recorder.best_score, recorder.epoch_offset = resumed["best_score"], start_epoch
        sampler.set_epoch(start_epoch)
        save_dir = os.path.join(save_dir, f"from_epoch_{start_epoch}")
        logger.info(f"[Train] resuming from {folder} at epoch {start_epoch}")
    checkpointer = _HapiCheckpointer(paths["output_dir"], settings["save_interval"], recorder, stop, len(train_loader))
    recorder.on_epoch_done = checkpointer.epoch_done
    callbacks = [
        recorder,
        paddle.callbacks.LRScheduler(by_step=not parts.optim.by_epoch, by_epoch=parts.optim.by_epoch),
        checkpointer,
        AtomicModelCheckpoint(save_freq=1, save_dir=save_dir),
    ]
    if is_main_process():
        callbacks.append(HapiVisualDL(log_dir=paths["visualdl"]))
    with console_into_log_files():
        try:
            model.fit(
                train_data=train_loader,
                eval_data=build_dataset(config, "Eval") if evaluate else None,
                batch_size=train_settings["batch_size"],
                epochs=settings["epochs"] - start_epoch,
                eval_freq=1,
                log_freq=settings["log_steps"] or 100,
                save_dir=save_dir,
                verbose=2,
                num_workers=train_settings["num_workers"],
                callbacks=callbacks,
            )
        except NonFiniteLoss as exc:
            raise stopped_by_nan(exc, checkpointer.latest) from None
    return recorder.best_score if evaluate else None
