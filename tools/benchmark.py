"""Measure training and data-loading speed and print a table: python tools/benchmark.py [--quick] [--json PATH]

Side by side: the engines against a bare loop, the data path, CPU threads, data parallel. Everything is
measured in the one run on the machine at hand; nothing here is asserted by the test suite. A developers'
tool over the installed package, not part of it.
"""
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import paddle
import paddle.nn.functional as F

from paddle_cls.engine.runner import RunnerV3
from paddle_cls.metrics import Accuracy
from paddle_cls.models import MODELS
from paddle_cls.utils.logger import logger
from paddle_cls.utils.runtime import default_cpu_threads


MODEL_INPUTS = {"LeNet": [1, 28, 28], "MyNet": [3, 32, 32], "Model_ResNet18": [3, 32, 32], "resnet18": [3, 32, 32]}


class _ArrayDataset(paddle.io.Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __len__(self):
        return len(self.images)


def _data(shape, batches, batch_size, seed=0):
    rng = np.random.RandomState(seed)
    images = rng.randn(batches * batch_size, *shape).astype(np.float32)
    labels = rng.randint(0, 10, size=batches * batch_size).astype(np.int64)
    return _ArrayDataset(images, labels)


def _model(name):
    paddle.seed(0)
    return MODELS[name](num_classes=10)


def _bare_loop(model, optimizer, loader):
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    loss.item()  # wait for the device before the clock stops


def _runner(model, optimizer, loader):
    RunnerV3(model, optimizer, F.cross_entropy, Accuracy()).train(loader, num_epochs=1, log_steps=0)


def _hapi(model, optimizer, loader):
    hapi = paddle.Model(model)
    hapi.prepare(optimizer, paddle.nn.CrossEntropyLoss())
    hapi.fit(loader, epochs=1, verbose=0, save_dir=None)


ENGINES = {"bare loop": _bare_loop, "RunnerV3": _runner, "hapi fit": _hapi}


def images_per_second(name, engine, steps, batch_size, warmup=2, repeats=3, shape=None):
    """Training throughput of model `name` on engine `engine` over `steps` batches, after `warmup` batches;
    the best of `repeats` timings, so that a moment of load on the machine does not count against an engine.
    `shape`: the input shape, if not the model's usual one."""
    dataset = _data(shape or MODEL_INPUTS[name], warmup + steps, batch_size)
    model = _model(name)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    warm = paddle.io.Subset(dataset, list(range(warmup * batch_size)))
    timed = paddle.io.Subset(dataset, list(range(warmup * batch_size, len(dataset))))
    ENGINES[engine](model, optimizer, paddle.io.DataLoader(warm, batch_size=batch_size))
    loader = paddle.io.DataLoader(timed, batch_size=batch_size)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        ENGINES[engine](model, optimizer, loader)
        best = max(best, steps * batch_size / (time.perf_counter() - start))
    return best


def _peak_rss_child(code):
    """Run `code` in a fresh Python; return (its peak RSS over the RSS after `import paddle` in MB, seconds to
    build the split, seconds to read it). `code` sets `built = time.perf_counter()` once the split is built.

    The peak is VmHWM, this process's own high-water mark: ru_maxrss would carry the parent's over fork+exec.
    """
    # numpy.random before paddle: Paddle 2.6 with NumPy 2 crashes or hangs the other way round
    script = ("import os, time\nimport numpy.random\nimport paddle\n"
              "def rss(field):\n"
              "    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(field))\n"
              "base = rss('VmRSS:')\n"
              "start = time.perf_counter()\n" + code +
              "\nprint((rss('VmHWM:') - base) / 1024, built - start, time.perf_counter() - built)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return tuple(float(value) for value in out.split()[-3:])


def loader_table(images_per_batch=10000):
    """Building the 40,000-image training split: ours against the course's method (same files)."""
    from paddle_cls.data.synthetic import write_cifar10

    root = tempfile.mkdtemp(prefix="cifar-bench-")
    # Batches of unequal length, packed with data_batch_4 first: the archive is read in one pass and its
    # blocks put in order in place.
    sizes = {f"data_batch_{i}": images_per_batch + offset for i, offset in zip(range(1, 5), (-120, 340, -300, 80))}
    sizes.update(data_batch_5=images_per_batch, test_batch=images_per_batch)
    archive = write_cifar10(tempfile.mkdtemp(prefix="cifar-bench-uneven-"), sizes, archive=True,
                            archive_order=("data_batch_4", "data_batch_3", "data_batch_2", "data_batch_1",
                                           "data_batch_5", "test_batch", "batches.meta"))
    folder = write_cifar10(root, images_per_batch)
    # The course's method (float64 scaling, repeated concatenation, per-sample Normalize); only pickle.load is
    # swapped for the restricted unpickler, which reads the same arrays.
    course = (
        "import numpy as np, os\n"
        "from paddle_cls.utils.safe_pickle import safe_load\n"
        "from paddle.vision.transforms import Normalize\n"
        "def load(batch_id):\n"
        f"    with open(os.path.join({folder!r}, 'data_batch_%d' % batch_id), 'rb') as f:\n"
        "        batch = safe_load(f, 'batch', encoding='latin1')\n"
        "    return np.array(batch['data'].reshape((len(batch['data']), 3, 32, 32)) / 255., dtype='float32'), np.array(batch['labels'])\n"
        "imgs, labels = load(1)\n"
        "for i in range(2, 5):\n"
        "    b, l = load(i); imgs, labels = np.concatenate([imgs, b]), np.concatenate([labels, l])\n"
        "t = Normalize(mean=[0.4914, 0.4822, 0.4465], std=[0.2023, 0.1994, 0.2010], data_format='CHW')\n"
        "class Course(paddle.io.Dataset):\n"
        "    def __getitem__(self, i):\n        return t(imgs[i]), labels[i]\n"
        "    def __len__(self):\n        return len(imgs)\n"
        "built = time.perf_counter()\n"
        "for batch in paddle.io.DataLoader(Course(), batch_size=64, shuffle=True):\n    pass\n"
    )
    ours = (
        "from paddle_cls import CIFAR10Dataset\n"
        f"d = CIFAR10Dataset({folder!r}, 'train')\n"
        "built = time.perf_counter()\n"
        "for batch in paddle.io.DataLoader(d, batch_size=64, shuffle=True):\n    pass\n"
    )
    uneven = (
        "from paddle_cls import CIFAR10Dataset\n"
        f"d = CIFAR10Dataset({archive!r}, 'train')\n"
        "built = time.perf_counter()\n"
        "for batch in paddle.io.DataLoader(d, batch_size=64, shuffle=True):\n    pass\n"
    )
    batched = (
        "from paddle_cls import CIFAR10Dataset\n"
        "from paddle_cls.data.batched import CIFAR10BatchLoader\n"
        f"d = CIFAR10Dataset({folder!r}, 'train')\n"
        "built = time.perf_counter()\n"
        "for images, labels in CIFAR10BatchLoader(d, 64, shuffle=True):\n    pass\n"
    )
    rows = []
    for label, code in (("course", course), ("paddle_cls", ours), ("paddle_cls batched", batched),
                        ("paddle_cls, uneven batches in an archive out of order", uneven)):
        peak, build_seconds, read_seconds = _peak_rss_child(code)
        rows.append({"method": label, "peak_mb": round(peak), "build_s": round(build_seconds, 2),
                     "read_images_per_s": round(4 * images_per_batch / read_seconds)})
    return rows


def folder_loader_table(images=160, batch_size=32, workers=(0, 2)):
    """Your own images: JPEG photos (400x300) through configs/imagefolder.yml's training loader (decode,
    RandomResizedCrop 224, flip, colour jitter, normalise) with 0 and 2 workers, beside resnet18's training
    speed at 224 px, to show which of the two is the bottleneck."""
    import matplotlib
    from PIL import Image

    from paddle_cls.config import load_config
    from paddle_cls.data.loader import build_loader

    root = tempfile.mkdtemp(prefix="folder-bench-")
    photo = Image.open(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data",
                                    "grace_hopper.jpg")).convert("RGB")
    rng = np.random.RandomState(0)
    width, height = photo.size
    for index in range(images):
        left, top = rng.randint(width // 4), rng.randint(height // 4)
        folder = os.path.join(root, "train", f"class{index % 4}")
        os.makedirs(folder, exist_ok=True)
        photo.crop((left, top, left + 3 * width // 4, top + 3 * height // 4)).resize((400, 300)).save(
            os.path.join(folder, f"{index}.jpg"), quality=90)
    config_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "imagefolder.yml")
    rows = []
    for count in workers:
        config = load_config(config_path, [f"Global.data_dir={root}", f"DataLoader.Train.num_workers={count}",
                                           f"DataLoader.Train.batch_size={batch_size}"])
        loader = build_loader(config, "Train")
        start, seen = time.perf_counter(), 0
        for batch_images, _ in loader:
            seen += batch_images.shape[0]
        rows.append({"loader": f"{count} workers", "images_per_s": round(seen / (time.perf_counter() - start), 1)})
    model_speed = images_per_second("resnet18", "bare loop", 2, 16, warmup=1, repeats=1, shape=[3, 224, 224])
    rows.append({"loader": "resnet18 training at 224 px", "images_per_s": round(model_speed, 1)})
    return rows


def _launch_workers(count, steps, batch_size):
    """Model_ResNet18 data parallel on CPU: `count` processes under Paddle's launcher; total images/s."""
    log_dir = tempfile.mkdtemp(prefix="bench-dp-")
    script = os.path.join(log_dir, "worker.py")  # the launcher runs a script file, not a module
    with open(script, "w", encoding="utf-8") as file:
        file.write(f"import runpy\nrunpy.run_path({os.path.abspath(__file__)!r})['_worker']({steps}, {batch_size})\n")
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(count), "--log_dir", log_dir,
               script]
    subprocess.run(command, capture_output=True, text=True, check=True)
    rates = []
    for name in os.listdir(log_dir):
        if name.startswith("workerlog"):
            rates += [float(line.split()[-1]) for line in open(os.path.join(log_dir, name)) if line.startswith("RATE ")]
    return sum(rates)


def _worker(steps, batch_size):
    paddle.distributed.init_parallel_env()
    paddle.base.core.set_num_threads(default_cpu_threads())
    model = paddle.DataParallel(_model("Model_ResNet18"))
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    dataset = _data(MODEL_INPUTS["Model_ResNet18"], steps + 2, batch_size, seed=paddle.distributed.get_rank())
    batches = list(paddle.io.DataLoader(dataset, batch_size=batch_size))
    _bare_loop(model, optimizer, batches[:2])
    start = time.perf_counter()
    _bare_loop(model, optimizer, batches[2:])
    print("RATE", steps * batch_size / (time.perf_counter() - start), flush=True)


def memory_growth(epochs=5, steps=20, batch_size=32):
    """RSS (MB) after each epoch of RunnerV3 training MyNet: the trainer must not grow per step."""
    model = _model("MyNet")
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    loader = paddle.io.DataLoader(_data(MODEL_INPUTS["MyNet"], steps, batch_size), batch_size=batch_size)
    runner = RunnerV3(model, optimizer, F.cross_entropy, Accuracy())
    sizes = []
    for _ in range(epochs):
        runner.train(loader, num_epochs=1, log_steps=0)
        sizes.append(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
    return [round(size, 1) for size in sizes]


def run(models=("LeNet", "MyNet", "Model_ResNet18", "resnet18"), steps=20, batch_size=32, quick=False):
    """Measure everything and return the results as a dict (see `format_table`)."""
    on_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    paddle.set_device("gpu:0" if on_gpu else "cpu")
    threads = default_cpu_threads()
    if not on_gpu:
        paddle.base.core.set_num_threads(threads)
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
    results["loader"] = loader_table()
    results["folder_loader"] = folder_loader_table()
    results["memory_mb_after_each_epoch"] = memory_growth()
    if not on_gpu:
        paddle.base.core.set_num_threads(1)
        one = images_per_second("Model_ResNet18", "bare loop", steps, batch_size, repeats=1)
        paddle.base.core.set_num_threads(threads)
        default = images_per_second("Model_ResNet18", "bare loop", steps, batch_size, repeats=1)
        parallel = _launch_workers(2, steps, batch_size)
        results["cpu_scaling"] = {"1 thread": round(one, 1), f"default ({threads} threads)": round(default, 1),
                                  "2 data-parallel processes": round(parallel, 1),
                                  "default / 1 thread": round(default / one, 2),
                                  "2 processes / 1 thread": round(parallel / one, 2)}
    return results


def format_table(results):
    """The results as plain-text tables."""
    lines = [f"paddle {results['machine']['paddle']} on {results['machine']['device']}", "",
             "training images/s"]
    header = ["model", *ENGINES, "RunnerV3 / bare", "hapi fit / bare"]
    lines.append(" | ".join(f"{h:>16}" for h in header))
    for row in results["engines"]:
        lines.append(" | ".join(f"{row[h]:>16}" for h in header))
    if "loader" in results:
        lines += ["", "the 40,000-image CIFAR-10 train split: building it, then one shuffled pass in batches of 64"]
        lines += [f"{row['method']:>18}: peak {row['peak_mb']} MB over import paddle, built in {row['build_s']} s, "
                  f"read at {row['read_images_per_s']} images/s" for row in results["loader"]]
        lines += ["", "your own images: 400x300 JPEGs through configs/imagefolder.yml's training loader, images/s"]
        lines += [f"{row['loader']:>28}: {row['images_per_s']}" for row in results["folder_loader"]]
        lines += ["", f"RSS after each of 5 epochs (MB): {results['memory_mb_after_each_epoch']}"]
    if "cpu_scaling" in results:
        lines += ["", "Model_ResNet18 on CPU, images/s"]
        lines += [f"{key:>28}: {value}" for key, value in results["cpu_scaling"].items()]
    return "\n".join(lines)


def main(argv=None):
    """`tools/benchmark.py [--quick] [--steps N] [--batch-size B] [--json PATH]`."""
    import argparse

    parser = argparse.ArgumentParser(description="Measure training and data-loading speed; print a table.")
    parser.add_argument("--steps", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=list(MODEL_INPUTS), choices=list(MODEL_INPUTS))
    parser.add_argument("--quick", action="store_true", help="engines only (no loader, memory or scaling runs)")
    parser.add_argument("--json", default="benchmark.json", help="where to write the results")
    args = parser.parse_args(argv)
    logger.setLevel(logging.WARNING)  # RunnerV3's own lines would drown the table
    results = run(args.models, args.steps, args.batch_size, args.quick)
    print(format_table(results))
    with open(args.json, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
