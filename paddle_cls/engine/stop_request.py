"""Ctrl-C during training: a request to stop cleanly (the checkpoint saved first), not an interrupt."""
import signal

from ..utils.logger import logger


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) during training into a request the training loop honours at the end of
    the current step (after saving a checkpoint); a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.info("[Train] Ctrl-C: stopping after this step and saving a checkpoint (press again to abort)")

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
