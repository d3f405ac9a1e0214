"""Checks on how an API is called."""
from __future__ import annotations

import functools
import inspect
from typing import Callable, TypeVar

Function = TypeVar("Function", bound=Callable)


def refuse_unknown_keywords(function: Function) -> Function:
    """Make `function` refuse a keyword it does not take with one line naming it and the valid ones (Python's
    own TypeError names only the wrong one), so that a misspelt option fails instead of being ignored.

    Raises (from the wrapped function):
        TypeError: `'<qualified name>: unknown keyword 'x' (valid: a, b, c)'`.
    """
    parameters = inspect.signature(function).parameters.values()
    valid = [p.name for p in parameters
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "cls")]

    @functools.wraps(function)
    def checked(*args, **kwargs):
        unknown = [name for name in kwargs if name not in valid]
        if unknown:
            raise TypeError(f"{function.__qualname__}: unknown keyword {unknown[0]!r} (valid: {', '.join(valid)})")
        return function(*args, **kwargs)

    return checked
