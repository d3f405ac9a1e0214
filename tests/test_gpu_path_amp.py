"""Mixed precision on the GPU path, forced on the CPU (which has no GPU and no float16 kernels).

Paddle's own `paddle.amp.decorate` is made to take its GPU branch (its `check_models`, its casts, its
`save_dtype` hooks all run for real); a GPU's properties (`is_float16_supported`, compute capability) are
faked; and where a float16 model must compute, an `auto_cast` stand-in computes it in float32 on the same
float16-rounded weights, as a GPU's O2 `auto_cast` computes it in float16.
"""
import sys
from contextlib import contextmanager

import numpy as np
import paddle
import pytest

from paddle_cls import Accuracy, RunnerV3
from paddle_cls.cli import train_main
from paddle_cls.config import load_config
from paddle_cls.data.loader import build_loader
from paddle_cls.deploy import trained as trained_module
from paddle_cls.deploy.predict import predict
from paddle_cls.deploy.trained import test_model as run_test_split
from paddle_cls.engine import train_runner as train_runner_module
from paddle_cls.engine.components import build_model
from paddle_cls.errors import ConfigError
from paddle_cls.utils.precision import amp_level
from paddle_cls.utils.weights import load_model_file, load_state_dict, save_weights

LOW = (paddle.float16, paddle.bfloat16)


class _GpuPlace:
    def is_gpu_place(self):
        return True

    def is_xpu_place(self):
        return False

    def is_custom_place(self):
        return False


class _GpuTracer:
    _expected_place = _GpuPlace()


