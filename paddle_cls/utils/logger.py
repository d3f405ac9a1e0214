"""The toolkit's logger: plain message lines (the course's output) on stdout, and optionally in a file."""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

from tqdm import tqdm

logger = logging.getLogger("paddle_cls")


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is at the time, so notebooks and captured output see the lines, and
    through `tqdm.write`, so that a progress bar on the terminal is redrawn below each line, not broken by it."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # logging's own policy: report, do not raise
            self.handleError(record)


if not logger.handlers:
    _handler = _StdoutHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_to_file(path: str) -> logging.Handler:
    """Also write every log line to `path` (appended); returns the handler so a caller can remove it."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return handler


class _Tee:
    """A stdout that also writes into the log files."""

    def __init__(self, console, files):
        self._console = console
        self._files = files

    def write(self, text):
        self._console.write(text)
        for file in self._files:
            file.write(text)
        return len(text)

    def flush(self):
        self._console.flush()
        for file in self._files:
            file.flush()

    def isatty(self):
        return self._console.isatty()

    def __getattr__(self, name):
        return getattr(self._console, name)


@contextlib.contextmanager
def console_into_log_files() -> Iterator[None]:
    """Copy everything printed to stdout into the log files while the block runs.

    Paddle's own progress lines (hapi's ProgBarLogger) print straight to stdout; this puts them in
    `train.log` too. Our own lines reach the files once, through the tee.
    """
    files = [handler for handler in logger.handlers if isinstance(handler, logging.FileHandler)]
    for handler in files:
        logger.removeHandler(handler)
    console = sys.stdout
    sys.stdout = _Tee(console, [handler.stream for handler in files])
    try:
        yield
    finally:
        sys.stdout = console
        for handler in files:
            logger.addHandler(handler)
