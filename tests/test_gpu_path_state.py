"""The state a GPU run leaves behind, reproduced on the CPU: random states of several GPUs in a checkpoint, the float16
loss scaler across a resume, and the ranks of a launched run downloading the data at once."""
import hashlib
import logging
import os
import pickle
import random
import threading
import time
import types

import numpy as np
import paddle
import paddle.dataset.common
import pytest
from paddle.amp import grad_scaler

from paddle_cls.config import load_config
from paddle_cls.data.cifar10 import CIFAR10Dataset
from paddle_cls.data.synthetic import write_mnist
from paddle_cls.data.vision import MNIST
from paddle_cls.engine import hapi, train, train_runner
from paddle_cls.engine.checkpointing import load_checkpoint, random_states, save_checkpoint
from paddle_cls.utils.logger import logger


def _small_model():
    model = paddle.nn.Linear(3, 2)
    return model, paddle.optimizer.Adam(parameters=model.parameters())


def _draws():
    return paddle.rand([4]).numpy(), np.random.rand(4), random.random()


def _resume_draws(folder):
    """Scramble the random states, load the checkpoint in `folder`, and draw from Paddle's, NumPy's and Python's."""
    paddle.seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    load_checkpoint(folder, *_small_model(), "runner")
    return _draws()


def _pickle_keeps_the_cpu_generator():
    """Paddle 3 pickles the CPU generator's whole state; Paddle 2.6 its seed alone (`GeneratorState.__getstate__`
    is `(device, seed, offset)`), so a checkpoint's CPU state restarts from the seed there."""
    saved = pickle.dumps(paddle.get_rng_state("cpu"))
    expected = paddle.rand([2]).numpy()
    paddle.set_rng_state(pickle.loads(saved))
    return (paddle.rand([2]).numpy() == expected).all()


def _assert_same_draws(resumed, expected):
    paddle_draw, *others = zip(resumed, expected)
    for got, want in others if not _pickle_keeps_the_cpu_generator() else [paddle_draw, *others]:
        np.testing.assert_array_equal(got, want)


def test_a_checkpoint_from_two_gpus_resumes_on_the_cpu_with_the_cpu_state_and_one_line(tmp_path, capsys):
    model, optimizer = _small_model()
    states = random_states()
    one = paddle.get_rng_state()[0]
    states["paddle_device"] = {"type": "gpu", "states": [one, one]}  # what a process seeing two GPUs saves
    folder = save_checkpoint(str(tmp_path), model, optimizer, {"engine": "runner", "next_step": 1, "random": states})
    expected = _draws()
    _assert_same_draws(_resume_draws(folder), expected)  # the CPU generator continues where it was saved
    lines = [line for line in capsys.readouterr().out.splitlines() if "random states" in line]
    assert lines == [f"[Checkpoint] {folder} holds the random states of 2 gpu device(s) and this process has only "
                     "the CPU: 0 restored, so dropout and other random operations will differ from an "
                     "uninterrupted run's"]


def test_a_version_2_checkpoint_with_two_gpu_states_resumes_on_the_cpu(tmp_path, capsys):
    # Version 2 kept paddle.get_rng_state(): on a GPU one state per visible GPU, which paddle.set_rng_state on
    # a CPU refused with "ValueError: Length of cpu state list should be equal to 1".
    model, optimizer = _small_model()
    states = {key: value for key, value in random_states().items() if not key.startswith("paddle")}
    states["paddle"] = [paddle.get_rng_state()[0]] * 2
    folder = save_checkpoint(str(tmp_path), model, optimizer, {"engine": "runner", "next_step": 1, "random": states})
    with open(os.path.join(folder, "state.pdstates"), "wb") as file:
        pickle.dump({"engine": "runner", "next_step": 1, "random": states, "version": 2}, file)
    expected_numpy, expected_python = np.random.rand(4), random.random()
    _, numpy_draw, python_draw = _resume_draws(folder)
    np.testing.assert_array_equal(numpy_draw, expected_numpy)
    assert python_draw == expected_python
    out = capsys.readouterr().out
    assert "holds the random states of 2 device(s) and this process has only the CPU: 0 restored" in out


def test_a_cpu_checkpoint_restores_every_random_state_silently(tmp_path, capsys):
    model, optimizer = _small_model()
    states = random_states()
    assert states["paddle_device"] is None and len(states["paddle_cpu"]) == 1
    folder = save_checkpoint(str(tmp_path), model, optimizer, {"engine": "runner", "next_step": 1, "random": states})
    expected = _draws()
    _assert_same_draws(_resume_draws(folder), expected)
    assert "random states" not in capsys.readouterr().out


