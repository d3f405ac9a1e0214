"""Progress bars for training, with rate and time left: a widget in Jupyter, a text bar on a terminal.

Bars go to the terminal's stderr (or the notebook: a widget where ipywidgets is installed, else a text bar),
never into `train.log`; the toolkit's log lines are printed above them (see `utils.logger`). Where there is
neither a terminal nor a notebook (output redirected to a file, CI) nothing is drawn.
"""
from __future__ import annotations

import sys

from tqdm import tqdm as text_bar


def _in_notebook():
    shell = sys.modules.get("IPython")
    shell = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _bar(**kwargs):
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401  (tqdm.notebook needs it)
            from tqdm.notebook import tqdm as widget_bar
        except ImportError:
            return text_bar(**kwargs)  # notebooks print a text bar's updates in place too
        return widget_bar(**kwargs)
    return text_bar(**kwargs)


def can_show_progress() -> bool:
    """True in a Jupyter kernel or when stderr is a terminal."""
    return _in_notebook() or sys.stderr.isatty()


class TrainingProgress:
    """Two bars, the whole run and the current epoch, each with its rate and estimated time left.

    Args:
        epochs: epochs of the run.
        steps_per_epoch: training steps in one epoch.
        start_step: steps already done (a resumed run).
        enabled: False draws nothing; True draws where `can_show_progress()`.
    """

    def __init__(self, epochs, steps_per_epoch, start_step=0, enabled=True):
        self.steps_per_epoch = steps_per_epoch
        self.enabled = bool(enabled) and can_show_progress() and steps_per_epoch > 0
        self._run = self._epoch = None
        if self.enabled:
            self._run = _bar(total=epochs * steps_per_epoch, initial=start_step, desc="train", unit="step",
                             dynamic_ncols=True)

    def epoch_begin(self, epoch: int, done: int = 0) -> None:
        """Start the bar of `epoch`, `done` of its steps already made (a resumed run)."""
        if self.enabled:
            self._epoch = _bar(total=self.steps_per_epoch, initial=done, desc=f"epoch {epoch}", unit="step",
                               leave=False, dynamic_ncols=True)

    def step(self) -> None:
        """One training step done."""
        if self.enabled:
            self._run.update(1)
            if self._epoch is not None:
                self._epoch.update(1)

    def epoch_end(self) -> None:
        if self._epoch is not None:
            self._epoch.close()
            self._epoch = None

    def close(self) -> None:
        """Remove the epoch bar and leave the run's bar at its final state."""
        self.epoch_end()
        if self._run is not None:
            self._run.close()
            self._run = None
