"""Errors raised for bad user input.

Each one carries a message meant for the user: what was wrong (file, key or value), what was expected
and how to fix it. The command-line tools print the message alone, without a traceback.
"""


class PaddleClsError(Exception):
    """Base class of the errors a user can fix."""


class ConfigError(PaddleClsError, ValueError):
    """A config file, section, key or value that cannot be used."""


class DataError(PaddleClsError, ValueError):
    """A dataset file that is missing, unreadable or not in the expected format."""


class CheckpointError(PaddleClsError, ValueError):
    """A model file that is missing, corrupt or does not fit the model."""


class NonFiniteLoss(PaddleClsError):
    """Training diverged: the loss, or the weights themselves, became NaN or infinite.

    Raised whatever the CPU's kernels do with NaN (some map it to 0 in `relu`, so the loss can stay finite
    while the weights are NaN); no checkpoint or best model is written with non-finite weights.
    """


class TrainingInterrupted(PaddleClsError):
    """Ctrl-C during training: the checkpoint was saved and the run stopped cleanly."""