@pytest.fixture
def fp16_on_the_cpu(monkeypatch):
    """The runner engine trains at AMP O1 float16 with a `paddle.amp.GradScaler` that works on the CPU (Paddle
    enables it only where the place is a GPU; its kernels run on the CPU) and raises its scale every 3 steps with
    finite gradients. Returns the scalers made, in order."""
    made = []
    gpu = types.SimpleNamespace(is_gpu_place=lambda: True, is_xpu_place=lambda: False, is_custom_place=lambda: False)

    class CPUGradScaler(paddle.amp.GradScaler):
        def __init__(self, **kwargs):
            with monkeypatch.context() as patch:
                patch.setattr(grad_scaler, "_dygraph_tracer", lambda: types.SimpleNamespace(_expected_place=gpu))
                super().__init__(incr_every_n_steps=3, **kwargs)
            made.append(self)

    monkeypatch.setattr(paddle.amp, "GradScaler", CPUGradScaler)
    for engine in (train_runner, hapi):
        monkeypatch.setattr(engine, "amp_level", lambda config, device, report=True: "O1")
    return made


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["runner", "hapi"])  # RunnerV3's scaler, and the one paddle.Model makes
def test_the_float16_loss_scale_continues_across_a_resume(data_dir, tmp_path, fp16_on_the_cpu, engine):
    def run(output_dir, *extra):
        overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
                     "Global.save_unit=epoch", "Global.save_interval=1", "DataLoader.Train.subset=[0, 32]",
                     "DataLoader.Train.batch_size=8", "Global.amp_dtype=float16", f"Global.engine={engine}",
                     "Global.progress=false", *extra]
        train(load_config("configs/mynet_cifar10.yml", overrides))
        return fp16_on_the_cpu[-1].state_dict()

    initial = 2.0 ** 15 if engine == "runner" else 2.0 ** 16  # RunnerV3's, and Paddle's default
    straight = run(tmp_path / "straight", "Global.epochs=2")  # 8 steps: the scale doubled after steps 3 and 6
    assert straight["scale"].tolist() == [initial * 4] and straight["incr_count"] == 2
    first = run(tmp_path / "resumed", "Global.epochs=1")
    assert first["scale"].tolist() == [initial * 2] and first["incr_count"] == 1
    resumed = run(tmp_path / "resumed", "Global.epochs=2", "Global.resume=auto")
    assert resumed["scale"].tolist() == straight["scale"].tolist()
    assert resumed["incr_count"] == straight["incr_count"]


def _fake_downloads(monkeypatch, home, files):
    """Paddle's downloader replaced by one that writes `files[name]` into the cache under `home`, in place and
    slowly, as Paddle's does; like Paddle's it returns a complete file it finds without fetching. The first fetch
    goes on only once the other thread is there too: fetching as well, or saying that it waits (up to 10 s).
    Returns the names fetched, in order."""
    fetched, threads, lock, together = [], set(), threading.Lock(), threading.Event()

    class WaitingLine(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("Waiting for another process"):
                together.set()

    def download(url, module_name, md5sum, save_name=None):
        name = url.split("/")[-1]
        path = os.path.join(home, ".cache", "paddle", "dataset", module_name, name)
        if os.path.isfile(path) and open(path, "rb").read() == files[name]:
            return path
        with lock:
            fetched.append(name)
            threads.add(threading.get_ident())
            if len(threads) > 1:
                together.set()
        together.wait(timeout=10)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(files[name][:len(files[name]) // 2])
            file.flush()
            time.sleep(0.3)
            file.write(files[name][len(files[name]) // 2:])
        return path

    monkeypatch.setattr(logger, "handlers", [*logger.handlers, WaitingLine()])
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(paddle.dataset.common, "download", download)
    return fetched


def _as_two_ranks(build):
    """`build()` in two threads started together; their results (or exceptions)."""
    results, start = [None, None], threading.Barrier(2)

    def rank(index):
        start.wait()
        try:
            results[index] = build()
        except Exception as exc:  # reported by the test's assertions
            results[index] = exc

    threads = [threading.Thread(target=rank, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_one_process_downloads_cifar10_while_the_other_waits(tmp_path, monkeypatch, cifar_archive, capsys):
    archive = open(cifar_archive, "rb").read()
    fetched = _fake_downloads(monkeypatch, tmp_path, {"cifar-10-python.tar.gz": archive})
    monkeypatch.setattr("paddle_cls.data.cifar10.CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    datasets = _as_two_ranks(lambda: CIFAR10Dataset(None, mode="test", download=True))
    assert fetched == ["cifar-10-python.tar.gz"], datasets
    assert [len(dataset) for dataset in datasets] == [64, 64]
    np.testing.assert_array_equal(datasets[0].labels, datasets[1].labels)
    assert capsys.readouterr().out.count("Waiting for another process to finish the CIFAR-10 download") == 1


def test_one_process_downloads_mnist_while_the_other_waits(tmp_path, monkeypatch, capsys):
    write_mnist(str(tmp_path / "source"), train_count=20, test_count=30)
    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    fetched = _fake_downloads(monkeypatch, tmp_path / "home",
                              {name: open(tmp_path / "source" / name, "rb").read() for name in names})
    datasets = _as_two_ranks(lambda: MNIST(str(tmp_path / "empty"), mode="test", download=True))
    assert fetched == list(names), datasets
    assert [len(dataset) for dataset in datasets] == [30, 30]
    np.testing.assert_array_equal(datasets[0].labels, datasets[1].labels)
    assert capsys.readouterr().out.count("Waiting for another process to finish the MNIST download") == 1
