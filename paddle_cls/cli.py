"""The command line behind `tools/*.py`: `-c CONFIG` and repeated `-o Section.key=value`, plus each tool's own
switches. A user error (bad config, missing data or model file) prints one line and exits with status 2."""
import argparse
import sys

from .config import dump_config, load_config
from .data.check import check_data
from .engine import evaluate, predict, train
from .engine.components import build_model
from .engine.export import export
from .errors import PaddleClsError, TrainingInterrupted
from .models import print_summary


def _parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=True, help="YAML config, e.g. configs/resnet18.yml")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="Section.key=value",
                        help="override a config value (parsed as YAML); repeatable")
    return parser


def _run(body, args):
    try:
        return body(load_config(args.config, args.override), args) or 0
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except PaddleClsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def train_main(argv=None):
    """`tools/train.py`: train, then test the best model."""
    parser = _parser("Train a model from a config, then test the best model.")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--summary", action="store_true",
                        help="print the model's layer-by-layer output and parameter shapes and exit")
    args = parser.parse_args(argv)

    def body(config, args):
        if args.print_config:
            print(dump_config(config), end="")
            return 0
        if args.summary:
            print_summary(build_model(config), [1] + config["Global"]["image_shape"])
            return 0
        train(config)
        return 0

    return _run(body, args)


def _config_only(description, command, argv):
    # A tool whose only arguments are -c and -o: run `command(config)`.
    args = _parser(description).parse_args(argv)

    def body(config, args):
        command(config)
        return 0

    return _run(body, args)


def eval_main(argv=None):
    """`tools/eval.py`: the test accuracy and loss of a saved model, per class, with a confusion matrix."""
    return _config_only("Evaluate a saved model on the test split.", evaluate, argv)


def export_main(argv=None):
    """`tools/export.py`: write a Paddle inference model of the trained weights, with its preprocessing."""
    return _config_only("Export the trained model (Global.checkpoint or the best model) for paddle.inference.",
                        export, argv)


def predict_main(argv=None):
    """`tools/predict.py`: classify image files and test-split samples with a saved model."""
    parser = _parser("Classify image files (PNG, JPG, ...) or test-split samples with a saved model.")
    parser.add_argument("images", nargs="*", help="image files")
    parser.add_argument("--index", type=int, action="append", default=[], help="a test-split sample; repeatable")
    parser.add_argument("--topk", type=int, default=3, help="how many labels to show for each image")
    parser.add_argument("--inference", action="store_true",
                        help="run the model exported by tools/export.py through paddle.inference")
    args = parser.parse_args(argv)
    if not args.images and not args.index:
        parser.error("give image files and/or --index N")

    def body(config, args):
        _, failures = predict(config, args.images, args.index, args.topk, exported=args.inference)
        for failure in failures:
            print(f"error: {failure}", file=sys.stderr)
        return 2 if failures else 0

    return _run(body, args)


def check_data_main(argv=None):
    """`tools/check_data.py`: index every split and decode every image; list all problems, exit 1 if any."""
    args = _parser("Check a config's data: every split indexed, every image file decoded, all problems "
                   "listed at once.").parse_args(argv)

    def body(config, args):
        problems = check_data(config)
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s) found" if problems else "All images decode; the data is ready to train on")
        return 1 if problems else 0

    return _run(body, args)
