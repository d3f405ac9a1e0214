"""The command line: `paddle-cls COMMAND` (or `python -m paddle_cls COMMAND`) and `tools/*.py`, taking `-c CONFIG`
(a file, or the name of a shipped config) and repeated `-o Section.key=value`, plus each command's own switches.
A user error (bad config, missing data or model file) prints one line and exits with status 2."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Tuple

from .cli_common import config_parser, run_command
from .cli_inspect import configs_main, lr_find_main, models_main
from .config import dump_config, load_config
from .data.check import check_data
from .deploy import evaluate, export, predict
from .deploy.cam import ImageExplainer
from .deploy.backends import BACKENDS, EXPORT_DIR, choose_engine, onnxruntime_installed, read_export_info
from .deploy.trained import trained_weights_path
from .engine import train
from .engine.components import build_model
from .errors import CheckpointError, PaddleClsError
from .models import print_summary
from .utils.runtime import resolve_device


def train_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls train`, `tools/train.py`: train, then test the best model."""
    parser = config_parser("Train a model from a config, then test the best model.", prog)
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

    return run_command(body, args)


def _engine_option(parser):
    parser.add_argument("--engine", default="auto", choices=("auto", *BACKENDS),
                        help="dygraph: the Python model; inference, onnxruntime: the export (tools/export.py); "
                             "auto (default): the fastest engine export verified for these weights, else dygraph")


def eval_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls eval`, `tools/eval.py`: the test accuracy and loss of a saved model, per class, with a
    confusion matrix."""
    parser = config_parser("Evaluate a saved model on the test split.", prog)
    _engine_option(parser)
    args = parser.parse_args(argv)

    def body(config, args):
        evaluate(config, args.engine)

    return run_command(body, args, "eval")


def export_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls export`, `tools/export.py`: write a Paddle inference model of the trained weights (and with
    --onnx an ONNX model), with its preprocessing, each checked against the trained model."""
    parser = config_parser("Export the trained model (Global.checkpoint or the best model) for paddle.inference, "
                     "checked against it on test images.", prog)
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx (needs paddle_cls[onnx])")
    args = parser.parse_args(argv)

    def body(config, args):
        export(config, onnx=args.onnx)

    return run_command(body, args, "export")


def predict_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls predict`, `tools/predict.py`: classify image files and test-split samples with a saved model."""
    parser = config_parser("Classify image files (PNG, JPG, ...) or test-split samples with a saved model.", prog)
    parser.add_argument("images", nargs="*", help="image files")
    parser.add_argument("--index", type=int, action="append", default=[], help="a test-split sample; repeatable")
    parser.add_argument("--topk", type=int, default=3, help="how many labels to show for each image")
    _engine_option(parser)
    parser.add_argument("--inference", action="store_true", help="the same as --engine inference")
    parser.add_argument("--cam", action="store_true",
                        help="also write where the model looks for its top-1 class (Grad-CAM) over each image, to "
                             "<Global.output_dir>/cam/<image name>.png; needs the trained dygraph weights "
                             "(the .pdparams), not the export: runs --engine dygraph")
    parser.add_argument("--cam-layer", metavar="NAME", help="the sublayer Grad-CAM looks at, by its name in the "
                        "model (e.g. layer3 of resnet18); default the last convolutional block. Implies --cam")
    args = parser.parse_args(argv)
    if not args.images and not args.index:
        parser.error("give image files and/or --index N")

    def body(config, args):
        engine = "inference" if args.inference else args.engine
        cam = args.cam or args.cam_layer is not None
        _, failures = predict(config, args.images, args.index, args.topk, engine=engine, cam=cam,
                              cam_layer=args.cam_layer)
        for failure in failures:
            print(f"error: {failure}", file=sys.stderr)
        return 2 if failures else 0

    return run_command(body, args, "predict")


