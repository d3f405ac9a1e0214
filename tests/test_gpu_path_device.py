"""The GPU path, reproduced on the CPU by forcing Paddle's mechanisms (issue 20, points 7, 10, 11, 12): the
on-device loader's copies to the device, preprocessing that makes no Paddle tensor, the device that serve,
predict and a launched run compute on, and export parity computed in full float32 (TF32 off)."""
import importlib
import logging
import os

import numpy as np
import paddle
import pytest
from paddle.vision import transforms as T
from PIL import Image

from own_images import digits_config
from paddle_cls import CIFAR10Dataset
from paddle_cls.data.batched import CIFAR10BatchLoader
from paddle_cls.data.preprocessing import build_preprocess, preprocessing_steps
from paddle_cls.data.transforms import build_transforms
from paddle_cls.deploy.export import export
from paddle_cls.errors import ConfigError
from paddle_cls.utils.runtime import default_cpu_threads, set_device


# 7. The whole-batch loader on the device
def test_the_device_loader_copies_one_order_to_the_device_an_epoch(cifar_folder, monkeypatch):
    dataset = paddle.io.Subset(CIFAR10Dataset(cifar_folder, "train"), list(range(10, 200)))
    loader = CIFAR10BatchLoader(dataset, 32, shuffle=True, on_device=True)
    host = CIFAR10BatchLoader(dataset, 32, shuffle=True)
    copies, to_tensor = [], paddle.to_tensor

    def counted(data, *args, **kwargs):
        copies.append(np.shape(data))
        return to_tensor(data, *args, **kwargs)

    for epoch in (1, 2):
        np.random.seed(epoch)
        expected = [labels.numpy() for _, labels in host]
        monkeypatch.setattr(paddle, "to_tensor", counted)
        np.random.seed(epoch)
        labels = [labels.numpy() for _, labels in loader]
        monkeypatch.setattr(paddle, "to_tensor", to_tensor)
        assert [len(batch) for batch in labels] == [32] * 5 + [30]
        assert all(np.array_equal(a, b) for a, b in zip(labels, expected))  # the same order, sliced on the device
    assert copies == [(190,), (190,)]  # the epoch's order, once an epoch: no copy (and wait) per batch


