"""Training speed: the engines against a bare loop, data-parallel processes on the CPU, memory per epoch, and the
CPU training path (`use_cpu_conv`) against Paddle's default and PyTorch."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

from ..engine.runner import RunnerV3
from ..metrics import Accuracy
from ..models import MODELS
from ..models.cpu_conv import use_cpu_conv
from ..utils.runtime import default_cpu_threads, keep_freed_memory, set_cpu_threads
from .torch_models import torch_trainer

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


# The CPU training table: resnet18.yml's and model_resnet18.yml's models at their batch of 64, and one small model.
CPU_TABLE_MODELS = (("resnet18", 64), ("Model_ResNet18", 64), ("MyNet", 32))
CPU_PATHS = ("paddle", "ours", "pytorch")


def _paddle_trainer(name, images, labels, batched):
    model = _model(name)
    if batched:
        use_cpu_conv(model)
        keep_freed_memory()
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    inputs, targets = paddle.to_tensor(images), paddle.to_tensor(labels)

    def step():
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return loss.item()

    return step


def _trainer(path, name, images, labels, threads):
    if path == "pytorch":
        return torch_trainer(name, images, labels, threads)
    return _paddle_trainer(name, images, labels, batched=path == "ours")


def _batch(name, batch_size):
    rng = np.random.RandomState(0)
    return (rng.randn(batch_size, *MODEL_INPUTS[name]).astype(np.float32),
            rng.randint(0, 10, size=batch_size).astype(np.int64))


def peak_step_memory(name: str, batch_size: int, path: str, steps: int = 2) -> float:
    """Peak RSS (MB) of `steps` training steps of `name` on `path` (paddle, ours or pytorch) over the RSS before the
    model was built, in this process: run it in a fresh one (`cpu_training_table` does)."""
    threads = default_cpu_threads()
    set_cpu_threads(threads)
    images, labels = _batch(name, batch_size)
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")  # reset VmHWM, the peak RSS, to the current RSS (Linux)
    base = _rss_kb("VmRSS:")
    step = _trainer(path, name, images, labels, threads)
    for _ in range(steps):
        step()
    return (_rss_kb("VmHWM:") - base) / 1024


def _rss_kb(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))


def _peak_in_child(name, batch_size, path):
    imports = "import numpy.random\nimport paddle\n" + ("import torch\n" if path == "pytorch" else "")
    script = (f"import sys\nsys.path.insert(0, {_PACKAGE_PARENT!r})\n{imports}"
              f"from paddle_cls.benchmarks.training import peak_step_memory\n"
              f"print(peak_step_memory({name!r}, {batch_size}, {path!r}))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    return round(float(result.stdout.split()[-1])) if result.returncode == 0 else "failed"


def _timed(step, steps, batch_size):
    time.sleep(0.2)  # the other library's OpenMP threads stop spinning before the clock starts
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def cpu_training_table(models: Sequence[Tuple[str, int]] = CPU_TABLE_MODELS, steps: int = 4, repeats: int = 3,
                       memory: bool = True, threads: Optional[int] = None) -> List[dict]:
    """Training images/s on the CPU, Adam on one fixed batch per model: Paddle's default path, ours
    (`use_cpu_conv` and `keep_freed_memory`; the latter holds for the whole process once the first of ours is
    built, so the other paths run with it too: it left their rates unchanged here), and PyTorch fp32 on the
    same model and threads when `import torch` works ("not installed" otherwise), with the ratios.
    The paths take turns, `repeats` rounds of `steps` steps each after 2 warm-up steps, and each keeps its best
    round, so that load on the machine weighs on all alike. With `memory`, also
    each path's peak RSS over a training step (MB), each measured in a fresh process (on all cores). `threads`:
    CPU threads for both libraries (default: every core this process may use). `load` is the machine's
    1-minute load average after the timings: PyTorch's OpenMP threads slow down far more than Paddle's when
    other processes compete for the cores, so compare ratios taken on an idle machine (load below the cores)."""
    threads = threads or default_cpu_threads()
    set_cpu_threads(threads)
    rows = []
    for name, batch_size in models:
        images, labels = _batch(name, batch_size)
        trainers = {path: _trainer(path, name, images, labels, threads) for path in CPU_PATHS}
        trainers = {path: step for path, step in trainers.items() if step is not None}
        for step in trainers.values():
            for _ in range(2):
                step()
        best = dict.fromkeys(trainers, 0.0)
        for _ in range(repeats):
            for path, step in trainers.items():
                best[path] = max(best[path], _timed(step, steps, batch_size))
        row = {"model": name, "batch": batch_size, "threads": threads, "load": round(os.getloadavg()[0], 1)}
        row.update({path: round(best[path], 1) if path in best else "not installed" for path in CPU_PATHS})
        row["ours / paddle"] = round(row["ours"] / row["paddle"], 2)
        for path in ("paddle", "ours"):
            row[f"{path} / pytorch"] = round(row[path] / row["pytorch"], 2) if "pytorch" in best else "-"
        if memory:
            row.update({f"{path} peak MB": _peak_in_child(name, batch_size, path) for path in trainers})
        rows.append(row)
    return rows
