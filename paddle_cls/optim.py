"""Optimizers and learning-rate schedules from the `Optimizer` section.

```yaml
Optimizer:
  name: Momentum                 # OPTIMIZERS
  momentum: 0.9
  weight_decay: 0.0001           # a float is L2 regularisation; or {name: L2Decay, coeff: 0.0001}
  learning_rate: 0.01            # a float, or a schedule:
  # learning_rate: {name: CosineAnnealingDecay, learning_rate: 0.01, T_max: 50, by_epoch: true, warmup_steps: 2}
```
`by_epoch` says whether the schedule steps once per epoch (true) or once per batch (false, the default);
`warmup_steps` wraps it in a linear warm-up from 0 over that many of those steps.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable

import paddle

from .build import build
from .errors import ConfigError

OPTIMIZERS = {
    "Adam": paddle.optimizer.Adam,
    "AdamW": paddle.optimizer.AdamW,
    "Momentum": paddle.optimizer.Momentum,
    "SGD": paddle.optimizer.SGD,
}
LR_SCHEDULERS = {
    "PiecewiseDecay": paddle.optimizer.lr.PiecewiseDecay,
    "CosineAnnealingDecay": paddle.optimizer.lr.CosineAnnealingDecay,
    "StepDecay": paddle.optimizer.lr.StepDecay,
    "MultiStepDecay": paddle.optimizer.lr.MultiStepDecay,
    "ExponentialDecay": paddle.optimizer.lr.ExponentialDecay,
}
REGULARIZERS = {"L2Decay": paddle.regularizer.L2Decay, "L1Decay": paddle.regularizer.L1Decay}


@dataclass
class OptimizerParts:
    """The optimizer, its schedule (None for a constant rate) and whether the schedule steps per epoch."""

    optimizer: paddle.optimizer.Optimizer
    scheduler: object = None
    by_epoch: bool = False


def _build_schedule(spec):
    spec = copy.deepcopy(spec)
    by_epoch = spec.pop("by_epoch", False)
    warmup_steps = spec.pop("warmup_steps", 0)
    if not isinstance(by_epoch, bool):
        raise ConfigError(f"Optimizer.learning_rate.by_epoch must be true or false, got {by_epoch!r}")
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ConfigError(f"Optimizer.learning_rate.warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    scheduler = build(LR_SCHEDULERS, spec, "Optimizer.learning_rate")
    if warmup_steps:
        scheduler = paddle.optimizer.lr.LinearWarmup(scheduler, warmup_steps, start_lr=0.0,
                                                     end_lr=scheduler.base_lr)
    return scheduler, by_epoch


def build_optimizer(spec: dict, parameters: Iterable) -> OptimizerParts:
    """The optimizer of the `Optimizer` section over `parameters`, with its schedule.

    A float `weight_decay` is Paddle's L2 regularisation coefficient, as in the course's
    `Adam(learning_rate=0.001, weight_decay=0.005)`.

    Returns:
        OptimizerParts.
    """
    if not isinstance(spec, dict):
        raise ConfigError("Optimizer must be a mapping with a 'name' key, e.g. name: Adam")
    spec = copy.deepcopy(spec)
    scheduler, by_epoch = None, False
    if isinstance(spec.get("learning_rate"), dict):
        scheduler, by_epoch = _build_schedule(spec["learning_rate"])
        spec["learning_rate"] = scheduler
    if isinstance(spec.get("weight_decay"), dict):
        spec["weight_decay"] = build(REGULARIZERS, spec["weight_decay"], "Optimizer.weight_decay")
    return OptimizerParts(build(OPTIMIZERS, spec, "Optimizer", parameters=parameters), scheduler, by_epoch)
