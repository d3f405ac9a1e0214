"""The high-level engine: `paddle.Model(net).prepare(optimizer, loss, metrics).fit(...)`.

Progress bar, per-epoch checkpoints (`<output_dir>/hapi/{epoch}.pdparams`, `final`) and VisualDL records are
Paddle's own callbacks (the VisualDL one also records the learning rate here). The learning-rate schedule is stepped by an explicit `paddle.callbacks.LRScheduler`,
so hapi never adds its default one (which steps every batch, whatever the schedule was written for).
"""
import os

import paddle

from ..metrics import score_name
from ..utils.logger import console_into_log_files, logger
from .callbacks import HapiEpochRecorder, HapiVisualDL
from .components import build_dataset, loader_settings


def train_hapi(config, parts, history, paths, stop):
    """Fit with `paddle.Model`; returns the best dev score (None without evaluation)."""
    settings = config["Global"]
    evaluate = bool(settings["eval_steps"] or settings["eval_per_epoch"])
    if settings["eval_steps"]:
        logger.info("Global.eval_steps: the hapi engine evaluates once per epoch (fit's eval_freq=1)")
    train_settings = loader_settings(config, "Train")
    model = paddle.Model(parts.model)
    model.prepare(parts.optim.optimizer, parts.loss_fn, parts.metric)
    metric_name = score_name(parts.metric)
    recorder = HapiEpochRecorder(history, settings["epochs"], paths["best"], metric_name,
                                 record_train_accuracy=settings["train_accuracy"])
    callbacks = [
        recorder,
        paddle.callbacks.LRScheduler(by_step=not parts.optim.by_epoch, by_epoch=parts.optim.by_epoch),
        HapiVisualDL(log_dir=paths["visualdl"]),
    ]
    with console_into_log_files():
        model.fit(
            train_data=build_dataset(config, "Train"),
            eval_data=build_dataset(config, "Eval") if evaluate else None,
            batch_size=train_settings["batch_size"],
            epochs=settings["epochs"],
            eval_freq=1,
            log_freq=settings["log_steps"] or 100,
            save_dir=os.path.join(paths["output_dir"], "hapi"),
            verbose=2,
            drop_last=train_settings["drop_last"],
            shuffle=train_settings["shuffle"],
            num_workers=train_settings["num_workers"],
            callbacks=callbacks,
        )
    return recorder.best_score if evaluate else None
