"""The command line shared by `tools/*.py`: `-c CONFIG` and repeated `-o Section.key=value`."""
import argparse
import sys

from .config import load_config
from .errors import PaddleClsError


def parse_args(description, argv=None):
    """Parse `-c/--config` and repeated `-o/--override`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=True, help="YAML config, e.g. configs/resnet18.yml")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="Section.key=value",
                        help="override a config value (parsed as YAML); repeatable")
    return parser.parse_args(argv)


def run(command, description, argv=None):
    """Load the config named on the command line and run `command(config)`.

    A user error (bad config, missing data or model file) prints one line and exits with status 2.
    """
    args = parse_args(description, argv)
    try:
        command(load_config(args.config, args.override))
    except PaddleClsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
