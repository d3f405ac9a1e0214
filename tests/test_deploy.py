"""Deploying a trained model: ONNX export checked against the trained model on real images, the three engines
(dygraph, paddle.inference with oneDNN, onnxruntime) giving the same accuracy and labels, and clear errors."""
import copy
import importlib.util
import json
import os
import time

import pytest

from own_images import digits_config
from paddle_cls.engine import evaluate, predict, train
from paddle_cls.engine.export import export
from paddle_cls.engine.predictor import Predictor, choose_engine
from paddle_cls.errors import CheckpointError, ConfigError

ONNX = all(importlib.util.find_spec(name) for name in ("onnxruntime", "paddle2onnx"))
needs_onnx = pytest.mark.skipif(not ONNX, reason="the [onnx] extra (paddle2onnx, onnxruntime) is not installed")
ENGINES = ("dygraph", "inference", "onnxruntime") if ONNX else ("dygraph", "inference")


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
    scores = {engine: evaluate(config, engine)[0] for engine in ENGINES}
    assert len(set(scores.values())) == 1 and scores["dygraph"] > 0.8
    labels = {engine: [ranked[0][0] for _, _, ranked in predict(config, _images(digits), engine=engine)[0]]
              for engine in ENGINES}
    assert all(labels[engine] == labels["dygraph"] for engine in ENGINES)
    assert [ranked[0][0] for ranked in Predictor(folder, ENGINES[-1])(_images(digits))] == labels["dygraph"]


def test_auto_runs_the_verified_export_only_for_the_weights_it_was_made_from(exported, tmp_path):
    config, folder = exported
    weights = os.path.join(config["Global"]["output_dir"], "best_model.pdparams")
    assert choose_engine("auto", folder, weights) == ENGINES[-1]
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
        with pytest.raises(CheckpointError, match=r"no model.onnx in .*: export with `paddle-cls export -c CONFIG --onnx`"):
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

    from paddle_cls.engine.export import _to_onnx

    monkeypatch.setattr(paddle, "__version__", "2.6.2")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.1.0")
    with pytest.raises(ConfigError, match=r"paddle2onnx 2.1.0 converts Paddle 3 models; with Paddle 2.6.2 install "
                                          r"paddle2onnx 1.x: pip install 'paddle2onnx<2'"):
        _to_onnx(str(tmp_path))
