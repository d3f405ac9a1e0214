"""Build objects from `{name: X, **kwargs}` config entries through plain name tables."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from .config import choices_hint
from .errors import ConfigError


def build_choice(table: Mapping[str, Callable], spec: Any, where: str) -> Callable:
    """`table[spec['name']]`, not called: ConfigError when `spec` has no name or one `table` does not hold."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"{where} must be a mapping with a 'name' key, e.g. name: {next(iter(table))}")
    if spec["name"] not in table:
        raise ConfigError(f"{where}.name: unknown name {spec['name']!r} ({choices_hint(spec['name'], list(table))})")
    return table[spec["name"]]


def build(table: Mapping[str, Callable], spec: Any, where: str, **fixed: Any) -> Any:
    """Create `table[spec['name']](**fixed, **rest_of_spec)`, with errors that name the config path.

    Args:
        table: the names a config may use, e.g. `MODELS`.
        spec: the config entry, e.g. `{'name': 'Model_ResNet18', 'num_classes': 10}`.
        where: its path in the config for messages, e.g. 'Arch'.
        fixed: arguments the toolkit supplies (parameters, data folder), not the config.

    Raises:
        ConfigError: no `name`, an unknown name (with the valid ones and the nearest), or an unknown argument.
    """
    factory = build_choice(table, spec, where)
    kwargs = dict(spec)
    name = kwargs.pop("name")
    parameters = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key in kwargs:
        if key in fixed or (not takes_any and key not in parameters):
            valid = [p for p in parameters
                     if p not in fixed and parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]
            raise ConfigError(f"unknown key {where}.{key} ({choices_hint(key, ['name'] + valid)})")
    try:
        return factory(**fixed, **kwargs)
    except TypeError as exc:
        # Paddle's zoo functions take **kwargs and pass them on, so a bad key only shows up here.
        raise ConfigError(f"{where}: {name} does not accept these arguments ({exc})") from None
