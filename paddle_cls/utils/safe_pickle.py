"""A restricted unpickler for the CIFAR-10 batch files.

`pickle.load` runs whatever a crafted file asks for. The real CIFAR batches hold only dicts, lists,
strings, bytes, ints and numpy arrays, so only numpy's array reconstruction is admitted.
"""
import pickle

import numpy as np

try:  # numpy >= 2 keeps the implementation in numpy._core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

from ..errors import DataError

# Files written by numpy 1 name numpy.core.multiarray, files written by numpy 2 numpy._core.multiarray.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source, encoding):
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._source}: refused to load '{module}.{name}': a CIFAR-10 batch holds only lists, "
                "strings, ints and numpy arrays, so this file is not a real batch (it may be crafted to run code)"
            ) from None


def safe_load(file, source, encoding="bytes"):
    """Unpickle `file` (a binary file object) admitting only what CIFAR batches contain.

    Args:
        file: an open binary file.
        source: the name used in error messages (a path, or `archive:member`).
        encoding: how Python 2 strings are decoded, as for `pickle.load`.

    Raises:
        DataError: the file names a global other than numpy's array reconstruction, or is truncated or corrupt.
    """
    try:
        return _RestrictedUnpickler(file, source, encoding).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{source}: not a readable CIFAR-10 batch (truncated or corrupt pickle: {exc})") from None

