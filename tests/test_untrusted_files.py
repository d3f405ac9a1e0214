"""Nothing a user feeds the toolkit may run code: crafted CIFAR batches, and crafted Paddle weights files
(`.pdparams`, `.pdopt`, checkpoint folders, Paddle's weights cache) through the API and the command line,
while the files the course, PaddleClas and paddle.Model write still load."""
import os
import pickle
import re
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from paddle_cls import CIFAR10Dataset, Cifar10, RunnerV3
from paddle_cls.data.synthetic import write_cifar10
from paddle_cls.engine.checkpointing import load_checkpoint
from paddle_cls.errors import CheckpointError, DataError
from paddle_cls.models import MODELS
from paddle_cls.models.finetune import load_pretrained, paddle_weights_file
from paddle_cls.utils.weights import load_state_dict


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Shell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Writer:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('pwned')",)


def _crafted_folder(tmp_path, payload, batch="data_batch_1"):
    folder = write_cifar10(str(tmp_path / "data"), 8)
    with open(os.path.join(folder, batch), "wb") as file:
        pickle.dump({"data": payload, "labels": [0]}, file, protocol=2)
    return folder


@pytest.mark.parametrize("make", ["shell", "writer"])
def test_crafted_batches_are_refused_through_the_api(tmp_path, make):
    marker = str(tmp_path / "marker")
    payload = _Shell(f"touch {marker}") if make == "shell" else _Writer(marker)
    folder = _crafted_folder(tmp_path, payload)
    with pytest.raises(DataError, match=r"data_batch_1: refused to load '(posix|os|builtins|__builtin__)\."):
        CIFAR10Dataset(folder, "train")
    with pytest.raises(DataError, match="refused to load"):
        Cifar10(folder, "train")
    assert not os.path.exists(marker)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["resnet18", "mynet_cifar10"])
