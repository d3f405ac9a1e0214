"""The runner engine's driver: a config's run on the course's RunnerV3, with the callbacks that make it a
whole run (`engine.callbacks`: the per-epoch records, VisualDL, the NaN stop, the schedule, checkpoints, progress),
the runner's own (train accuracy) and the user's."""
from __future__ import annotations

import os
from typing import Iterable, Optional, Tuple

import paddle

from ..data.loader import build_loader
from ..errors import NonFiniteLoss
from ..metrics import score_name
from ..utils.distributed import is_main_process, world_size
from ..utils.history import EpochHistory
from ..utils.logger import logger
from ..utils.plot import plot_training_loss_acc
from ..utils.precision import amp_level, decorate_o2
from .callbacks import note_short_run, run_callbacks
from .checkpointer import Checkpointer
from .checkpointing import find_checkpoint, restore_scaler, resume_run, scaler_state, stopped_by_nan
from .components import Components
from .runner import RunnerV3
from .stop_request import StopRequest
from .visualdl_records import VisualDLRecords, scalar_recorder


class TrainAccuracy(paddle.callbacks.Callback):
    """Measures train accuracy after each epoch (`Global.train_accuracy`) by a pass over `loader` in eval mode, as
    the PyTorch MNIST tutorial does, and puts it in the epoch's logs under the metric's name."""

    def __init__(self, loader: Iterable, score_name: str) -> None:
        super().__init__()
        self.loader = loader
        self.score_name = score_name

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs[self.score_name] = self.model.evaluate(self.loader)[0]
        self.model.network.train()


def runner_state(runner: RunnerV3, mid_epoch: bool) -> dict:
    """The runner engine's part of a checkpoint (`Checkpointer`): its histories, best score and float16 loss scaler
    (None without one), and the loss sum of the epoch a mid-epoch checkpoint stops in."""
    history = {"train_step_losses": list(runner.train_step_losses),
               "train_epoch_losses": list(runner.train_epoch_losses), "dev_losses": list(runner.dev_losses),
               "dev_scores": list(runner.dev_scores),
               "best_score": runner.best_score, "grad_scaler": scaler_state(runner.scaler)}
    return {"engine": "runner", "epoch_loss_sum": runner.epoch_loss_sum if mid_epoch else 0.0, "runner": history}


def epoch_evaluation(runner: RunnerV3, next_step: int, steps_per_epoch: int) -> Optional[Tuple[float, float]]:
    """`(loss, score)` of the last evaluation in the epoch a run resumes inside of at `next_step` (None when it
    resumes at an epoch's start or the epoch had none): that epoch's history row still gets it."""
    epoch_start = next_step - next_step % steps_per_epoch
    if next_step == epoch_start or not runner.dev_losses or runner.dev_losses[-1][0] < epoch_start:
        return None
    return runner.dev_losses[-1][1], runner.dev_scores[-1]


def restore_runner_state(runner: RunnerV3, state: dict) -> None:
    """Set what `runner_state` saved back on a runner (when resuming)."""
    runner.train_step_losses = [tuple(item) for item in state["train_step_losses"]]
    runner.train_epoch_losses = list(state["train_epoch_losses"])
    runner.dev_losses = [tuple(item) for item in state["dev_losses"]]
    runner.dev_scores = list(state["dev_scores"])
    runner.best_score = state["best_score"]
    if state.get("grad_scaler") and runner.scaler is not None:  # None when saved without float16 AMP
        restore_scaler(runner.scaler, state["grad_scaler"])


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


def train_runner(config: dict, parts: Components, history: EpochHistory, paths: dict, stop: StopRequest,
                 callbacks: Iterable = ()) -> Optional[float]:
    """Train with the course's RunnerV3, calling `callbacks` (the user's, checked by `callbacks.user_callbacks`)
    after its own; returns the best dev score (None without evaluation)."""
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
        restore_runner_state(runner, resumed["runner"])
        if hasattr(train_loader.batch_sampler, "set_epoch"):  # a data-parallel sampler shuffles by epoch number
            train_loader.batch_sampler.set_epoch(resumed["next_step"] // len(train_loader))
        logger.info(f"[Train] resuming from {resumed['folder']} at step {resumed['next_step']}")
    score = score_name(parts.metric)
    own = []
    if settings["train_accuracy"]:
        own.append(TrainAccuracy(build_loader(config, "Train", evaluation=True) if world_size() > 1 else train_loader,
                                 score))
    checkpointer = Checkpointer(paths["output_dir"], optimizer, history, stop, settings["save_interval"],
                                settings["save_unit"], lambda mid_epoch: runner_state(runner, mid_epoch),
                                resumes_mid_epoch=True, resumed_state=resumed)
    recorder = scalar_recorder(settings, paths, len(train_loader), parts.metric,
                               resumed["next_step"] if resumed else None)
    scalars = VisualDLRecords(recorder, score, checkpointer.saves_after) if recorder is not None else None
    carried = epoch_evaluation(runner, resumed["next_step"], len(train_loader)) if resumed else None
    run = run_callbacks(history, score, settings, own, scalars, parts.optim.scheduler, parts.optim.by_epoch,
                        checkpointer, evaluates_after_epoch=settings["eval_per_epoch"], evaluation=carried)
    try:
        runner.train(train_loader, dev_loader, num_epochs=settings["epochs"], log_steps=settings["log_steps"],
                     eval_steps=settings["eval_steps"], save_path=paths["best"],
                     callbacks=run + list(callbacks),
                     start_step=resumed["next_step"] if resumed else 0,
                     epoch_loss_sum=resumed["epoch_loss_sum"] if resumed else 0.0, progress=settings["progress"],
                     eval_per_epoch=settings["eval_per_epoch"])
    except NonFiniteLoss as exc:
        last = checkpointer.latest or (find_checkpoint("auto", paths["output_dir"]) if resumed else None)
        raise stopped_by_nan(exc, last) from None
    if is_main_process():
        plot_training_loss_acc(runner, os.path.join(paths["output_dir"], "training_loss_acc.png"))
    return runner.best_score if runner.dev_scores else None