def _decorate_as_on_a_gpu(monkeypatch):
    """`paddle.amp.decorate` going past its `if not gpu: return models` (paddle/amp/auto_cast.py, 2.6 and 3.x)."""
    module, real = sys.modules["paddle.amp.auto_cast"], paddle.amp.decorate

    def decorate(*args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(module, "_dygraph_tracer", lambda: _GpuTracer())
            patch.setattr(module, "_is_gpu_float16_supported", lambda: True)
            patch.setattr(module, "_is_gpu_bfloat16_supported", lambda: True)
            return real(*args, **kwargs)

    monkeypatch.setattr(paddle.amp, "decorate", decorate)


def _as_on_a_gpu(monkeypatch, capability=(8, 0), name="NVIDIA A100-SXM4-40GB", float16=True, bfloat16=True):
    monkeypatch.setattr(paddle, "get_device", lambda: "gpu:0")
    monkeypatch.setattr(paddle.device.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(paddle.device.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(paddle.amp, "is_float16_supported", lambda device=None: float16)
    monkeypatch.setattr(paddle.amp, "is_bfloat16_supported", lambda device=None: bfloat16)


def _o2_auto_cast(monkeypatch):
    """`paddle.amp.auto_cast` recording its calls (enable, level, dtype, and the dtype of the first weight of the
    last model in `models` at entry); inside an enabled O2 one, the models in `models` compute in float32 here,
    on the weights they have, as they would compute in float16 on a GPU."""
    calls, models = [], []

    @contextmanager
    def auto_cast(enable=True, custom_white_list=None, custom_black_list=None, level="O1", dtype="float16",
                  use_promote=True):
        calls.append((enable, level, dtype, models[-1].parameters()[0].dtype if models else None))
        if enable and level == "O2":
            for model in models:
                model.to(dtype="float32")
        yield

    monkeypatch.setattr(paddle.amp, "auto_cast", auto_cast)
    return calls, models


def _net():
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.ReLU(),
                                paddle.nn.Flatten(), paddle.nn.Linear(4 * 6 * 6, 3))


def _optimizer(model):
    return paddle.optimizer.Momentum(learning_rate=0.1, parameters=model.parameters())


def _dtypes(model):
    return {key: value.dtype for key, value in model.state_dict(use_hook=False).items()}


def test_o2_decorates_the_bare_model_then_data_parallel_wraps_it(monkeypatch):
    _decorate_as_on_a_gpu(monkeypatch)
    monkeypatch.setattr(train_runner_module, "world_size", lambda: 2)  # as under paddle.distributed.launch
    # Wrapped first (what train_runner did): one line saying what to do, not Paddle's RuntimeError on a GPU.
    other = _net()
    with pytest.raises(ValueError, match="before wrapping it in paddle.DataParallel"):
        RunnerV3(paddle.DataParallel(other), _optimizer(other), paddle.nn.CrossEntropyLoss(), Accuracy(),
                 amp_level="O2")
    assert _dtypes(other)["0.weight"] == paddle.float32
    net = _net()
    model, optimizer = train_runner_module.training_model(net, _optimizer(net), "O2", "float16")
    runner = RunnerV3(model, optimizer, paddle.nn.CrossEntropyLoss(), Accuracy(), amp_level="O2")
    assert isinstance(runner.model, paddle.DataParallel) and runner.model._layers is net
    assert _dtypes(net)["0.weight"] == paddle.float16 and _dtypes(net)["4.weight"] == paddle.float16
    assert _dtypes(net)["1._mean"] == paddle.float32  # Paddle keeps batch norm in float32
    assert optimizer._multi_precision  # float32 master weights


def test_o2_files_are_float32_and_load_into_models_of_either_precision(tmp_path, monkeypatch):
    _decorate_as_on_a_gpu(monkeypatch)
    trained = _net()
    runner = RunnerV3(trained, _optimizer(trained), paddle.nn.CrossEntropyLoss(), Accuracy(), amp_level="O2")
    assert _dtypes(trained)["0.weight"] == paddle.float16
    weights = {key: value.astype("float32").numpy() for key, value in trained.state_dict(use_hook=False).items()}
    path = str(tmp_path / "best_model.pdparams")
    runner.save_model(path)
    saved = load_state_dict(path)
    assert {key: value.dtype for key, value in saved.items()} == {key: paddle.float32 for key in weights}
    # into a float32 model (eval, predict, export, a resume with AMP off or on a CPU)
    plain = _net()
    load_model_file(plain, path)
    assert set(_dtypes(plain).values()) == {paddle.float32}
    for key, value in plain.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), weights[key])
    # into a decorated model (a resume at O2): the float32 file is cast to its float16 weights
    resumed = _net()
    RunnerV3(resumed, _optimizer(resumed), paddle.nn.CrossEntropyLoss(), Accuracy(), amp_level="O2")
    load_model_file(resumed, path)
    assert _dtypes(resumed) == _dtypes(trained)
    for key, value in resumed.state_dict(use_hook=False).items():
        np.testing.assert_array_equal(value.astype("float32").numpy(), weights[key])
    # a float16 file, as O2 runs wrote them before, loads into a float32 model
    old = str(tmp_path / "old_o2.pdparams")
    paddle.save(trained.state_dict(use_hook=False), old)
    assert load_state_dict(old)["0.weight"].dtype == paddle.float16
    older = _net()
    load_model_file(older, old)
    assert _dtypes(older)["0.weight"] == paddle.float32
    np.testing.assert_array_equal(older.state_dict()["4.weight"].numpy(), weights["4.weight"])


def _config(data_dir, output_dir, *extra):
    return load_config("configs/mynet_cifar10.yml", [
        f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
        "DataLoader.Test.batch_size=16", *extra])


