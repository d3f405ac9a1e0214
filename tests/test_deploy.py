"""Deploying a trained model: ONNX export checked against the trained model on real images, the three engines
(dygraph, paddle.inference with oneDNN, onnxruntime) giving the same accuracy and labels, and clear errors."""
import copy
import importlib.util
import json
import os
import time

import pytest

from own_images import digits_config
from paddle_cls.deploy import evaluate, predict
from paddle_cls.deploy.backends import choose_engine
from paddle_cls.deploy.export import export
from paddle_cls.deploy.predictor import Predictor
from paddle_cls.engine import train
from paddle_cls.errors import CheckpointError, ConfigError

ONNX = all(importlib.util.find_spec(name) for name in ("onnxruntime", "paddle2onnx"))
needs_onnx = pytest.mark.skipif(not ONNX, reason="the [onnx] extra (paddle2onnx, onnxruntime) is not installed")
BACKENDS = ("dygraph", "inference", "onnxruntime") if ONNX else ("dygraph", "inference")


@pytest.fixture(scope="module")
def exported(digits, tmp_path_factory):
    config = digits_config(tmp_path_factory.mktemp("deploy"), digits, epochs=2)
    train(config)
    return config, export(config, onnx=ONNX)


def _images(digits, count=12):
    folder = os.path.join(digits, "test", "seven")
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if "." in name][:count]


@needs_onnx
def test_onnx_export_is_verified_on_test_images(exported, caplog):
    config, folder = exported
    info = json.load(open(os.path.join(folder, "preprocess.json")))
    assert os.path.isfile(os.path.join(folder, "model.onnx"))
    assert set(info["verified"]) == {"inference", "onnxruntime"} and max(info["verified"].values()) <= 1e-4
    assert info["weights"]["path"] == os.path.join(config["Global"]["output_dir"], "best_model.pdparams")
    caplog.clear()
    export(config, onnx=True)
    assert "[Export] onnxruntime against dygraph on 64 test images: max |logit difference| " in caplog.text


def test_every_engine_gives_the_same_accuracy_and_labels(exported, digits):
    config, folder = exported
    scores = {engine: evaluate(config, engine)[0] for engine in BACKENDS}
    assert len(set(scores.values())) == 1 and scores["dygraph"] > 0.8
    labels = {engine: [ranked[0][0] for _, _, ranked in predict(config, _images(digits), engine=engine)[0]]
              for engine in BACKENDS}
    assert all(labels[engine] == labels["dygraph"] for engine in BACKENDS)
    assert [ranked[0][0] for ranked in Predictor(folder, BACKENDS[-1])(_images(digits))] == labels["dygraph"]


def test_auto_runs_the_verified_export_only_for_the_weights_it_was_made_from(exported, tmp_path):
    config, folder = exported
    weights = os.path.join(config["Global"]["output_dir"], "best_model.pdparams")
    assert choose_engine("auto", folder, weights) == BACKENDS[-1]
    assert choose_engine("auto", str(tmp_path), weights) == "dygraph"  # no export there
    other = tmp_path / "other.pdparams"
    other.write_bytes(open(weights, "rb").read())
    assert choose_engine("auto", folder, str(other)) == "dygraph"
    os.utime(weights, (time.time(), time.time() + 5))  # retrained since the export
    try:
        assert choose_engine("auto", folder, weights) == "dygraph"
    finally:
        export(config, onnx=ONNX)


def test_bad_deployments_are_one_line_errors(exported, digits, tmp_path):
    config, folder = exported
    untrained = copy.deepcopy(config)
    untrained["Global"]["output_dir"] = str(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match=r"no model file at .*best_model.pdparams: train first"):
        export(untrained, onnx=ONNX)
    assert not os.path.exists(tmp_path / "nothing" / "inference")

    onnx_file = os.path.join(folder, "model.onnx")
    if ONNX:
        os.rename(onnx_file, onnx_file + ".away")
    try:
        with pytest.raises(CheckpointError,
                           match=r"no model.onnx in .*: export with `paddle-cls export -c CONFIG --onnx`"):
            evaluate(config, "onnxruntime")
    finally:
        if ONNX:
            os.rename(onnx_file + ".away", onnx_file)

    os.makedirs(tmp_path / "three")  # a config of three classes, pointed at this export
    for name in ("one", "two", "three"):
        os.symlink(os.path.join(digits, "test", name), tmp_path / "three" / name)
    three = copy.deepcopy(config)
    for split in ("Train", "Eval", "Test"):
        three["DataLoader"][split]["dataset"] = {"name": "ImageFolder", "root": str(tmp_path / "three")}
    with pytest.raises(CheckpointError, match=r"the export in .* was made for another config: its classes are "
                                              r"eight, five, four, nine, one ... \(10 in all\), input \[3, 32, 32\]; "
                                              r"this config's are one, three, two, input"):
        predict(three, _images(digits, 1), engine="inference")


def test_onnx_on_paddle_2_says_which_paddle2onnx_to_install(tmp_path, monkeypatch):
    import importlib.metadata

    import paddle

    from paddle_cls.deploy.export import to_onnx

    monkeypatch.setattr(paddle, "__version__", "2.6.2")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.1.0")
    with pytest.raises(ConfigError, match=r"paddle2onnx 2.1.0 converts Paddle 3 models; with Paddle 2.6.2 install "
                                          r"paddle2onnx 1.x: pip install 'paddle2onnx<2'"):
        to_onnx(str(tmp_path))