def test_crafted_batches_are_refused_through_train(tmp_path, config):
    marker = str(tmp_path / "marker")
    folder = _crafted_folder(tmp_path, _Shell(f"touch {marker}"), batch="data_batch_2")
    result = subprocess.run([sys.executable, "tools/train.py", "-c", f"configs/{config}.yml",
                             "-o", f"Global.data_dir={folder}", "-o", f"Global.output_dir={tmp_path / 'out'}",
                             "-o", "Global.device=cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "data_batch_2: refused to load" in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(marker)


class _Call:
    """Pickles as a call of `function(*args)`, as a crafted file would hold it."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _payload(kind, marker):
    """A pickle that creates `marker` when unpickled by `pickle.load` (and so by `paddle.load`)."""
    marker = str(marker)
    if kind == "os.system":
        return pickle.dumps(_Call(os.system, f"touch {marker}"), protocol=4)
    if kind == "subprocess.Popen":
        return pickle.dumps(_Call(subprocess.Popen, ["touch", marker]), protocol=4)
    if kind == "eval":
        return pickle.dumps(_Call(eval, f"open({marker!r}, 'w').close()"), protocol=2)
    if kind == "getattr chain":  # getattr(__import__('os'), 'system')('touch marker'), written by hand
        return (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V"
                + f"touch {marker}".encode() + b"\ntR.")
    if kind == "numpy exec":  # a NumPy function that runs a string: only numpy's array builders are admitted
        return (b"cnumpy.testing._private.utils\nrunstring\n(V" + f"open({marker!r}, 'w').close()".encode()
                + b"\n(dtR.")
    if kind == "inside a state dict":  # a real weights file with one crafted entry
        state = {"linear.weight": np.zeros((4, 2), np.float32), "linear.bias": _Call(os.system, f"touch {marker}")}
        return pickle.dumps(state, protocol=4)
    raise AssertionError(kind)


PAYLOADS = ("os.system", "subprocess.Popen", "eval", "getattr chain", "numpy exec", "inside a state dict")
REFUSED = {"os.system": "(posix|os).system", "subprocess.Popen": "subprocess.Popen",
           "eval": "(builtins|__builtin__).eval",
           "getattr chain": "builtins.getattr", "numpy exec": "numpy.testing._private.utils.runstring",
           "inside a state dict": "(posix|os).system"}


def _crafted(path, kind, marker):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as file:
        file.write(_payload(kind, marker))
    return str(path)


def _refused(kind, name):
    return rf"{name}: refused to load '{REFUSED[kind]}'"


def test_the_payloads_do_run_under_plain_pickle(tmp_path):
    """The crafted files are real attacks: plain `pickle.load` (what `paddle.load` calls) runs each one."""
    for kind in PAYLOADS:
        marker = tmp_path / kind.replace(" ", "_")
        try:
            pickle.loads(_payload(kind, marker))
        finally:
            time.sleep(0.5) if kind == "subprocess.Popen" else None  # the child's touch
        assert marker.exists(), kind


def _runner_checkpoint(folder, engine):
    """A checkpoint folder as our engines write it, for a MyNet."""
    model = MODELS["MyNet"](num_classes=10)
    optimizer = paddle.optimizer.Adam(parameters=model.parameters())
    os.makedirs(folder)
    paddle.save(model.state_dict(), os.path.join(folder, "model.pdparams"))
    paddle.save(optimizer.state_dict(), os.path.join(folder, "optimizer.pdopt"))
    with open(os.path.join(folder, "state.pdstates"), "wb") as file:
        pickle.dump({"version": 2, "engine": engine, "next_step": 1, "history": [], "random": {}}, file)
    return model, optimizer


@pytest.mark.parametrize("kind", PAYLOADS)
def test_every_weights_reader_refuses_a_crafted_file_and_runs_nothing(tmp_path, kind, monkeypatch):
    marker = str(tmp_path / "marker")
    crafted = _crafted(tmp_path / "downloaded.pdparams", kind, marker)
    model = MODELS["MyNet"](num_classes=10)
    with pytest.raises(CheckpointError, match=_refused(kind, "downloaded.pdparams")):
        load_state_dict(crafted)
    with pytest.raises(CheckpointError, match=_refused(kind, "downloaded.pdparams")):
        RunnerV3(model, None, None, None).load_model(crafted)  # the course's API; Global.checkpoint
    with pytest.raises(CheckpointError, match=_refused(kind, "downloaded.pdparams")):
        load_pretrained(model, crafted, "MyNet")  # Global.pretrained_model
    # Arch.pretrained: a crafted file in Paddle's weights cache
    cache = tmp_path / "weights"
    monkeypatch.setattr(paddle.utils.download, "WEIGHTS_HOME", str(cache))
    url = paddle.vision.models.resnet.model_urls["resnet18"][0]
    _crafted(cache / os.path.basename(url), kind, marker)
    cached = paddle_weights_file("resnet18")
    with pytest.raises(CheckpointError, match=_refused(kind, os.path.basename(url))):
        load_pretrained(paddle.vision.models.resnet18(num_classes=3), cached, "resnet18")
    # each of a checkpoint folder's three files (Global.resume)
    for name in ("model.pdparams", "optimizer.pdopt", "state.pdstates"):
        folder = str(tmp_path / f"step_{name}")
        model, optimizer = _runner_checkpoint(folder, "runner")
        _crafted(os.path.join(folder, name), kind, marker)
        # a training state holds no arrays: there the crafted dict's array is refused first
        refused = rf"{name}: refused to load '" if kind == "inside a state dict" else _refused(kind, name)
        with pytest.raises(CheckpointError, match=refused):
            load_checkpoint(folder, model, optimizer, "runner")
    assert not os.path.exists(marker)


def _inflating_payloads():
    """Small files that ask for huge or odd values: memory, deep nesting, objects where numbers belong."""
    hexed = b"Vx\n"
    for _ in range(40):  # each hex encoding doubles: 40 of them ask for terabytes
        hexed = b"c_codecs\nencode\n(" + hexed + b"Vhex\ntR"
    return {
        "codec chain": b"\x80\x02}(Vw\n" + hexed + b"u.",
        "huge array": b"\x80\x02}(Vw\ncnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(J\x00\xe8vHtS'b'\ntRu.",
        "object array": pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=2),
        "deep nesting": b"\x80\x04" + b"}(Va\n" * 50_000 + b"N" + b"u" * 50_000 + b".",
        "broken split arrays": pickle.dumps({"UnpackBigParamInfor@@": {"w": {"slices": ["w@@.0"]}}}, protocol=2),
    }


@pytest.mark.parametrize("kind", list(_inflating_payloads()))
def test_files_that_ask_for_memory_objects_or_depth_are_one_line_errors(tmp_path, kind):
    path = tmp_path / "weights.pdparams"
    path.write_bytes(_inflating_payloads()[kind])
    with pytest.raises(CheckpointError, match=r"weights.pdparams: (refused to load|not a (readable )?Paddle weights)"):
        load_state_dict(str(path))


def _save_with_numpy1_names(state, path):
    """`paddle.save(state, path, protocol=2)` as Paddle 2.x under NumPy 1 wrote it (PaddleClas's published
    weights): the same bytes, naming numpy.core instead of numpy._core."""
    paddle.save(state, path, protocol=2)
    with open(path, "rb") as file:
        data = file.read().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    with open(path, "wb") as file:
        file.write(data)


def _assert_same(ours, paddles, where):
    assert ours.keys() == paddles.keys(), where
    for key, value in paddles.items():
        if isinstance(value, dict):
            _assert_same(ours[key], value, f"{where}: {key}")
        elif isinstance(value, paddle.Tensor):
            np.testing.assert_array_equal(ours[key].numpy(), value.numpy())
        else:
            assert ours[key] == value, (where, key)


def test_weights_written_by_the_course_paddleclas_and_paddle_model_still_load(tmp_path):
    model = MODELS["Model_ResNet18"](3, 10, use_residual=True)
    optimizer = paddle.optimizer.Adam(learning_rate=paddle.optimizer.lr.StepDecay(0.01, 2),
                                      parameters=model.parameters())
    model(paddle.randn([2, 3, 32, 32])).mean().backward()
    optimizer.step()
    paddle.save(model.state_dict(), str(tmp_path / "course.pdparams"))  # the course's RunnerV3.save_model
    hapi = paddle.Model(model)
    hapi.prepare(optimizer)
    hapi.save(str(tmp_path / "hapi" / "final"))  # paddle.Model.save: .pdparams and .pdopt
    _save_with_numpy1_names(model.state_dict(), str(tmp_path / "numpy1.pdparams"))
    # paddle.save's generic writer (a dict holding a dict of tensors, as an O2 optimizer's master weights)
    paddle.save({"master_weights": {"w": model.net[0][0].weight}, "b": model.net[7].bias},
                str(tmp_path / "generic.pdopt"))
    paddle.save({"master_weights": {"w": model.net[0][0].weight}, "b": model.net[7].bias},
                str(tmp_path / "generic2.pdopt"), protocol=2)  # protocol 2 names the builtins __builtin__
    paddle.save(model.state_dict(), str(tmp_path / "protocol3.pdparams"), protocol=3)
    for name in ("course.pdparams", "hapi/final.pdparams", "hapi/final.pdopt", "numpy1.pdparams", "generic.pdopt",
                 "generic2.pdopt", "protocol3.pdparams"):
        path = str(tmp_path / name)
        _assert_same(load_state_dict(path), paddle.load(path), name)
    # paddle.save with protocol 2 or 3 splits arrays over 1 GiB into parts; a small one split the same way
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    split = {"w@@.0": weight.reshape(-1)[:5], "w@@.1": weight.reshape(-1)[5:], "b": np.ones(2, np.float32),
             "UnpackBigParamInfor@@": {"w": {"OriginShape": (3, 4), "slices": ["w@@.0", "w@@.1"]}},
             "StructuredToParameterName@@": {"w": "linear_0.w_0", "b": "linear_0.b_0"}}
    (tmp_path / "split.pdparams").write_bytes(pickle.dumps(split, protocol=2))
    _assert_same(load_state_dict(str(tmp_path / "split.pdparams")), paddle.load(str(tmp_path / "split.pdparams")),
                 "split.pdparams")
    fresh = MODELS["Model_ResNet18"](3, 10, use_residual=True)
    RunnerV3(fresh, None, None, None).load_model(str(tmp_path / "numpy1.pdparams"))
    np.testing.assert_array_equal(fresh.net[7].weight.numpy(), model.net[7].weight.numpy())
    restored = paddle.optimizer.Adam(learning_rate=paddle.optimizer.lr.StepDecay(0.01, 2),
                                     parameters=fresh.parameters())
    restored.set_state_dict(load_state_dict(str(tmp_path / "hapi/final.pdopt")))
    assert restored.get_lr() == optimizer.get_lr()


# (tool, engine, what is crafted, payload kind): every entry point of the command line, each payload kind once
ENTRY_POINTS = [
    ("train.py", "runner", "Global.pretrained_model", "os.system"),
    ("train.py", "hapi", "Global.pretrained_model", "subprocess.Popen"),
    ("eval.py", "runner", "Global.checkpoint", "eval"),
    ("predict.py", "runner", "Global.checkpoint", "getattr chain"),
    ("export.py", "runner", "Global.checkpoint", "inside a state dict"),
    ("train.py", "runner", "optimizer.pdopt", "numpy exec"),
    ("train.py", "hapi", "model.pdparams", "os.system"),
]


@pytest.mark.slow
@pytest.mark.parametrize("tool, engine, target, kind", ENTRY_POINTS)
def test_the_command_line_refuses_crafted_weights_in_one_line(cifar_folder, tmp_path, tool, engine, target, kind):
    marker = str(tmp_path / "marker")
    output_dir = tmp_path / "out"
    overrides = [f"Global.data_dir={cifar_folder}", f"Global.output_dir={output_dir}", "Global.device=cpu",
                 "Global.epochs=1", f"Global.engine={engine}", "Global.progress=false"]
    if target.startswith("Global."):
        crafted = _crafted(tmp_path / "from_a_forum.pdparams", kind, marker)
        overrides.append(f"{target}={crafted}")
        shown = "from_a_forum.pdparams"
    else:  # a checkpoint folder found by Global.resume=auto
        folder = output_dir / "checkpoints" / "step_00000008"
        _runner_checkpoint(str(folder), engine)
        (output_dir / "checkpoints" / "latest").write_text("step_00000008\n")
        _crafted(folder / target, kind, marker)
        overrides.append("Global.resume=auto")
        shown = target
    extra = ["--index", "0"] if tool == "predict.py" else []
    result = subprocess.run([sys.executable, f"tools/{tool}", "-c", "configs/mynet_cifar10.yml", *extra,
                             *[arg for override in overrides for arg in ("-o", override)]],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert re.search(_refused(kind, shown), result.stderr) and "Traceback" not in result.stderr, result.stderr
    assert not os.path.exists(marker)
