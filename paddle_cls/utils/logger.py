"""The toolkit's logger: plain message lines (the course's output) on stdout, and optionally in a file."""
import logging
import sys

logger = logging.getLogger("paddle_cls")


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is at the time, so notebooks and captured output see the lines."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


if not logger.handlers:
    _handler = _StdoutHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_to_file(path):
    """Also write every log line to `path` (appended); returns the handler so a caller can remove it."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return handler