def _resnet18_at_224(digits, tmp_path, fc_scale):
    """imagefolder.yml's model (resnet18 at 224 px, 3 classes, pretrained: false), its weights saved as the best
    model, the classifier scaled by `fc_scale` (logits in the hundreds, as after some training)."""
    import paddle

    from paddle_cls.config import load_config
    from paddle_cls.engine.components import build_model

    for split in ("train", "test"):
        os.makedirs(tmp_path / "data" / split)
        for name in ("one", "two", "three"):
            os.symlink(os.path.join(digits, "test", name), tmp_path / "data" / split / name)
    config = load_config("configs/imagefolder.yml", [
        f"Global.data_dir={tmp_path / 'data'}", f"Global.output_dir={tmp_path / 'out'}", "Global.device=cpu",
        "Arch.pretrained=false", "DataLoader.Test.subset=[0, 2]", "DataLoader.Test.num_workers=0"])
    paddle.seed(0)
    model = build_model(config)
    model.fc.weight.set_value(model.fc.weight * fc_scale)
    os.makedirs(tmp_path / "out")
    paddle.save(model.state_dict(), str(tmp_path / "out" / "best_model.pdparams"))
    return config, model


def test_a_224_px_resnet18_with_large_logits_exports_on_both_engines(digits, tmp_path, capfd, caplog):
    import paddle

    from paddle_cls.deploy.export import parity_inputs

    config, model = _resnet18_at_224(digits, tmp_path, fc_scale=5.0)
    model.eval()
    with paddle.no_grad():
        logits = model(paddle.to_tensor(parity_inputs(config, 2))).numpy()
    assert abs(logits).max() > 200  # float32 rounding differs between kernels by more than 1e-4 here
    folder = export(config, onnx=ONNX, parity_images=2)
    info = json.load(open(os.path.join(folder, "preprocess.json")))
    assert set(info["verified"]) == set(BACKENDS[1:]) and info["input_shape"] == [3, 224, 224]
    assert "[Export] inference against dygraph on 2 test images: max |logit difference| " in caplog.text
    assert "top-3 labels the same" in caplog.text
    labels = [ranked[0][0] for ranked in Predictor(folder, BACKENDS[-1])(_images(digits, 2))]
    assert set(labels) <= {"one", "two", "three"}
    assert "Removing initializer" not in capfd.readouterr().err  # onnxruntime's notes on paddle2onnx's output


@pytest.mark.parametrize("fault", ["other weights", "classes swapped"])
def test_an_export_of_other_weights_or_a_broken_one_is_refused(digits, tmp_path, monkeypatch, fault):
    import paddle

    config = digits_config(tmp_path, digits, "DataLoader.Test.subset=[0, 16]")
    os.makedirs(config["Global"]["output_dir"])
    from paddle_cls.engine.components import build_model

    paddle.seed(0)
    paddle.save(build_model(config).state_dict(), os.path.join(config["Global"]["output_dir"], "best_model.pdparams"))
    save = paddle.jit.save

    def faulty_save(layer, path, input_spec):
        weight, bias = layer.linear2.weight, layer.linear2.bias
        kept = weight.numpy(), bias.numpy()
        if fault == "other weights":  # 1% off: the same labels, other logits
            weight.set_value(kept[0] * 1.01)
        else:
            weight.set_value(kept[0][:, ::-1].copy())
            bias.set_value(kept[1][::-1].copy())
        save(layer, path, input_spec=input_spec)
        weight.set_value(kept[0])
        bias.set_value(kept[1])

    monkeypatch.setattr(paddle.jit, "save", faulty_save)
    reason = r"its (probabilities|logits) differ by up to " if fault == "other weights" else r"its top-5 labels differ"
    with pytest.raises(CheckpointError, match=r"the inference export differs from the trained model on test images: "
                                              + reason + r".*; export refused and removed"):
        export(config, parity_images=16)
    assert os.listdir(os.path.join(config["Global"]["output_dir"], "inference")) == []


def test_parity_is_judged_as_users_see_the_results():
    import numpy as np

    from paddle_cls.deploy.export import compare_logits

    reference = np.array([[222.0, 221.9999, -40.0, 3.0], [0.5, 0.2, 0.1, -0.3]], dtype=np.float32)
    rounding = reference + np.array([[9.8e-4, -9.8e-4, 0, 0], [5e-5, -5e-5, 0, 0]], dtype=np.float32)
    summary, problem = compare_logits(reference, rounding, k=2)
    assert problem is None and "top-2 labels the same" in summary  # a near-tie may swap its two labels
    assert compare_logits(reference, reference + np.float32([[0.03], [0]]), k=2)[1] == \
        "its logits differ by up to 1.35e-04 of their size (above 0.0001)"
    swapped = reference[:, [1, 0, 2, 3]].copy()
    swapped[1] = reference[1, [1, 0, 2, 3]]
    assert compare_logits(reference, swapped, k=2)[1] == "its top-2 labels differ on 1 of 2 images"
    tie = np.array([[222.0, 222.0, -40.0, 3.0]], dtype=np.float32)  # large logits, two classes at 50%
    apart = np.array([[222.02, 221.98, -40.0, 3.0]], dtype=np.float32)  # 1e-4 of their size, 1% in probability
    assert compare_logits(tie, apart, k=2)[1] == "its probabilities differ by up to 1.00e-02 (above 0.001)"
