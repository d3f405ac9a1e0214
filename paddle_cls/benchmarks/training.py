"""Training speed: the engines against a bare loop, data-parallel processes on the CPU, memory per epoch."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from ..engine.runner import RunnerV3
from ..metrics import Accuracy
from ..models import MODELS
from ..utils.runtime import default_cpu_threads, set_cpu_threads

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def images_per_second(name: str, engine: str, steps: int, batch_size: int, warmup: int = 2, repeats: int = 3,
                      shape: Optional[Sequence[int]] = None) -> float:
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


def launch_workers(count: int, steps: int, batch_size: int) -> float:
    """Model_ResNet18 data parallel on CPU: `count` processes under Paddle's launcher; total images/s."""
    log_dir = tempfile.mkdtemp(prefix="bench-dp-")
    script = os.path.join(log_dir, "worker.py")  # the launcher runs a script file, not a module
    with open(script, "w", encoding="utf-8") as file:
        file.write(f"import sys\nsys.path.insert(0, {_PACKAGE_PARENT!r})\n"
                   f"from paddle_cls.benchmarks.training import worker\nworker({steps}, {batch_size})\n")
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(count), "--log_dir", log_dir,
               script]
    subprocess.run(command, capture_output=True, text=True, check=True)
    rates = []
    for name in os.listdir(log_dir):
        if name.startswith("workerlog"):
            rates += [float(line.split()[-1]) for line in open(os.path.join(log_dir, name)) if line.startswith("RATE ")]
    return sum(rates)


def worker(steps: int, batch_size: int) -> None:
    """One process of `launch_workers`: prints its images/s."""
    paddle.distributed.init_parallel_env()
    set_cpu_threads(default_cpu_threads())
    model = paddle.DataParallel(_model("Model_ResNet18"))
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    dataset = _data(MODEL_INPUTS["Model_ResNet18"], steps + 2, batch_size, seed=paddle.distributed.get_rank())
    batches = list(paddle.io.DataLoader(dataset, batch_size=batch_size))
    _bare_loop(model, optimizer, batches[:2])
    start = time.perf_counter()
    _bare_loop(model, optimizer, batches[2:])
    print("RATE", steps * batch_size / (time.perf_counter() - start), flush=True)


def memory_growth(epochs: int = 5, steps: int = 20, batch_size: int = 32) -> List[float]:
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
