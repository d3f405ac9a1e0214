"""What the commands that take a config share: `-c CONFIG` and repeated `-o Section.key=value`, and running a
command's body with a user error printed as one line (exit 2)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional

from .config import load_config
from .errors import PaddleClsError, TrainingInterrupted
from .utils.distributed import rank, run_alone, world_size


def config_parser(description: str, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """A parser taking `-c/--config` (required) and repeated `-o/--override`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-c", "--config", required=True,
                        help="a YAML config file, or a shipped config's name (resnet18; see `paddle-cls configs`)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="Section.key=value",
                        help="override a config value (parsed as YAML); repeatable")
    return parser


def run_command(body: Callable[[dict, argparse.Namespace], Optional[int]], args: argparse.Namespace,
                command: Optional[str] = None) -> int:
    """Run `body(config, args)`, printing a user error as one line (exit 2). A `command` that one process does
    whole runs on rank 0 alone under `paddle.distributed.launch`; the other ranks say so and exit 0."""
    if command and world_size() > 1:
        if rank() != 0:
            print(f"{command}: process {rank()} of {world_size()} has nothing to do: under "
                  f"paddle.distributed.launch, process 0 runs {command} alone, as a single process")
            return 0
        run_alone()
    try:
        return body(load_config(args.config, args.override), args) or 0
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except PaddleClsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
