"""YAML configs in PaddleClas-style sections, `-o Section.key=value` overrides, and their checks.

Sections: Global, Arch, Loss, Optimizer, DataLoader, Metric. `Arch`, `Loss`, `Optimizer`, `Metric` and each
`DataLoader.<split>.dataset` are written `{name: X, **kwargs}`; their names and keys are checked when they
are built (see `build.py`). `Global` and `DataLoader` keys are checked here.
"""
import copy
import difflib
import os
import re
from typing import Any, Iterable, List, Tuple

import yaml

from .config_schema import (GLOBAL_CHECKS, GLOBAL_DEFAULTS, LOADER_CHECKS, LOADER_SPLITS, REQUIRED_SECTIONS,
                            SECTION_DEFAULTS, SECTIONS, loader_defaults, section_spec)
from .errors import ConfigError
from .utils.text import read_text


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; learning rates are written that way, so read it as a float."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.\d[\d_]*(?:[eE][-+]?\d+)?|\.inf|\.nan)$", re.I),
    list("-+0123456789."),
)


def _parse_yaml(text):
    return yaml.load(text, Loader=_ConfigLoader)


# PaddleClas writes a split's loader settings in two sub-sections, which mean our flat keys
_PADDLECLAS_LOADER = {"sampler": ("name", "batch_size", "shuffle", "drop_last"),
                      "loader": ("num_workers", "use_shared_memory")}
_PADDLECLAS_SAMPLERS = ("DistributedBatchSampler", "BatchSampler")


def _flatten_paddleclas_loader(loader, split, overriding=False):
    """Move a PaddleClas split's `sampler: {name, batch_size, shuffle, drop_last}` and `loader: {num_workers,
    use_shared_memory}` into the split's own keys (in place). Both samplers mean ours: a data-parallel run
    shares batches out by itself, and the loaders check shared memory before they start workers.

    In the file, a key given both ways with two values is an error; `overriding` (after `-o`, where the
    sub-sections can only come from an override) lets the sub-section's value win."""
    for part, keys in _PADDLECLAS_LOADER.items():
        values = loader.pop(part, None)
        if values is None:
            continue
        where = f"DataLoader.{split}.{part}"
        if not isinstance(values, dict):
            raise ConfigError(f"{where} must be a mapping of {', '.join(keys)}, got {values!r}")
        for key, value in values.items():
            if key not in keys:
                raise ConfigError(f"unknown key {where}.{key} ({choices_hint(key, keys)})")
            if key == "name" and value not in _PADDLECLAS_SAMPLERS:
                raise ConfigError(f"{where}.name: {value} is not supported ({', '.join(_PADDLECLAS_SAMPLERS)} are; "
                                  "they batch in order or shuffled, as shuffle says)")
            if key == "use_shared_memory" and not isinstance(value, bool):
                raise ConfigError(f"{where}.use_shared_memory must be true or false, got {value!r}")
            if key in ("name", "use_shared_memory"):
                continue
            if not overriding and key in loader and loader[key] != value:
                raise ConfigError(f"DataLoader.{split}.{key}: {loader[key]!r} and {where}.{key}: {value!r} differ; "
                                  "give it once")
            loader[key] = value


def choices_hint(value: Any, valid: Iterable) -> str:
    """'valid: a, b, c; did you mean b?' for error messages."""
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"valid: {', '.join(map(str, valid))}{hint}"


