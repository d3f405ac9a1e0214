"""The commands that look before training: `paddle-cls configs` (the shipped configs), `models` (every model with
its parameters and FLOPs) and `lr-find` (the learning-rate range test); `cli.main` dispatches to them."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from matplotlib.figure import Figure

from .cli_common import config_parser, run_command
from .config import load_config, shipped_configs, shipped_configs_dir
from .engine.lr_find import END_LR, START_LR, STEPS, lr_find, plot_lr_find, summary, sweep_rates
from .errors import ConfigError, PaddleClsError

DEFAULT_IMAGE_SHAPE = [3, 224, 224]
LR_FIND_PLOT = "lr_find.png"


def configs_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls configs`: the shipped configs, each with the source it follows."""
    argparse.ArgumentParser(prog=prog, description="List the shipped configs (use them as -c NAME).").parse_args(argv)
    print(f"shipped configs, in {shipped_configs_dir()}:")
    for name, source in shipped_configs().items():
        print(f"{name:<18} {source}")
    return 0


def models_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls models`: every model `Arch.name` takes, with its family, parameters and FLOPs at one input."""
    parser = argparse.ArgumentParser(prog=prog, description="List every model Arch.name takes (the tutorials' "
                                     "networks and all of paddle.vision's) with its family, parameters and FLOPs "
                                     "(paddle.flops's count) for one input of the config's Global.image_shape "
                                     "(without -c: 3x224x224).")
    parser.add_argument("-c", "--config", help="a YAML config file or a shipped config's name: its "
                        "Global.image_shape, and its Arch.num_classes where that is a number")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="Section.key=value")
    args = parser.parse_args(argv)
    shape, classes = DEFAULT_IMAGE_SHAPE, None
    if args.config:
        try:
            config = load_config(args.config, args.override)
        except PaddleClsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        shape, classes = config["Global"]["image_shape"], config["Arch"].get("num_classes")
        classes = classes if isinstance(classes, int) and not isinstance(classes, bool) else None
    from .models.complexity import model_table  # builds every model: loaded only when asked for

    print(f"models at input {'x'.join(map(str, shape))}, num_classes: "
          + (str(classes) if classes else "each model's default (paddle.vision's: 1000)"))
    print(f"{'name':<22}{'family':<28}{'parameters':>14}{'FLOPs':>18}")
    for row in model_table(shape, classes):
        cost = f"{row['flops']:>18,}" if row["problem"] is None else f"  cannot take it: {row['problem']}"
        print(f"{row['name']:<22}{row['family']:<28}{row['parameters']:>14,}{cost}")
    return 0


def check_plot_path(path: str) -> None:
    """ConfigError when the figure cannot be written to `path`: a missing folder, or a format matplotlib lacks."""
    folder = os.path.dirname(os.path.abspath(path))
    formats = Figure().canvas.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in formats:
        raise ConfigError(f"lr-find: --out {path}: give a file name ending in one of .{', .'.join(sorted(formats))} "
                          f"(default {LR_FIND_PLOT})")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ConfigError(f"lr-find: --out {path}: the folder {folder} does not exist or cannot be written")


def lr_find_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls lr-find`: the learning-rate range test on a copy of the config's model; prints the suggested
    rate and writes the plot (`--out`), nothing else. Exit 1 when the loss diverged too early to suggest one."""
    parser = config_parser("Find a learning rate (Leslie Smith's range test, as fastai's lr_find): train a fresh "
                           "copy of the config's model (with its pretrained weights) for --steps batches while "
                           "the rate grows exponentially from --start-lr to --end-lr, stopping when the loss "
                           "diverges; print a table and the suggested rate, and plot loss against rate. Writes "
                           "only the plot: Global.output_dir and every weights file are left alone.", prog)
    parser.add_argument("--start-lr", type=float, default=START_LR, help=f"the first rate (default {START_LR:g})")
    parser.add_argument("--end-lr", type=float, default=END_LR, help=f"the last rate (default {END_LR:g})")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"training batches, at most (default {STEPS}, fastai's num_it)")
    parser.add_argument("--out", default=LR_FIND_PLOT,
                        help=f"the plot: .png, .pdf, .svg, ... (default {LR_FIND_PLOT}, in the current folder)")
    args = parser.parse_args(argv)
    try:  # the switches first: a mistake there costs no loading
        sweep_rates(args.start_lr, args.end_lr, args.steps)
        check_plot_path(args.out)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def body(config, args):
        result = lr_find(config, args.start_lr, args.end_lr, args.steps)
        plot_lr_find(result, args.out)
        print(summary(result))
        print(f"plot: {os.path.abspath(args.out)}")
        return 0 if result.suggestion is not None else 1

    return run_command(body, args, "lr-find")
