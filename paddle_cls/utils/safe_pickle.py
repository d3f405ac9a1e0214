"""Restricted unpicklers: for the CIFAR-10 batch files, and for the toolkit's own training-state files.

`pickle.load` runs whatever a crafted file asks for. The real CIFAR batches hold only dicts, lists,
strings, bytes, ints and numpy arrays, so only numpy's array reconstruction is admitted; a training-state
file holds plain values and Paddle's random-generator states, so only that class is admitted there.
"""
import pickle

import numpy as np

try:  # numpy >= 2 keeps the implementation in numpy._core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

from ..errors import DataError

# Files written by numpy 1 name numpy.core.multiarray, files written by numpy 2 numpy._core.multiarray.
CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source, encoding, allowed, error):
        super().__init__(file, encoding=encoding)
        self._source = source
        self._allowed = allowed
        self._error = error

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise self._error(f"{self._source}: refused to load '{module}.{name}': the file is not what it claims "
                              "to be (it may be crafted to run code)") from None


def restricted_load(file, source, allowed, error, what, encoding="ASCII"):
    """Unpickle `file` admitting only the globals in `allowed` ((module, name) -> object).

    Raises:
        error: (an exception class) a refused global, or a truncated or corrupt file; `what` names the kind of file.
    """
    try:
        return _RestrictedUnpickler(file, source, encoding, allowed, error).load()
    except error:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise error(f"{source}: not a readable {what} (truncated or corrupt pickle: {exc})") from None


def safe_load(file, source, encoding="bytes"):
    """Unpickle a CIFAR-10 batch (`file`, a binary file object), admitting only numpy's array reconstruction.

    Args:
        file: an open binary file.
        source: the name used in error messages (a path, or `archive:member`).
        encoding: how Python 2 strings are decoded, as for `pickle.load`.

    Raises:
        DataError: the file names any other global, or is truncated or corrupt.
    """
    return restricted_load(file, source, CIFAR_GLOBALS, DataError, "CIFAR-10 batch", encoding)