def parse_override(text: str) -> Tuple[List[str], Any]:
    """Split `Section.key=value` into (['Section', 'key'], value), the value parsed as YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"malformed override {text!r}: expected -o Section.key=value, e.g. -o Global.epochs=5")
    try:
        value = _parse_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return parts, value


def apply_override(config: dict, text: str) -> None:
    """Set the value of one `-o Section.key=value` override in `config` (in place)."""
    parts, value = parse_override(text)
    node = config
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {text!r}: {'.'.join(parts[:depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _check_section(values, checks, where):
    for key, value in values.items():
        if key not in checks:
            raise ConfigError(f"unknown key {where}.{key} ({choices_hint(key, list(checks))})")
        check, expected = checks[key]
        if not check(value):
            raise ConfigError(f"{where}.{key} must be {expected}, got {value!r}")


def validate(config: dict, source: str = "config") -> None:
    """Check sections, Global and DataLoader keys and values; raise ConfigError naming the first problem."""
    for section in config:
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {section} ({choices_hint(section, SECTIONS)})")
    for section in REQUIRED_SECTIONS:
        if not isinstance(config.get(section), dict):
            raise ConfigError(f"{source}: section {section} is missing or not a mapping")
    _check_section(config["Global"], GLOBAL_CHECKS, "Global")
    loaders = config["DataLoader"]
    for split, loader in loaders.items():
        if split not in LOADER_SPLITS:
            raise ConfigError(f"unknown key DataLoader.{split} ({choices_hint(split, LOADER_SPLITS)})")
        if not isinstance(loader, dict) or "dataset" not in loader:
            raise ConfigError(f"DataLoader.{split} must be a mapping with a 'dataset' entry")
        _flatten_paddleclas_loader(loader, split, overriding=True)
        _check_section(loader, LOADER_CHECKS, f"DataLoader.{split}")
    if "Train" not in loaders:
        raise ConfigError("DataLoader.Train is missing: training needs a training split")
    settings = config["Global"]
    if settings["eval_steps"] and settings["eval_per_epoch"]:
        raise ConfigError("Global.eval_steps and Global.eval_per_epoch both ask for evaluations: set one of them "
                          "(eval_steps: 0 to evaluate once per epoch)")
    if (settings["eval_steps"] or settings["eval_per_epoch"]) and "Eval" not in loaders:
        raise ConfigError("evaluation is asked for (Global.eval_steps or eval_per_epoch), but no DataLoader.Eval")
    if settings["engine"] == "hapi" and settings["amp"] not in ("off", False):
        # At O2 paddle.Model evaluates without auto_cast (float32 images into float16 weights), saves float16
        # files (no save_dtype) and, data-parallel, decorates the network after DataParallel has wrapped it.
        if settings["amp"] == "O2":
            raise ConfigError("Global.amp: O2 does not work on Global.engine: hapi (paddle.Model evaluates its "
                              "float16 weights without auto_cast); use Global.amp: O1, or Global.engine: runner")
        if settings["amp_dtype"] != "float16":
            raise ConfigError("Global.amp_dtype: paddle.Model's AMP supports float16 only; use bfloat16 with "
                              "Global.engine: runner")


def shipped_configs_dir() -> str:
    """The folder of the configs shipped with the package: `paddle_cls/configs` when installed from a wheel,
    the clone's `configs/` when run from the source tree (or installed with `pip install -e`)."""
    installed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def shipped_configs() -> dict:
    """Shipped config name -> its first comment line (the source it follows)."""
    folder, found = shipped_configs_dir(), {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".yml"):
            with open(os.path.join(folder, name), encoding="utf-8") as file:
                found[name[:-4]] = file.readline().lstrip("#").strip()
    return found


def find_config(path: str) -> str:
    """The config file `-c path` means: the file itself (or `path.yml`) when it exists, as a config of your own
    always wins; else the shipped config of that name (`resnet18`, `resnet18.yml` or `configs/resnet18.yml`)."""
    for own in (path, f"{path}.yml"):
        if os.path.isfile(own):
            return own
    name = os.path.basename(path)
    shipped = os.path.join(shipped_configs_dir(), name if name.endswith(".yml") else f"{name}.yml")
    if os.path.isfile(shipped):
        return shipped
    raise ConfigError(f"config file {path} not found, and no shipped config is named {name!r} "
                      f"(shipped: {', '.join(shipped_configs())}; `paddle-cls configs` lists them)")


def load_config(path: str, overrides: Iterable[str] = ()) -> dict:
    """Read a YAML config, apply `-o` overrides, check it and fill in the defaults of Global and of each
    DataLoader split (`config_schema`).

    Args:
        path: the YAML file, or the name of a shipped config (see `find_config`).
        overrides: strings `Section.key=value`; values are parsed as YAML (`5`, `true`, `[1, 2]`, `null`).

    Returns:
        The config as nested dicts.
    """
    path = find_config(path)
    try:
        config = _parse_yaml(read_text(path, ConfigError, "config file"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected sections (Global, Arch, ...) at the top level")
    config = copy.deepcopy(config)
    config["Global"] = {**GLOBAL_DEFAULTS, **(config.get("Global") or {})}
    loaders = config.get("DataLoader")
    for split, loader in (loaders.items() if isinstance(loaders, dict) else ()):
        if isinstance(loader, dict):
            _flatten_paddleclas_loader(loader, split)  # before the overrides, which then win
    for text in overrides:
        apply_override(config, text)
    validate(config, path)
    for section in SECTION_DEFAULTS:
        config[section] = section_spec(config, section)
    for split, loader in config["DataLoader"].items():  # what takes effect, as --print-config shows
        for key, value in loader_defaults(split).items():
            loader.setdefault(key, value)
    if config["Global"]["amp"] is False:  # YAML 1.1 reads a bare `off` as false
        config["Global"]["amp"] = "off"
    return config


def dump_config(config: dict) -> str:
    """The config as YAML text, sections in the usual order."""
    ordered = {section: config[section] for section in SECTIONS if section in config}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)