def check_data_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls check-data`, `tools/check_data.py`: index every split and decode every image; list all
    problems, exit 1 if any."""
    args = config_parser("Check a config's data: every split indexed, every image file decoded, all problems "
                   "listed at once.", prog).parse_args(argv)

    def body(config, args):
        problems = check_data(config)
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s) found" if problems else "All images decode; the data is ready to train on")
        return 1 if problems else 0

    return run_command(body, args, "check-data")


def benchmark_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls benchmark`: training, loading and inference speed on this machine, as tables."""
    from .benchmarks import main as benchmark  # measuring code, loaded only when asked for

    return benchmark(argv, prog)


SERVE_PORT = 8866


def serve_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls serve`: an HTTP API and a web page over the exported model (needs paddle_cls[serve])."""
    parser = argparse.ArgumentParser(prog=prog, description="Serve an exported model over HTTP: POST /predict, "
                                     "GET /health, GET /info, and a web page at /.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", "--config", help="the config it was trained with: serves <output_dir>/inference")
    source.add_argument("--model", help="an export folder (holding preprocess.json)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="Section.key=value")
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default): this machine only; 0.0.0.0: all")
    parser.add_argument("--port", type=int, default=SERVE_PORT)
    parser.add_argument("--engine", default="auto", choices=("auto", "inference", "onnxruntime"))
    parser.add_argument("--topk", type=int, default=3, help="labels per image unless the request asks otherwise")
    parser.add_argument("--max-upload-mb", type=float, default=8.0, help="largest request body, in MB")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="most images run together (a request with more runs alone)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long a batch waits for more requests when none is being decoded")
    parser.add_argument("--max-gather-ms", type=float, default=1000.0,
                        help="how long a batch waits for requests still being decoded (0: as --max-wait-ms)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the engine (default: all)")
    parser.add_argument("--device", default=None, help="auto, cpu, gpu or gpu:N: where the inference engine runs "
                        "(default: the config's Global.device with -c, else auto); onnxruntime runs on the CPU")
    args = parser.parse_args(argv)
    try:
        import uvicorn

        from .serving.app import create_app
    except ImportError as exc:
        print(f"error: serving needs FastAPI and uvicorn ({exc}): pip install 'paddle_cls[serve]'", file=sys.stderr)
        return 2
    try:
        folder, engine, device = serving_source(args)
        # Grad-CAM (?cam=1) needs the trained dygraph model, which only a config names
        explainer = ImageExplainer(load_config(args.config, args.override)) if args.config else None
        app = create_app(folder, engine, args.threads, int(args.max_upload_mb * 2**20), args.batch_size,
                         args.max_wait_ms / 1000, args.topk, device, explainer, args.max_gather_ms / 1000)
    except PaddleClsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Serving {folder} ({engine} on {app.state.device}) at http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def serving_source(args: argparse.Namespace) -> Tuple[str, str, str]:
    """`(export folder, engine, Paddle device string)` for `serve`'s -c/--model, --engine and --device (default:
    the config's Global.device, else auto)."""
    if args.config:
        config = load_config(args.config, args.override)
        setting = ("--device", args.device) if args.device else ("Global.device", config["Global"]["device"])
        device = resolve_device(setting[1], setting[0])
        folder, weights = os.path.join(config["Global"]["output_dir"], EXPORT_DIR), trained_weights_path(config)
        engine = choose_engine(args.engine, folder, weights, device)
        if engine == "dygraph":
            raise CheckpointError(f"no export of {weights} in {folder}: run `paddle-cls export -c {args.config}` "
                                  "(with --onnx for onnxruntime) first")
        return folder, engine, device
    device = resolve_device(args.device or "auto", "--device")
    verified = read_export_info(args.model).get("verified", {})
    if args.engine != "auto":
        return args.model, args.engine, device
    onnx = "onnxruntime" in verified and onnxruntime_installed(device)
    return args.model, "onnxruntime" if onnx else "inference", device


COMMANDS = {"train": train_main, "eval": eval_main, "predict": predict_main, "export": export_main,
            "check-data": check_data_main, "configs": configs_main, "models": models_main, "lr-find": lr_find_main,
            "benchmark": benchmark_main, "serve": serve_main}


def main(argv: Optional[List[str]] = None) -> int:
    """`paddle-cls COMMAND ...` and `python -m paddle_cls COMMAND ...`: one command per tool."""
    import paddle

    from . import __version__

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="paddle-cls", description="Image classification with PaddlePaddle: "
                                     "train, evaluate, predict, export; `paddle-cls COMMAND -h` for each.")
    parser.add_argument("--version", action="version", version=f"paddle_cls {__version__}, paddle {paddle.__version__}")
    parser.add_argument("command", choices=list(COMMANDS))
    args = parser.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    return COMMANDS[args.command](argv[1:], prog=f"paddle-cls {args.command}")
