"""What a config may hold: its sections, and each Global and DataLoader key with its default and its check
(`config.load_config` fills the defaults in, so the resolved config, as `--print-config` shows it, is what runs)."""
import re
from typing import Dict

GLOBAL_DEFAULTS = {
    "engine": "runner",
    "device": "auto",
    "num_threads": None,
    "seed": 100,
    "epochs": 30,
    "output_dir": "./output",
    "data_dir": None,
    "download": True,
    "log_steps": 100,
    "vdl_steps": None,
    "progress": True,
    "eval_steps": 0,
    "eval_per_epoch": False,
    "train_accuracy": False,
    "image_shape": [3, 32, 32],
    "save_name": "last_model.pdparams",
    "save_interval": 1,
    "save_unit": "epoch",
    "resume": None,
    "deterministic": False,
    "amp": "off",
    "amp_dtype": "float16",
    "to_static": False,
    "cpu_conv": "auto",
    "checkpoint": None,
    "pretrained_model": None,
}

SECTIONS = ("Global", "Arch", "Loss", "Optimizer", "DataLoader", "Metric")
REQUIRED_SECTIONS = ("Arch", "Optimizer", "DataLoader")
LOADER_SPLITS = ("Train", "Eval", "Test")

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|gpu|gpu:\d+)$")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# key -> (check, what the value must be)
GLOBAL_CHECKS = {
    "engine": (lambda v: isinstance(v, str), "an engine name"),
    "device": (lambda v: isinstance(v, str) and bool(_DEVICE_PATTERN.match(v)), "auto, cpu, gpu or gpu:N"),
    "num_threads": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1, or null for all usable cores"),
    "seed": (lambda v: v is None or _is_int(v), "an integer or null"),
    "epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "output_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
    "data_dir": (lambda v: v is None or isinstance(v, str), "a path or null"),
    "download": (lambda v: isinstance(v, bool), "true or false"),
    "log_steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: no step log)"),
    "vdl_steps": (lambda v: v is None or (_is_int(v) and v >= 1),
                  "an integer >= 1, or null for every step of a short run and about 1,000 points of a long one"),
    "progress": (lambda v: isinstance(v, bool), "true or false"),
    "eval_steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: no evaluation)"),
    "eval_per_epoch": (lambda v: isinstance(v, bool), "true or false"),
    "train_accuracy": (lambda v: isinstance(v, bool), "true or false"),
    "image_shape": (lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(n) and n > 0 for n in v),
                    "[channels, height, width]"),
    "save_name": (lambda v: isinstance(v, str) and v.endswith(".pdparams") and "/" not in v,
                  "a file name ending in .pdparams"),
    "save_interval": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "save_unit": (lambda v: v in ("epoch", "step"), "epoch or step"),
    "resume": (lambda v: v is None or isinstance(v, str), "auto, a checkpoint folder, or null"),
    "deterministic": (lambda v: isinstance(v, bool), "true or false"),
    "amp": (lambda v: v in ("off", "O1", "O2", False), "off, O1 or O2"),
    "amp_dtype": (lambda v: v in ("float16", "bfloat16"), "float16 or bfloat16"),
    "to_static": (lambda v: isinstance(v, bool), "true or false"),
    "cpu_conv": (lambda v: v in ("auto", True, False), "auto (on a CPU only), true or false"),
    "checkpoint": (lambda v: v is None or isinstance(v, str), "a .pdparams path or null"),
    "pretrained_model": (lambda v: v is None or isinstance(v, str),
                         "a .pdparams file or checkpoint folder to fine-tune from, or null"),
}
LOADER_CHECKS = {
    "dataset": (lambda v: isinstance(v, dict) and "name" in v, "a mapping with a 'name' key"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "shuffle": (lambda v: isinstance(v, bool), "true or false"),
    "drop_last": (lambda v: isinstance(v, bool), "true or false"),
    "num_workers": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "batched": (lambda v: isinstance(v, bool), "true or false"),
    "on_device": (lambda v: isinstance(v, bool), "true or false"),
    "subset": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(n) and n >= 0 for n in v) and v[0] < v[1],
               "[start, stop] with 0 <= start < stop"),
}

# the sections a config may leave out, as they are then built
SECTION_DEFAULTS = {"Loss": {"name": "CrossEntropyLoss"}, "Metric": {"name": "Accuracy"}}


def section_spec(config: dict, section: str) -> dict:
    """`config[section]`, or its default (`SECTION_DEFAULTS`) when the config leaves it out or empty."""
    return config.get(section) or dict(SECTION_DEFAULTS[section])


def loader_defaults(split: str) -> Dict[str, object]:
    """The loader settings of `DataLoader.<split>` that a config may leave out: 64 samples a batch, the training
    split shuffled, the last short batch kept, loading in the main process."""
    return {"batch_size": 64, "shuffle": split == "Train", "drop_last": False, "num_workers": 0}
