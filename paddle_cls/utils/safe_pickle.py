"""Restricted unpicklers: for the CIFAR-10 batch files, Paddle's weights files and our training-state files.

`pickle.load` (and `paddle.load`, which is `pickle.load`) runs whatever a crafted file asks for. The real CIFAR
batches hold only dicts, lists, strings, bytes, ints and numpy arrays, so only numpy's array reconstruction is
admitted; a Paddle weights file as `paddle.save` writes it (2.x and 3.x) adds numpy scalars, ordered dicts and
the `(name, array)` tuples of its generic writer; a training-state file adds Paddle's random-generator states.
Anything else is refused before it is imported, as PyTorch's `torch.load(weights_only=True)` does.
"""
from __future__ import annotations

import codecs
import collections
import pickle
from typing import Any, BinaryIO, Type

import numpy as np

try:  # numpy >= 2 keeps the implementation in numpy._core
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

from ..errors import DataError

class _Refused(pickle.UnpicklingError):
    """A call a real file never makes (the message says which)."""


def _empty_array(subtype, shape, dtype):
    # numpy pickles every array as an empty one whose data the next opcode sets from the file's own bytes:
    # a shape asked for here would allocate memory the file does not hold
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise _Refused(f"an array of {subtype!r}, shape {shape!r}: numpy writes empty ndarrays here")
    return _reconstruct(subtype, shape, dtype)


def _numeric_dtype(*args):
    dtype = np.dtype(*args)
    if dtype.kind not in "biufc":  # objects, strings, records: never in weights or CIFAR data arrays
        raise _Refused(f"arrays of dtype {dtype}: only numbers are read")
    return dtype


def _latin1_bytes(text, encoding):
    # protocol 2 writes bytes as encode(text, 'latin1'); other codecs (hex, zlib, ...) would only inflate
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused(f"_codecs.encode(..., {encoding!r}): protocol 2 writes bytes with 'latin1' only")
    return codecs.encode(text, encoding)


# Files written by numpy 1 name numpy.core.multiarray, files written by numpy 2 numpy._core.multiarray.
CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _empty_array,
    ("numpy._core.multiarray", "_reconstruct"): _empty_array,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numeric_dtype,
}

# paddle.save's generic writer stores a tensor as `tuple((name, array))`; protocol 2 names the builtins
# `__builtin__` and writes bytes with `_codecs.encode`. Each of these only builds a value from its arguments.
PADDLE_GLOBALS = {
    **CIFAR_GLOBALS,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{(module, name): value for module in ("builtins", "__builtin__")
       for name, value in (("tuple", tuple), ("set", set), ("frozenset", frozenset))},
    ("_codecs", "encode"): _latin1_bytes,
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


def restricted_load(file: BinaryIO, source: str, allowed: dict, error: Type[Exception], what: str,
                    encoding: str = "ASCII") -> Any:
    """Unpickle `file` admitting only the globals in `allowed` ((module, name) -> object).

    Raises:
        error: (an exception class) a refused global, or a truncated or corrupt file; `what` names the kind of file.
    """
    try:
        return _RestrictedUnpickler(file, source, encoding, allowed, error).load()
    except error:
        raise
    except _Refused as exc:
        raise error(f"{source}: refused to load {exc}: the file is not what it claims to be") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            LookupError, MemoryError, RecursionError) as exc:
        raise error(f"{source}: not a readable {what} (truncated or corrupt pickle: {exc})") from None


def safe_load(file: BinaryIO, source: str, encoding: str = "bytes") -> Any:
    """Unpickle a CIFAR-10 batch (`file`, a binary file object), admitting only numpy's array reconstruction.

    Args:
        file: an open binary file.
        source: the name used in error messages (a path, or `archive:member`).
        encoding: how Python 2 strings are decoded, as for `pickle.load`.

    Raises:
        DataError: the file names any other global, or is truncated or corrupt.
    """
    return restricted_load(file, source, CIFAR_GLOBALS, DataError, "CIFAR-10 batch", encoding)



def _join_split_arrays(state):
    # paddle.save with protocol 2 or 3 splits arrays over 1 GiB into parts listed under this key
    parts = state.pop("UnpackBigParamInfor@@", None)
    for key, info in (parts or {}).items():
        state[key] = np.concatenate([state.pop(part) for part in info["slices"]]).reshape(info["OriginShape"])
    return state


def paddle_pickle_load(path: str, error: Type[Exception]) -> Any:
    """Read a Paddle pickle (`.pdparams`, `.pdopt`) as `paddle.load` unpickles it, without running code.

    Admits only what `paddle.save` writes for state dicts and optimizer states on Paddle 2.x and 3.x (protocols
    2 to 4). Tensors come back as NumPy arrays, or as the `(name, array)` tuples of its generic writer.

    Raises:
        error: (an exception class) the file names any other global ("refused to load 'posix.system'") or
            makes a call no real file makes, or is truncated or corrupt.
    """
    with open(path, "rb") as file:
        state = restricted_load(file, path, PADDLE_GLOBALS, error, "Paddle weights file", encoding="latin1")
    if isinstance(state, dict):
        try:
            state = _join_split_arrays(state)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise error(f"{path}: not a readable Paddle weights file (its split arrays do not join: {exc})") from None
        state.pop("StructuredToParameterName@@", None)
    return state