def test_the_test_split_and_predict_run_at_the_runs_precision(data_dir, tmp_path, monkeypatch):
    config = _config(data_dir, tmp_path, "Global.amp=O2")
    paddle.seed(1)
    net = build_model(config)
    net.to(dtype="float16")  # weights rounded to float16, as an O2 run leaves them
    net.to(dtype="float32")
    save_weights(net, str(tmp_path / "best_model.pdparams"))
    reference = RunnerV3(net, None, paddle.nn.CrossEntropyLoss(), Accuracy()).evaluate(build_loader(config, "Test"))
    expected, _ = predict(_config(data_dir, tmp_path), indices=[0, 1, 2], engine="dygraph")

    _decorate_as_on_a_gpu(monkeypatch)
    _as_on_a_gpu(monkeypatch)
    calls, models = _o2_auto_cast(monkeypatch)
    trained = build_model(config)
    load_model_file(trained, str(tmp_path / "best_model.pdparams"))
    RunnerV3(trained, _optimizer(trained), paddle.nn.CrossEntropyLoss(), Accuracy(), amp_level="O2")
    models.append(trained)
    # the end of an O2 run: its float16 model tested (train() calls test_model with it)
    score, loss, count = run_test_split(trained, config)
    assert (score, count) == (reference[0], 64) and loss == pytest.approx(reference[1], rel=1e-6)
    assert calls[0] == (True, "O2", "float16", paddle.float16)
    assert {call[:3] for call in calls} == {(True, "O2", "float16")}

    calls.clear()  # predict: the model it builds and loads is run as the run computed
    real_build = trained_module.build_model

    def build_and_watch(config):
        model = real_build(config)
        models.append(model)
        return model

    monkeypatch.setattr(trained_module, "build_model", build_and_watch)
    results, failures = predict(config, indices=[0, 1, 2], engine="dygraph")
    assert not failures and calls[0] == (True, "O2", "float16", paddle.float16)
    assert {call[:3] for call in calls} == {(True, "O2", "float16")}
    assert [(source, truth, [label for label, _ in ranked]) for source, truth, ranked in results] == \
        [(source, truth, [label for label, _ in ranked]) for source, truth, ranked in expected]
    np.testing.assert_allclose([p for *_, ranked in results for _, p in ranked],
                               [p for *_, ranked in expected for _, p in ranked], rtol=1e-6)


@pytest.mark.parametrize("extra,message", [
    (["Global.amp=O2"], "Global.amp: O2 does not work on Global.engine: hapi"),
    (["Global.amp=O1", "Global.amp_dtype=bfloat16"], "Global.amp_dtype: paddle.Model's AMP supports float16 only"),
])
def test_hapi_refuses_what_paddle_model_cannot_run_in_one_line(data_dir, tmp_path, capsys, extra, message):
    overrides = ["Global.engine=hapi", f"Global.output_dir={tmp_path}", *extra]
    with pytest.raises(ConfigError, match=message):
        load_config("configs/mynet_cifar10.yml", overrides)
    assert train_main(["-c", "configs/mynet_cifar10.yml", *[a for o in overrides for a in ("-o", o)]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "config.yml").exists()
    # what hapi runs, and O2 on the runner engine, still load
    load_config("configs/mynet_cifar10.yml", ["Global.engine=hapi", "Global.amp=O1"])
    load_config("configs/mynet_cifar10.yml", ["Global.engine=hapi", "Global.amp=off", "Global.amp_dtype=bfloat16"])
    load_config("configs/mynet_cifar10.yml", ["Global.engine=runner", "Global.amp=O2", "Global.amp_dtype=bfloat16"])


@pytest.mark.parametrize("dtype,gpu,expected,said", [
    ("bfloat16", dict(capability=(7, 0), name="Tesla V100-SXM2-16GB", bfloat16=False), None,
     "Global.amp_dtype: bfloat16, but Tesla V100-SXM2-16GB (compute capability 7.0) has no bfloat16 mixed "
     "precision, which needs 8.0 or newer; training in float32 (set Global.amp_dtype: float16 for mixed "
     "precision here)"),
    # is_float16_supported says yes from 5.3, Paddle's AMP only from 7.0 (it would quietly train in float32)
    ("float16", dict(capability=(6, 0), name="Tesla P100-PCIE-16GB", bfloat16=False), None,
     "Global.amp_dtype: float16, but Tesla P100-PCIE-16GB (compute capability 6.0) has no float16 mixed "
     "precision, which needs 7.0 or newer; training in float32 (set Global.amp: off)"),
    ("bfloat16", dict(capability=(8, 0)), "O2", None),
    ("float16", dict(capability=(7, 5), name="Tesla T4", bfloat16=False), "O2", None),
])
def test_an_amp_dtype_the_gpu_lacks_is_said_in_one_line(monkeypatch, capsys, dtype, gpu, expected, said):
    _as_on_a_gpu(monkeypatch, **gpu)
    config = {"Global": {"amp": "O2", "amp_dtype": dtype}}
    assert amp_level(config, "gpu:0") == expected
    out = capsys.readouterr().out
    if said:
        assert said in out and len([line for line in out.splitlines() if "Global.amp" in line]) == 1
    else:
        assert "Global.amp" not in out
    assert amp_level(config, "gpu:0", report=False) == expected and capsys.readouterr().out == ""
