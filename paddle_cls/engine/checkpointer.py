"""The `Checkpointer` callback: resumable checkpoints during training on either engine, and the Ctrl-C stop."""
from __future__ import annotations

from typing import Callable, Optional

import paddle

from ..errors import TrainingInterrupted
from ..utils.history import EpochHistory
from ..utils.logger import logger
from .checkpointing import random_states, save_checkpoint
from .stop_request import StopRequest


class Checkpointer(paddle.callbacks.Callback):
    """Saves a resumable checkpoint (`checkpointing.save_checkpoint`) every `interval` epochs or steps (`unit`),
    and on a Ctrl-C stop request, then stops the run (TrainingInterrupted).

    An epoch's checkpoint is saved once its row is in `history` (after its evaluation: on hapi that comes after
    `on_epoch_end`), so a resumed run has every row. Must come after the callbacks that step the schedule and
    record the epoch, so that what it saves is the state the next step starts from.

    Args:
        optimizer: the optimizer whose state is saved with the model (`model.network`).
        engine_state: `engine_state(mid_epoch)`, the engine's part of the state (`engine`, `epoch_loss_sum`,
            `runner`, and hapi's `best_score` and `grad_scaler`).
        resumes_mid_epoch: the engine can continue from a step inside an epoch (RunnerV3); else step intervals
            are not saved and a Ctrl-C inside an epoch stops without a checkpoint (the last one is named).
        resumed_state: the state of the checkpoint this run resumed from, if any.
    """

    def __init__(self, output_dir: str, optimizer: paddle.optimizer.Optimizer, history: EpochHistory,
                 stop: StopRequest, interval: int, unit: str, engine_state: Callable[[bool], dict],
                 resumes_mid_epoch: bool, resumed_state: Optional[dict] = None) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.optimizer = optimizer
        self.history = history
        self.stop = stop
        self.interval = interval
        self.unit = unit
        self.engine_state = engine_state
        self.resumes_mid_epoch = resumes_mid_epoch
        self.latest = None
        self._epoch_numpy_state = resumed_state["random"]["numpy"] if resumed_state else None
        self._rows = len(history.rows)
        self._epoch = None
        self._next_step = 0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        # The shuffling sampler draws this epoch's order from NumPy when the loader is iterated: a mid-epoch
        # checkpoint keeps the state from before that draw, so a resumed run replays the same order.
        if self._epoch_numpy_state is None or logs["global_step"] % self.params["steps"] == 0:
            self._epoch_numpy_state = random_states()["numpy"]

    def _save(self, next_step, mid_epoch):
        state = dict(self.engine_state(mid_epoch), next_step=next_step, history=list(self.history.rows),
                     random=random_states())
        if mid_epoch:
            state["random"]["numpy"] = self._epoch_numpy_state
        self.latest = save_checkpoint(self.output_dir, self.model.network, self.optimizer, state) or self.latest
        if self.latest:
            logger.info(f"[Checkpoint] step {next_step}: saved {self.latest}")

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        self._next_step = logs["global_step"] + 1
        if step + 1 == self.params["steps"]:
            return  # the epoch's bookkeeping is not done yet: its row saves
        if self.stop.requested:
            if self.resumes_mid_epoch:
                self._save(self._next_step, mid_epoch=True)
            raise TrainingInterrupted(self._stopped_message(self._next_step, saved=self.resumes_mid_epoch))
        if self.resumes_mid_epoch and self.unit == "step" and self._next_step % self.interval == 0:
            self._save(self._next_step, mid_epoch=True)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch = epoch
        self._epoch_done()

    def on_eval_end(self, logs: Optional[dict] = None) -> None:
        self._epoch_done()

    def _epoch_done(self):
        if self._epoch is None or len(self.history.rows) == self._rows:
            return  # an evaluation inside the epoch, or the epoch's row waits for its evaluation
        self._rows = len(self.history.rows)
        due = ((self._epoch + 1) % self.interval == 0 if self.unit == "epoch" or not self.resumes_mid_epoch
               else self._next_step % self.interval == 0)
        if due or self.stop.requested:
            self._save(self._next_step, mid_epoch=False)
        if self.stop.requested:
            raise TrainingInterrupted(self._stopped_message(self._next_step, saved=True))

    def _stopped_message(self, step, saved):
        if saved:
            return (f"training stopped by Ctrl-C at step {step}; checkpoint saved in {self.latest}. "
                    "Continue with -o Global.resume=auto")
        where = f"the last checkpoint is {self.latest}" if self.latest else "no checkpoint was saved yet"
        return (f"training stopped by Ctrl-C in the middle of an epoch; {where}. "
                "Continue with -o Global.resume=auto (from the last completed epoch)")

    def saves_after(self, global_step: int) -> bool:
        """Whether a checkpoint may be saved after this step within an epoch (a step interval is due, or Ctrl-C
        was pressed), asked before it runs: `VisualDLRecords` puts its records in the file first."""
        return self.stop.requested or bool(self.resumes_mid_epoch and self.unit == "step"
                                           and (global_step + 1) % self.interval == 0)