# 10. Preprocessing on the CPU
def _no_paddle_tensors(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("preprocessing made a Paddle tensor (a copy to the device and kernels per sample)")

    monkeypatch.setattr(paddle, "to_tensor", refuse)


IMAGE_STEPS = [{"name": "Resize", "size": 40}, {"name": "CenterCrop", "size": 32}]
NORMALIZE = {"name": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@pytest.mark.parametrize("steps", [
    IMAGE_STEPS + [{"name": "ToTensor"}, NORMALIZE],
    IMAGE_STEPS + [{"name": "ToTensor"}, {"name": "Normalize", "mean": 0.5, "std": 0.25}],
    IMAGE_STEPS + [{"name": "ToTensor", "data_format": "HWC"}],
])
def test_preprocessing_makes_no_paddle_tensor_and_gives_paddles_values(steps, monkeypatch):
    rng = np.random.RandomState(0)
    pictures = [Image.fromarray(rng.randint(0, 256, (45, 61, 3), dtype=np.uint8)), Image.new("L", (37, 50), 77)]
    # as they ran before: paddle.vision's ToTensor, making a Paddle tensor that the steps after it computed on
    before = T.Compose([T.ToTensor(**{key: value for key, value in spec.items() if key != "name"})
                        if spec["name"] == "ToTensor" else build_transforms([spec], "t") for spec in steps])
    reference = [before(picture).numpy() for picture in pictures]
    _no_paddle_tensors(monkeypatch)
    transform = build_transforms(steps, "t")
    for picture, expected in zip(pictures, reference):
        sample = transform(picture)
        assert isinstance(sample, np.ndarray) and sample.dtype == np.float32
        np.testing.assert_array_equal(sample, expected)  # bit for bit


def test_serving_predicting_and_dataset_samples_are_preprocessed_on_the_cpu(digits, tmp_path, monkeypatch):
    from paddle_cls.data.loader import build_dataset

    config = digits_config(tmp_path, digits)
    preprocess = build_preprocess(preprocessing_steps(config))  # what predict, serve and Predictor run
    _no_paddle_tensors(monkeypatch)
    sample = preprocess(Image.new("RGB", (97, 61), (255, 0, 0)))
    assert sample.shape == (3, 32, 32) and sample[0].max() == 1.0 and sample[1].max() == -1.0
    image, _ = build_dataset(config, "Test")[0]  # the loader's samples with num_workers: 0
    assert isinstance(image, np.ndarray) and image.shape == (3, 32, 32) and image.dtype == np.float32


@pytest.mark.parametrize("step, what", [({"name": "RandomHorizontalFlip"}, "RandomHorizontalFlip"),
                                        (dict(NORMALIZE, to_rgb=True), "Normalize with to_rgb: true")])
def test_an_image_step_after_totensor_is_one_line(step, what):
    # on a CHW array paddle.vision's image transforms take the channels for the height; Paddle's tensor path did not
    with pytest.raises(ConfigError, match=rf"^t.2: {what} after ToTensor \(t.1\): ToTensor makes the model's CHW "
                                          r"array and ends the image steps; move it before ToTensor"):
        build_transforms([{"name": "Resize", "size": 32}, {"name": "ToTensor"}, step], "t")


# 11. The device of serve, predict and a launched run
def test_cpu_under_a_gpu_launch_stays_on_the_cpu(monkeypatch):
    import paddle.distributed.parallel as parallel

    threads = default_cpu_threads()
    monkeypatch.setattr(paddle.base.core, "is_compiled_with_cuda", lambda: True)  # a CUDA build of Paddle
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")  # under paddle.distributed.launch --devices 0,1
    monkeypatch.setenv("FLAGS_selected_gpus", "1")
    monkeypatch.setenv("PADDLE_DISTRI_BACKEND", "auto")
    set_device("cpu", threads)
    assert paddle.get_device() == "cpu"
    # what init_parallel_env then decides: gloo and the CPU place, where `auto` means NCCL and the launcher's GPU
    assert parallel._is_cpuonly(os.environ["PADDLE_DISTRI_BACKEND"])


def test_another_gpu_under_a_launch_is_said_in_one_line(monkeypatch, caplog):
    chosen = []
    monkeypatch.setattr(paddle.base.core, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(paddle, "set_device", chosen.append)
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    monkeypatch.setenv("FLAGS_selected_gpus", "0")
    with caplog.at_level(logging.INFO):
        assert set_device("gpu:1") == "gpu:0" and chosen == ["gpu:0"]
    assert "Global.device: gpu:1 under paddle.distributed.launch: each process computes on the GPU the launcher " \
           "gives it (--devices); this one on gpu:0" in caplog.text


@pytest.fixture
def gpu_machine(monkeypatch):
    """A CUDA build with two GPUs, as far as paddle_cls and paddle.inference.Config can tell: Paddle's current
    device is gpu:0 until set, and each Config records where it was asked to run (`device`: gpu:N or cpu), then
    runs on the CPU."""
    current = {"device": "gpu:0"}
    real_set_device, real_config, real_create = paddle.set_device, paddle.inference.Config, \
        paddle.inference.create_predictor

    def set_device(device):
        current["device"] = device
        real_set_device("cpu")

    class Config:
        made = []

        def __init__(self, *args):
            self.real, self.device = real_config(*args), None
            Config.made.append(self)

        def enable_use_gpu(self, memory_mb, index):
            self.device = f"gpu:{index}"

        def disable_gpu(self):
            self.device = "cpu"
            self.real.disable_gpu()

        def __getattr__(self, name):
            return getattr(self.real, name)

    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(paddle, "get_device", lambda: current["device"])
    monkeypatch.setattr(paddle, "set_device", set_device)
    monkeypatch.setattr(paddle.inference, "Config", Config)
    monkeypatch.setattr(paddle.inference, "create_predictor", lambda config: real_create(config.real))
    return Config.made


@pytest.fixture(scope="module")
def untrained_export(digits, tmp_path_factory):
    """A digits config and the export of untrained weights (with ONNX where paddle2onnx and onnxruntime are)."""
    import importlib.util

    from paddle_cls.engine.components import build_model

    tmp = tmp_path_factory.mktemp("device")
    config = digits_config(tmp, digits, "DataLoader.Test.subset=[0, 8]")
    os.makedirs(config["Global"]["output_dir"])
    paddle.seed(0)
    paddle.save(build_model(config).state_dict(), os.path.join(config["Global"]["output_dir"], "best_model.pdparams"))
    onnx = all(importlib.util.find_spec(name) for name in ("onnxruntime", "paddle2onnx"))
    return str(tmp / "digits.yml"), export(config, onnx=onnx, parity_images=8), onnx  # digits_config wrote it


@pytest.mark.parametrize("source, options, device", [
    ("-c", ["-o", "Global.device=cpu"], "cpu"), ("-c", ["-o", "Global.device=gpu:1"], "gpu:1"),
    ("-c", ["-o", "Global.device=auto"], "gpu:0"), ("-c", ["--device", "gpu:1"], "gpu:1"),  # over Global.device: cpu
    ("--model", ["--device", "cpu"], "cpu"), ("--model", [], "gpu:0")])  # --model: --device, else auto
def test_serve_runs_the_model_where_the_config_or_device_says(untrained_export, gpu_machine, monkeypatch, source,
                                                              options, device):
    pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
    import uvicorn

    from paddle_cls.cli import serve_main

    config, folder, _ = untrained_export
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    assert serve_main([source, config if source == "-c" else folder, "--engine", "inference", *options]) == 0
    assert [made.device for made in gpu_machine] == [device]
    assert apps[0].state.device == device


def test_serve_names_a_bad_device_in_one_line(untrained_export, capsys):
    pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
    from paddle_cls.cli import serve_main

    _, folder, _ = untrained_export
    assert serve_main(["--model", folder, "--device", "cuda"]) == 2
    assert capsys.readouterr().err == "error: --device: 'cuda' is not a device: use auto, cpu, gpu or gpu:N\n"


def test_predict_on_the_cpu_of_a_gpu_machine_picks_the_cpu_engine(untrained_export, gpu_machine):
    from paddle_cls.config import load_config
    from paddle_cls.deploy.trained import trained_model

    config_path, _, onnx = untrained_export
    config = load_config(config_path, ["Global.device=cpu"])
    model = trained_model(config, "auto")
    if onnx:
        assert type(model.run).__name__ == "OnnxModel" and gpu_machine == []  # auto: onnxruntime on a CPU
    else:
        assert [made.device for made in gpu_machine] == ["cpu"]
    gpu_machine.clear()
    trained_model(load_config(config_path, ["Global.device=gpu:1"]), "inference")
    assert [made.device for made in gpu_machine] == ["gpu:1"]


# 12. Export parity in full float32
@pytest.fixture
def tf32_switches(monkeypatch):
    """Paddle's TF32 switches (`paddle.base.core.set_cudnn_switch`, ...), on as in a CUDA build, recorded."""
    state = {"cudnn": True, "cublas": True}
    for name in state:
        monkeypatch.setattr(paddle.base.core, f"get_{name}_switch", lambda name=name: state[name], raising=False)
        monkeypatch.setattr(paddle.base.core, f"set_{name}_switch",
                            lambda value, name=name: state.update({name: bool(value)}), raising=False)
    return state


def test_export_parity_computes_both_sides_without_tf32(untrained_export, tf32_switches, monkeypatch):
    from paddle_cls.config import load_config

    exporting = importlib.import_module("paddle_cls.deploy.export")  # the module, not the package's `export`

    seen = {}
    load, engine = exporting.load_trained_model, exporting.exported_model

    def recording_load(config):
        model = load(config)
        def record(layer, inputs):
            if paddle.in_dynamic_mode():  # not paddle.jit.save tracing it
                seen.setdefault("dygraph", dict(tf32_switches))

        model.register_forward_pre_hook(record)
        return model

    def recording_engine(*args):
        run = engine(*args)
        return lambda images: seen.setdefault(args[1], dict(tf32_switches)) and run(images)

    monkeypatch.setattr(exporting, "load_trained_model", recording_load)
    monkeypatch.setattr(exporting, "exported_model", recording_engine)
    export(load_config(untrained_export[0]), parity_images=8)
    assert seen == {side: {"cudnn": False, "cublas": False} for side in ("dygraph", "inference")}
    assert tf32_switches == {"cudnn": True, "cublas": True}  # as before, for training and serving


def test_tf32_comes_back_when_the_check_fails(tf32_switches):
    from paddle_cls.deploy.export import float32_kernels

    with pytest.raises(ValueError), float32_kernels():
        assert tf32_switches == {"cudnn": False, "cublas": False}
        raise ValueError("an engine failed")
    assert tf32_switches == {"cudnn": True, "cublas": True}
