"""Measuring training, data loading and inference speed on the machine at hand, printed as tables:
`paddle-cls benchmark` or `python tools/benchmark.py` [--quick] [--json PATH].

Side by side: the engines against a bare loop, the CPU training path against Paddle's default and PyTorch, the
data path, CPU threads, data parallel. Everything is
measured in the one run; nothing here is asserted by the test suite, and nothing in the library imports it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from typing import List, Optional, Sequence

import paddle

from ..utils.logger import logger
from ..utils.runtime import default_cpu_threads, set_cpu_threads
from .inference import inference_table, predictor_table
from .loading import folder_loader_table, loader_table
from .serving import serving_table
from .training import (CPU_PATHS, ENGINES, MODEL_INPUTS, cpu_training_table, images_per_second, launch_workers,
                       memory_growth)


def run(models: Sequence[str] = ("LeNet", "MyNet", "Model_ResNet18", "resnet18"), steps: int = 20, batch_size: int = 32,
        quick: bool = False) -> dict:
    """Measure everything and return the results as a dict (see `format_table`)."""
    on_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    paddle.set_device("gpu:0" if on_gpu else "cpu")
    threads = default_cpu_threads()
    if not on_gpu:
        set_cpu_threads(threads)
    results = {"machine": {"python": platform.python_version(), "paddle": paddle.__version__,
                           "device": "gpu:0" if on_gpu else f"cpu, {threads} threads", "cores": os.cpu_count()},
               "engines": []}
    for name in models:
        row = {"model": name}
        for engine in ENGINES:
            row[engine] = round(images_per_second(name, engine, steps, batch_size), 1)
        for engine in ("RunnerV3", "hapi fit"):
            row[f"{engine} / bare"] = round(row[engine] / row["bare loop"], 3)
        results["engines"].append(row)
    if quick:
        return results
    if not on_gpu:
        results["cpu_training"] = cpu_training_table()
    results["inference"] = inference_table()
    results["predictor"] = predictor_table()
    results["loader"] = loader_table()
    results["folder_loader"] = folder_loader_table()
    results["memory_mb_after_each_epoch"] = memory_growth()
    if not on_gpu:
        set_cpu_threads(1)
        one = images_per_second("Model_ResNet18", "bare loop", steps, batch_size, repeats=1)
        set_cpu_threads(threads)
        default = images_per_second("Model_ResNet18", "bare loop", steps, batch_size, repeats=1)
        parallel = launch_workers(2, steps, batch_size)
        results["cpu_scaling"] = {"1 thread": round(one, 1), f"default ({threads} threads)": round(default, 1),
                                  "2 data-parallel processes": round(parallel, 1),
                                  "default / 1 thread": round(default / one, 2),
                                  "2 processes / 1 thread": round(parallel / one, 2)}
    return results


def format_table(results: dict) -> str:
    """The results as plain-text tables."""
    lines = [f"paddle {results['machine']['paddle']} on {results['machine']['device']}"]
    if "engines" in results:
        header = ["model", *ENGINES, "RunnerV3 / bare", "hapi fit / bare"]
        lines += ["", "training images/s", " | ".join(f"{h:>16}" for h in header)]
        for row in results["engines"]:
            lines.append(" | ".join(f"{row[h]:>16}" for h in header))
    if "cpu_training" in results:
        lines += ["", *format_cpu_training(results["cpu_training"])]
    if "loader" in results:
        lines += ["", "the 40,000-image CIFAR-10 train split: building it, then one shuffled pass in batches of 64"]
        lines += [f"{row['method']:>18}: peak {row['peak_mb']} MB over import paddle, built in {row['build_s']} s, "
                  f"read at {row['read_images_per_s']} images/s" for row in results["loader"]]
        lines += ["", f"RSS after each of 5 epochs (MB): {results['memory_mb_after_each_epoch']}"]
    if "folder_loader" in results:
        lines += ["", "your own photos: 12 MP JPEGs through configs/imagefolder.yml's training loader, images/s"]
        lines += [f"{row['loader']:>40}: {row['images_per_s']}" for row in results["folder_loader"]]
    if "inference" in results:
        lines += ["", "resnet18 inference (10 classes, 3x32x32), images/s and ratio to dygraph"]
        for row in results["inference"]:
            lines.append(f"batch {row['batch']:>3}: " + ", ".join(
                f"{key} {value}" for key, value in row.items() if key != "batch"))
    if "predictor" in results:
        lines += ["", "Predictor on 12 MP JPEG files (imagefolder.yml's test steps, resnet18 at 224 px), images/s"]
        lines += [", ".join(f"{key} {value}" for key, value in row.items()) for row in results["predictor"]]
    if "serving" in results:
        lines += ["", "paddle-cls serve, resnet18 export at 224 px, one JPEG per request; vs model: over the "
                  "model's own batch-32 images/s"]
        lines += [f"{row['upload']:>9} {row['clients']:>3} clients: {row['images_per_s']} images/s, "
                  f"vs model {row['vs_model']}, "
                  f"p50 {row['p50_ms']} ms, "
                  f"p99 {row['p99_ms']} ms, errors {row['errors']}, mean batch {row['mean_batch']}, "
                  f"server RSS {row['rss_before_mb']} -> "
                  f"{row['rss_after_mb']} MB" for row in results["serving"]]
    if "cpu_scaling" in results:
        lines += ["", "Model_ResNet18 on CPU, images/s"]
        lines += [f"{key:>28}: {value}" for key, value in results["cpu_scaling"].items()]
    return "\n".join(lines)


def format_cpu_training(rows: List[dict]) -> List[str]:
    """The CPU training table (`cpu_training_table`'s rows) as lines of text."""
    columns = ["model", "batch", *CPU_PATHS, "ours / paddle", "paddle / pytorch", "ours / pytorch", "load"]
    memory = [key for key in rows[0] if key.endswith("peak MB")] if rows else []
    lines = [f"CPU training images/s (Adam, fp32, {rows[0]['threads'] if rows else '?'} threads): Paddle's default "
             "path, ours (use_cpu_conv), PyTorch on the same model" + (", peak RSS over a step" if memory else "") +
             "; load: the 1-minute load average",
             " | ".join(f"{h:>16}" for h in columns + memory)]
    lines += [" | ".join(f"{row[h]!s:>16}" for h in columns + memory) for row in rows]
    if rows and rows[0]["pytorch"] == "not installed":
        lines.append("(PyTorch is not installed here: pip install torch torchvision for its column)")
    return lines


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """`paddle-cls benchmark [--quick | --serve | --photos | --cpu-training] [--steps N] [--batch-size B]
    [--json PATH]`."""
    parser = argparse.ArgumentParser(prog=prog, description="Measure training and data-loading speed; print a table.")
    parser.add_argument("--steps", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=list(MODEL_INPUTS), choices=list(MODEL_INPUTS))
    parser.add_argument("--quick", action="store_true", help="engines only (no loader, memory or scaling runs)")
    parser.add_argument("--serve", action="store_true", help="only the serving table (needs paddle_cls[serve])")
    parser.add_argument("--photos", action="store_true",
                        help="only the 12 MP photo tables: Predictor, the image-folder loader, serving")
    parser.add_argument("--cpu-training", action="store_true",
                        help="only the CPU training table: Paddle's default path, ours and PyTorch")
    parser.add_argument("--json", default="benchmark.json", help="where to write the results")
    args = parser.parse_args(argv)
    logger.setLevel(logging.WARNING)  # RunnerV3's own lines would drown the table
    if args.serve:
        results = {"machine": {"paddle": paddle.__version__, "device": paddle.get_device()},
                   "serving": serving_table() + serving_table(size=(640, 480))}
    elif args.photos:
        results = {"machine": {"paddle": paddle.__version__, "device": paddle.get_device()},
                   "predictor": predictor_table(), "folder_loader": folder_loader_table(),
                   "serving": serving_table() + serving_table(size=(640, 480))}
    elif args.cpu_training:
        paddle.set_device("cpu")
        results = {"machine": {"paddle": paddle.__version__, "device": "cpu"},
                   "cpu_training": cpu_training_table()}
    else:
        results = run(args.models, args.steps, args.batch_size, args.quick)
    print(format_table(results))
    with open(args.json, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    print(f"\nwritten to {args.json}")
    return 0
