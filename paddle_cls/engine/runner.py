"""RunnerV3, the course's training loop (nndl `runner.py`), ported to today's Paddle.

Same API, same history lists and the same printed lines as the course. What changed underneath:
losses are recorded without keeping the autograd graph (the course's `total_loss += loss`), and
`evaluate()` called from outside training leaves the dev history alone. `train` takes Paddle's callbacks
(`paddle.callbacks.Callback`) and calls them as `paddle.Model.fit` does (see `engine.callbacks`), and a
runner has what they use of a `paddle.Model`: `network`, `stop_training`, `save` and the optimizer.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable, Optional, Tuple

import paddle

from ..errors import ConfigError
from ..metrics import score_name
from ..utils.arguments import refuse_unknown_keywords
from ..utils.weights import load_model_file, save_atomic, save_weights
from ..utils.distributed import all_reduce_sum, is_main_process, world_size
from ..utils.logger import logger
from ..utils.precision import as_float32, autocast, decorate_o2
from .best_model import report_evaluation
from .callbacks import close_progress, with_defaults


class RunnerV3:
    """Train, evaluate and predict with a model, an optimizer, a loss function and a metric.

    Args:
        model: a `paddle.nn.Layer`.
        optimizer: a `paddle.optimizer.Optimizer` over the model's parameters.
        loss_fn: called as `loss_fn(logits, labels)`, returning the mean loss.
        metric: an object with `update`, `accumulate` and `reset` (e.g. `Accuracy`); needed for evaluation.

    `amp_level` ('O1' or 'O2') and `amp_dtype` ('float16' or 'bfloat16') train, evaluate and predict with
    automatic mixed precision on a GPU, with dynamic loss scaling for float16 (not in the course). At O2 the
    model is decorated (`decorate_o2`) unless it already is: a `paddle.DataParallel` must wrap a model
    decorated before.

    `train` shows progress bars (run and epoch, with rate and time left) on a terminal and in a notebook unless
    `progress=False`, stops on a NaN or infinite loss (NonFiniteLoss), and takes Paddle's `callbacks` (e.g.
    `EarlyStopping`), called as `paddle.Model.fit` calls them (`engine.callbacks`): not in the course. Unlike the
    course's, a keyword these methods do not take is a TypeError, and `train` needs `num_epochs` >= 1.

    After `train`, `train_step_losses` holds `(step, loss)` for every step, `train_epoch_losses` the mean
    loss of each epoch, `dev_losses` `(step, loss)` and `dev_scores` the score of each evaluation, and
    `best_score` the best dev score.

    >>> runner = RunnerV3(model, optimizer, F.cross_entropy, Accuracy())  # doctest: +SKIP
    >>> runner.train(train_loader, dev_loader, num_epochs=30, log_steps=3000, eval_steps=3000)  # doctest: +SKIP
    """

    @refuse_unknown_keywords
    def __init__(self, model: paddle.nn.Layer, optimizer: Optional[paddle.optimizer.Optimizer],
                 loss_fn: Optional[Callable], metric: Any, amp_level: Optional[str] = None,
                 amp_dtype: str = "float16") -> None:
        self.amp_level = amp_level
        self.amp_dtype = amp_dtype
        if amp_level == "O2":  # the weights in low precision (with float32 masters in the optimizer)
            decorated = decorate_o2(model, optimizer, amp_dtype)
            model, optimizer = decorated if optimizer is not None else (decorated, None)
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.metric = metric
        # float16 needs loss scaling against underflowing gradients; bfloat16 has float32's range. Made once, not
        # per train(), so that a checkpoint carries its scale.
        self.scaler = (paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15)
                       if amp_level and amp_dtype == "float16" and optimizer is not None else None)
        self.dev_scores = []
        self.train_epoch_losses = []
        self.train_step_losses = []
        self.dev_losses = []
        self.best_score = 0
        self.global_step = 0
        self.steps_per_epoch = 0
        self.stop_training = False
        self._callbacks = []
        self._epoch_loss_sum = paddle.zeros([])

    @property
    def network(self) -> paddle.nn.Layer:
        """The model, as `paddle.Model.network` names it for callbacks."""
        return self.model

    @property
    def _optimizer(self) -> Optional[paddle.optimizer.Optimizer]:
        # Paddle's own callbacks (ReduceLROnPlateau, LRScheduler) read paddle.Model's private `_optimizer`.
        return self.optimizer

    def save(self, path: str, training: bool = True) -> None:
        """Write `path.pdparams` (the weights) and, with `training`, `path.pdopt` (the optimizer), as
        `paddle.Model.save` does (rank 0 only, each file atomically)."""
        if is_main_process():
            save_weights(self.model, path + ".pdparams")
            if training and self.optimizer is not None:
                save_atomic(self.optimizer.state_dict(), path + ".pdopt")

    def _fire(self, hook, *args):
        for callback in self._callbacks:
            getattr(callback, hook)(*args)

    @property
    def epoch_loss_sum(self) -> float:
        """The sum of this epoch's step losses so far, as a float (reads the device)."""
        return float(self._epoch_loss_sum.item())

    @refuse_unknown_keywords
    def train(self, train_loader: Iterable, dev_loader: Optional[Iterable] = None, num_epochs: Optional[int] = None,
              log_steps: int = 100, eval_steps: int = 0, save_path: str = "best_model.pdparams",
              custom_print_log: Optional[Callable[[RunnerV3], None]] = None, callbacks: Iterable = (),
              start_step: int = 0, epoch_loss_sum: float = 0.0, progress: bool = True,
              eval_per_epoch: bool = False) -> None:
        """Train for `num_epochs` (>= 1), logging every `log_steps` steps and evaluating every `eval_steps`.

        The model is evaluated when `global_step > 0` and either `global_step % eval_steps == 0` or it is
        the last step, or with `eval_per_epoch` after each epoch (after `on_epoch_end`, as `paddle.Model.fit`
        evaluates); it is saved to `save_path` at the first evaluation and whenever the dev score improves.
        `custom_print_log(runner)` is called after each backward pass, as in the course.
        `start_step` and `epoch_loss_sum` continue a run from a checkpoint (see `engine.checkpointing`): the
        steps before `start_step` are skipped, the loss of the partly done epoch starts from `epoch_loss_sum`.
        `progress=False` draws no progress bars.

        Raises:
            ConfigError: `num_epochs` < 1, `start_step` leaves nothing to train, or `train_loader` gives no batch.
            NonFiniteLoss: a step's loss became NaN or infinite, or the weights did (checked every 200 steps, at
                the end of each epoch and when the best model is saved); see `callbacks.StopOnNonFinite`.
            TypeError: a callback is not a `paddle.callbacks.Callback`.
        """
        if isinstance(num_epochs, bool) or not isinstance(num_epochs, numbers.Integral) or num_epochs < 1:
            raise ConfigError(f"RunnerV3.train: num_epochs must be a whole number >= 1, got {num_epochs!r}")
        self.model.train()
        if len(train_loader) == 0:  # the course's code divides by it
            raise ConfigError("train_loader gives no batch: it has fewer samples than its batch_size with "
                              "drop_last=True; lower batch_size or set drop_last=False")
        num_training_steps = num_epochs * len(train_loader)
        if start_step >= num_training_steps:
            raise ConfigError(f"RunnerV3.train: start_step {start_step} is past the last of {num_training_steps} "
                              "steps: nothing left to train; raise num_epochs (Global.epochs)")
        if eval_steps or eval_per_epoch:
            if self.metric is None:
                raise RuntimeError("Error: Metric can not be None!")
            if dev_loader is None:
                raise RuntimeError("Error: dev_loader can not be None!")
        self.steps_per_epoch = len(train_loader)
        scaler = self.scaler
        global_step = self.global_step = start_step
        first_epoch, skip = divmod(start_step, self.steps_per_epoch)
        self._callbacks = with_defaults(callbacks, progress)
        params = {"epochs": num_epochs, "steps": self.steps_per_epoch, "verbose": int(progress),
                  "metrics": ["loss"] + ([score_name(self.metric)] if self.metric is not None else [])}
        for callback in self._callbacks:
            callback.set_model(self)
            callback.set_params(params)
        self.stop_training = False
        try:
            self._fire("on_train_begin", {"global_step": start_step})
            for epoch in range(first_epoch, num_epochs):
                self._fire("on_epoch_begin", epoch, {"global_step": global_step})
                total_loss = paddle.full([], epoch_loss_sum if epoch == first_epoch else 0.0)
                for index, data in enumerate(train_loader):
                    if epoch == first_epoch and index < skip:
                        continue  # done before the checkpoint this run resumed from
                    self._fire("on_train_batch_begin", index, {"global_step": global_step})
                    lr = self.optimizer.get_lr()
                    X, y = data
                    with self._autocast():
                        logits = self.model(X)
                        loss = self.loss_fn(logits, y)
                    step_loss = as_float32(loss.detach())
                    total_loss = self._epoch_loss_sum = total_loss + step_loss
                    loss_value = step_loss.item()  # a float for the history and the callbacks, as paddle.Model
                    self.train_step_losses.append((global_step, loss_value))
                    if log_steps and global_step % log_steps == 0:
                        logger.info(f"[Train] epoch: {epoch}/{num_epochs}, step: {global_step}/{num_training_steps}, "
                                    f"loss: {loss_value:.5f}")
                    (scaler.scale(loss) if scaler else loss).backward()
                    if custom_print_log:
                        custom_print_log(self)
                    if scaler:
                        scaler.step(self.optimizer)
                        scaler.update()
                    else:
                        self.optimizer.step()
                    self.optimizer.clear_grad()
                    if eval_steps > 0 and global_step > 0 and (
                            global_step % eval_steps == 0 or global_step == num_training_steps - 1):
                        self.evaluate_and_keep_best(dev_loader, global_step, save_path)
                    self._fire("on_train_batch_end", index, {"loss": loss_value, "lr": lr, "global_step": global_step})
                    global_step += 1
                    self.global_step = global_step
                self.train_epoch_losses.append((total_loss / len(train_loader)).item())
                self._fire("on_epoch_end", epoch, {"loss": self.train_epoch_losses[-1], "lr": self.optimizer.get_lr(),
                                                   "global_step": global_step})
                if eval_per_epoch:
                    self.evaluate_and_keep_best(dev_loader, global_step - 1, save_path)
                if self.stop_training:
                    break
            self._fire("on_train_end", {"global_step": global_step})
        finally:
            close_progress(self._callbacks)
            self._callbacks = []
        logger.info("[Train] Training done!")

    def evaluate_and_keep_best(self, dev_loader: Iterable, global_step: int, save_path: str) -> None:
        """Evaluate during training as the course does: print the dev line, record it, save a new best (and the
        model of the run's first evaluation, whatever its score)."""
        self._fire("on_eval_begin", {"global_step": global_step})
        dev_score, dev_loss = self.evaluate(dev_loader, global_step=global_step)
        self.model.train()
        first = len(self.dev_scores) == 1  # restored on resume, so a resumed run keeps the best it had
        self.best_score = report_evaluation(self.model, dev_score, dev_loss, self.best_score, save_path, first)
        self._fire("on_eval_end", {"loss": dev_loss, score_name(self.metric): float(dev_score),
                                   "global_step": global_step})

    @refuse_unknown_keywords
    @paddle.no_grad()
    def evaluate(self, dev_loader: Iterable, global_step: int = -1) -> Tuple[float, float]:
        """Return `(score, loss)` on `dev_loader`: the metric and the mean of the batch losses.

        Only an evaluation during training (`global_step >= 0`) is added to `dev_losses` and `dev_scores`.
        """
        if self.metric is None:
            raise RuntimeError("Error: Metric can not be None!")
        num_batches = len(dev_loader)
        if num_batches == 0 and world_size() == 1:
            raise ValueError("evaluate() got an empty data loader: the split holds no samples")
        self.model.eval()
        self.metric.reset()
        total_loss = paddle.zeros([])
        for X, y in dev_loader:
            with self._autocast():
                logits = self.model(X)
                batch_loss = self.loss_fn(logits, y)
            total_loss = total_loss + as_float32(batch_loss)
            logits = as_float32(logits)
            self.metric.update(logits, y)
        if world_size() > 1:  # each process evaluated its own batches: add them up
            total_loss = all_reduce_sum(total_loss)
            num_batches = int(all_reduce_sum(paddle.to_tensor([num_batches], dtype="int64")).item())
            if not hasattr(self.metric, "all_reduce"):
                raise RuntimeError("a data-parallel evaluation needs a metric with all_reduce(), "
                                   "e.g. paddle_cls.Accuracy")
            self.metric.all_reduce()
        dev_loss = (total_loss / num_batches).item()
        dev_score = self.metric.accumulate()
        if isinstance(dev_score, (list, tuple)):  # several top-k: the first one is the score
            dev_score = dev_score[0]
        if global_step != -1:
            self.dev_losses.append((global_step, dev_loss))
            self.dev_scores.append(dev_score)
        return dev_score, dev_loss

    def _autocast(self):
        return autocast(self.amp_level, self.amp_dtype)

    @refuse_unknown_keywords
    @paddle.no_grad()
    def predict(self, x: paddle.Tensor) -> paddle.Tensor:
        """The model's output (logits) for a batch `x`, in eval mode (under the runner's mixed precision)."""
        self.model.eval()
        with self._autocast():
            return self.model(x)

    def save_model(self, save_path: str) -> None:
        """Save the model's state dict to `save_path` (atomically: a crash leaves the previous file intact).

        In a data-parallel run only rank 0 writes. Weights holding NaN or inf are refused (NonFiniteLoss).
        """
        if is_main_process():
            save_weights(self.model, save_path)

    def load_model(self, model_path: str) -> None:
        """Load a state dict saved by `save_model` (or by the course's RunnerV3); a mismatch is an error."""
        load_model_file(self.model, model_path)
