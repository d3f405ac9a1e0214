"""The learning-rate range test (Leslie N. Smith, "Cyclical Learning Rates for Training Neural Networks", 2017,
section 3.3), as fastai 2's `Learner.lr_find` runs it: a fresh copy of the config's model (its pretrained weights
included) trains for `steps` batches while the rate grows exponentially from `start_lr` to `end_lr`, and stops
early once the loss diverges. Nothing is written: not `Global.output_dir`, not any weights file.

fastai's rules, kept here: the loss is smoothed by an exponential moving average (beta 0.98, debiased); the test
stops when the smoothed loss exceeds 4 times the best so far (or is NaN or infinite); the suggestions are computed
on the smoothed losses without the first tenth of the steps and the last five recorded, cut before a NaN: `valley`
(the default), `minimum` (a tenth of the rate at the lowest loss) and `steep` (the rate of the steepest descent).
Two differences: the rates run from `start_lr` to exactly `end_lr` (fastai's last rate falls one step short of
it), and `valley` never gives an index below the first point (fastai's gives -1, the last and highest rate, when the
loss never falls or falls over just two points).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import paddle
from matplotlib.figure import Figure

from ..data.loader import build_loader, datasets_built_once
from ..errors import ConfigError, NonFiniteLoss
from ..metrics import score_name
from ..utils.logger import logger
from ..utils.runtime import seed_everything, set_device
from .components import build_components, check_components
from .hapi import HapiEvents
from .input_check import check_inputs
from .runner import RunnerV3

START_LR, END_LR, STEPS = 1e-7, 10.0, 100  # fastai's defaults
SMOOTHING = 0.98  # fastai's AvgSmoothLoss beta
DIVERGENCE = 4.0  # stop when the smoothed loss exceeds this many times its best
SKIP_END = 5  # the last points recorded, left out of the suggestions (and fastai's plot)


def sweep_rates(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """The `steps` learning rates of the test, geometrically spaced from `start_lr` to `end_lr` (both included).

    Raises:
        ConfigError: a rate that is not a positive number, `start_lr` >= `end_lr`, or `steps` < 7 (the last
            `SKIP_END` points are not read, and a suggestion needs two more).
    """
    for name, value in (("start_lr (--start-lr)", start_lr), ("end_lr (--end-lr)", end_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ConfigError(f"lr-find: {name} must be a positive number, got {value!r}")
    if start_lr >= end_lr:
        raise ConfigError(f"lr-find: start_lr (--start-lr) {start_lr:g} must be below end_lr (--end-lr) {end_lr:g}: "
                          f"the rate grows from one to the other (default {START_LR:g} to {END_LR:g})")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < SKIP_END + 2:
        raise ConfigError(f"lr-find: steps (--steps) must be a whole number >= {SKIP_END + 2}, got {steps!r} "
                          f"(default {STEPS})")
    return np.geomspace(start_lr, end_lr, steps)


class SweepOver(Exception):
    """Raised by `RangeTest` to leave the training loop mid-epoch (a run's `stop_training` waits for the epoch's
    end); the finder catches it."""


class RangeTest(paddle.callbacks.Callback):
    """On either engine (the protocol of `engine.callbacks`): records each step's rate (`logs["lr"]`) and loss,
    gives `optimizer` (which must hold a float rate) the next rate of `rates`, and raises `SweepOver` after the
    last rate or when the smoothed loss diverges (`diverged` is then True)."""

    def __init__(self, optimizer: paddle.optimizer.Optimizer, rates: np.ndarray) -> None:
        super().__init__()
        self.optimizer = optimizer
        self.rates = [float(rate) for rate in rates]
        self.lrs: List[float] = []
        self.losses: List[float] = []
        self.smoothed: List[float] = []
        self.diverged = False
        self._average, self._best = 0.0, float("inf")

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.optimizer.set_lr(self.rates[0])

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        loss = float(logs["loss"])  # one read of the device per step: the test needs each loss at once
        self.lrs.append(float(logs["lr"]))
        self.losses.append(loss)
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
        smoothed = self._average / (1 - SMOOTHING ** len(self.losses))
        self.smoothed.append(smoothed)
        self._best = min(self._best, smoothed)
        if not np.isfinite(smoothed) or smoothed > DIVERGENCE * self._best:
            self.diverged = True
            raise SweepOver()
        if len(self.lrs) == len(self.rates):
            raise SweepOver()
        self.optimizer.set_lr(self.rates[len(self.lrs)])


@dataclass
class LRFindResult:
    """What the test saw: per step the rate (`lrs`), the batch loss and the smoothed loss; whether it stopped on
    divergence; the suggested rates by rule (`valley`, `minimum`, `steep`; empty when too few steps ran to suggest
    one, `note` then says why)."""

    lrs: List[float]
    losses: List[float]
    smoothed: List[float]
    start_lr: float
    end_lr: float
    steps: int
    diverged: bool
    suggestions: Dict[str, float] = field(default_factory=dict)
    points: Dict[str, int] = field(default_factory=dict)  # the step each suggestion was read at
    note: str = ""

    @property
    def suggestion(self) -> Optional[float]:
        """The suggested learning rate (fastai's default rule, `valley`); None when there is none."""
        return self.suggestions.get("valley")


def _valley(losses):
    # the longest run of ever lower losses (a longest decreasing subsequence), and a point half-way along it
    longest = [1] * len(losses)
    end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end = i
    start = end - longest[end]  # fastai's: one before the valley's first point
    sections = (end - start) / 3
    return max(0, start + int(sections) + int(sections / 2))


def suggest(lrs: List[float], smoothed: List[float], steps: int) -> Dict[str, int]:
    """The index into `lrs` that each rule (`valley`, `minimum`, `steep`) reads its rate at, from the smoothed losses
    without the first `steps // 10` points and the last five, cut before a NaN; {} when fewer than 2 points remain.
    `minimum`'s rate is a tenth of the one at its index."""
    first, last = steps // 10, len(smoothed) - SKIP_END
    window = np.asarray(smoothed[first:last], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(window))
    window = window[:bad[0]] if len(bad) else window
    if len(window) < 2:
        return {}
    rates = np.log(np.asarray(lrs[first:first + len(window)]))
    slopes = np.diff(window) / np.diff(rates)
    return {"valley": first + _valley(window.tolist()), "minimum": first + int(np.argmin(window)),
            "steep": first + int(np.argmin(slopes))}


def _run_runner(parts, loader, epochs, finder, settings):
    runner = RunnerV3(parts.model, parts.optim.optimizer, parts.loss_fn, parts.metric)
    runner.train(loader, num_epochs=epochs, log_steps=0, callbacks=[finder], progress=False)


def _run_hapi(parts, loader, epochs, finder, settings):
    image_spec = paddle.static.InputSpec([None, *settings["image_shape"]], "float32", "image")
    model = paddle.Model(parts.model, inputs=[image_spec])
    optimizer = parts.optim.optimizer
    model.prepare(optimizer, parts.loss_fn, parts.metric)
    events = HapiEvents([finder], epochs, 0, optimizer, score_name(parts.metric))
    # hapi adds an LRScheduler callback unless given one; the rate is the finder's alone. No save_dir: no files.
    model.fit(train_data=loader, epochs=epochs, verbose=0, save_dir=None,
              callbacks=[events, paddle.callbacks.LRScheduler(by_step=False, by_epoch=False)])


DRIVERS = {"runner": _run_runner, "hapi": _run_hapi}


def lr_find(config: dict, start_lr: float = START_LR, end_lr: float = END_LR, steps: int = STEPS) -> LRFindResult:
    """Run the learning-rate range test on the config's model, optimizer, loss and training split, on
    `Global.engine`, and suggest a rate (see the module's docstring for the rules).

    The optimizer is the config's (its momentum, weight decay, gradient clipping, `Arch.backbone_lr_mult`), with
    its rate replaced by the sweep: whatever schedule `Optimizer.learning_rate` gives is not used. The model is
    built afresh with its pretrained weights (`Global.pretrained_model`, `Arch.pretrained`), not a checkpoint of
    `Global.resume`. It runs in float32 (`Global.amp` is not applied) on one process.

    Raises:
        ConfigError: a bad `start_lr`, `end_lr` or `steps`, an unknown engine, or what a training run refuses
            before it starts (names and keys, what the transforms give the model, a split that makes no batch).
    """
    rates = sweep_rates(start_lr, end_lr, steps)
    settings = config["Global"]
    if settings["engine"] not in DRIVERS:
        raise ConfigError(f"Global.engine: unknown engine {settings['engine']!r} (valid: {', '.join(DRIVERS)})")
    with datasets_built_once():
        device = set_device(settings["device"], settings["num_threads"])
        check_inputs(config, check_components(config), ["Train"])
        sweep_config = copy.deepcopy(config)
        sweep_config["Optimizer"]["learning_rate"] = float(rates[0])  # a float: set_lr gives each step its rate
        seed_everything(settings["seed"], settings["deterministic"])
        parts = build_components(sweep_config)
        loader = build_loader(config, "Train")
        if len(loader) == 0:
            raise ConfigError("DataLoader.Train gives no batch: it has fewer samples than its batch_size with "
                              "drop_last: true; lower batch_size or set drop_last: false")
        logger.info(f"lr-find: {steps} steps from {start_lr:g} to {end_lr:g} on {device}, engine "
                    f"{settings['engine']}, {config['Optimizer']['name']}")
        finder = RangeTest(parts.optim.optimizer, rates)
        try:
            DRIVERS[settings["engine"]](parts, loader, -(-steps // len(loader)), finder, settings)
        except SweepOver:
            pass
        except NonFiniteLoss:  # the run's NaN check on the weights (a CPU's relu can hide them from the loss)
            finder.diverged = True
    points = suggest(finder.lrs, finder.smoothed, steps)
    suggestions = {rule: finder.lrs[index] / (10 if rule == "minimum" else 1) for rule, index in points.items()}
    ended = (f"the loss diverged after {len(finder.lrs)} of {steps} steps, at rate {finder.lrs[-1]:.2e}"
             if finder.diverged else f"the test ran {len(finder.lrs)} steps")
    note = "" if points else (
        f"no suggestion: {ended}, too few to read one from (the first {steps // 10} and last {SKIP_END} are not "
        "used): lower --end-lr or raise --steps")
    return LRFindResult(finder.lrs, finder.losses, finder.smoothed, start_lr, end_lr, steps, finder.diverged,
                        suggestions, points, note)


def summary(result: LRFindResult, rows: int = 8) -> str:
    """The test as text: how it ended, a table of `rows` steps spread over it, and the suggested rates."""
    done = len(result.lrs)
    ended = (f"stopped after {done} at rate {result.lrs[-1]:.2e}: the loss diverged" if result.diverged
             else "ran them all")
    lines = [f"learning-rate range test: {result.steps} steps from {result.start_lr:.2e} to {result.end_lr:.2e}, "
             f"{ended}",
             f"{'step':>6}  {'learning rate':>13}  {'loss':>10}  {'smoothed loss':>13}"]
    for index in sorted(set(np.linspace(0, done - 1, min(rows, done)).round().astype(int).tolist())):
        lines.append(f"{index:>6}  {result.lrs[index]:>13.2e}  {result.losses[index]:>10.4f}  "
                     f"{result.smoothed[index]:>13.4f}")
    if result.suggestion is None:
        return "\n".join(lines + [result.note])
    others = ", ".join(f"{rule} {result.suggestions[rule]:.2e}" for rule in ("minimum", "steep"))
    lines += [f"also: {others} (minimum is a tenth of the rate at the lowest loss)",
              f"suggested learning rate (valley): {result.suggestion:.2e}; train with "
              f"-o Optimizer.learning_rate={result.suggestion:.2e} (or as the schedule's learning_rate)"]
    return "\n".join(lines)


def plot_lr_find(result: LRFindResult, path: str) -> Figure:
    """Draw the loss (each batch's, and smoothed) against the learning rate, on a log scale, with the suggestions
    marked, into `path` (PNG, PDF, SVG: by its extension); returns the figure (a notebook shows it)."""
    fig = Figure(figsize=(6.4, 4.2))
    axis = fig.subplots()
    axis.plot(result.lrs, result.losses, ".", color="0.75", markersize=3, label="batch loss")
    axis.plot(result.lrs, result.smoothed, "-", color="C0", label="smoothed loss")
    for (rule, index), color in zip(result.points.items(), ("C3", "C2", "C1")):
        axis.plot(result.lrs[index], result.smoothed[index], "o", color=color,
                  label=f"{'minimum/10' if rule == 'minimum' else rule}: {result.suggestions[rule]:.2e}")
    if result.suggestion is not None:
        axis.axvline(result.suggestion, color="C3", linestyle=":", linewidth=1)
    finite = [value for value in result.losses + result.smoothed if np.isfinite(value)]
    smoothed = [value for value in result.smoothed if np.isfinite(value)]
    if smoothed:  # a diverging loss would squash the curve: show it up to the stopping threshold
        bottom, top = min(finite), min(max(finite), DIVERGENCE * 1.1 * min(smoothed))
        if top > bottom:
            axis.set_ylim(bottom - 0.05 * (top - bottom), top)
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("training loss")
    axis.set_title("learning-rate range test")
    axis.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    return fig
