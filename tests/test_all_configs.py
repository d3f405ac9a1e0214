"""Every shipped config, as shipped, runs for one epoch on a few hundred images in the real formats, on both
engines: it trains, evaluates at its last step, keeps its best model and tests it, and both engines feed the
model the batches its DataLoader section describes."""
import json
import math
import os

import pytest

from paddle_cls.config import load_config
from paddle_cls.data.loader import build_dataset
from paddle_cls.engine import components, train
from paddle_cls.utils.history import FIELDS

pytestmark = pytest.mark.slow

CONFIGS = ["resnet18", "model_resnet18", "resnet18_hapi", "mynet_cifar10", "lenet_mnist", "resnet50_hapi",
           "cnn_mnist", "simplecnn_cifar10", "imagefolder"]
# simplecnn_cifar10 holds out [20000, 25000] of 50,000 images; the same fractions of the 320 here.
# imagefolder: resnet18 at 224 px on a few of the digits folder's images, without Paddle's (downloaded) weights.
SMALL_COPY = {"simplecnn_cifar10": ["DataLoader.Train.subset=[0, 128]", "DataLoader.Eval.subset=[128, 160]"],
              "imagefolder": ["Arch.pretrained=false", "DataLoader.Train.subset=[0, 40]",
                              "DataLoader.Eval.subset=[0, 10]", "DataLoader.Test.subset=[0, 10]"]}


def _one_epoch(config_name, engine, data_dir, output_dir):
    overrides = [f"Global.engine={engine}", f"Global.data_dir={data_dir}", "Global.download=false",
                 f"Global.output_dir={output_dir}", "Global.epochs=1", "Global.device=cpu", "Global.deterministic=true",
                 *SMALL_COPY.get(config_name, [])]
    return load_config(f"configs/{config_name}.yml", overrides)


def _batch_sizes(config, split):
    section = config["DataLoader"][split]
    count, size = len(build_dataset(config, split)), section.get("batch_size", 64)
    full, rest = divmod(count, size)
    return [size] * full + ([rest] if rest and not section.get("drop_last", False) else [])


@pytest.mark.parametrize("engine", ["runner", "hapi"])
@pytest.mark.parametrize("config_name", CONFIGS)
def test_config_runs_one_epoch_on_a_small_copy(config_name, engine, request, tmp_path, monkeypatch):
    data_dir = request.getfixturevalue("digits" if config_name == "imagefolder" else "data_dir")
    config = _one_epoch(config_name, engine, data_dir, str(tmp_path))
    seen = []  # (training?, batch size) of every forward pass
    build_model = components.build_model

    def recording_model(config):
        model = build_model(config)
        model.register_forward_pre_hook(lambda layer, inputs: seen.append((layer.training, inputs[0].shape[0])))
        return model

    monkeypatch.setattr(components, "build_model", recording_model)
    results = train(config)
    expected = [(True, n) for n in _batch_sizes(config, "Train")]
    if config["Global"]["train_accuracy"] and engine == "runner":  # a pass over the training split (hapi: running)
        expected += [(False, n) for n in _batch_sizes(config, "Train")]  # then the dev split, as the tutorial does
    expected += [(False, n) for n in _batch_sizes(config, "Eval")] + [(False, n) for n in _batch_sizes(config, "Test")]
    assert seen == expected
    files = set(os.listdir(tmp_path))
    assert results["best_dev_score"] > 0 and "best_model.pdparams" in files
    assert {config["Global"]["save_name"], "config.yml", "train.log", "history.json", "history.csv",
            "loss_accuracy.png", "validation_accuracy.png", "results.json", "visualdl"} <= files
    assert ("training_loss_acc.png" in files) == (engine == "runner")
    assert ("hapi" in files) == (engine == "hapi")
    history = json.load(open(tmp_path / "history.json"))
    assert [row["epoch"] for row in history] == [0] and set(history[0]) == set(FIELDS)
    assert history[0]["train_loss"] > 0 and history[0]["dev_accuracy"] == results["best_dev_score"]
    test_samples = sum(_batch_sizes(config, "Test"))
    assert results["test_samples"] == test_samples and 0 <= results["test_accuracy"] <= 1
    assert math.isfinite(results["test_loss"])
    log = open(tmp_path / "train.log").read()
    assert log.count("[Test] accuracy/loss: ") == 1 and log.count("[Epoch] 0/1: ") == 1
    assert log.count("[Evaluate]  dev score: ") == 1
    if engine == "hapi":  # Paddle's own progress lines reach the log file too
        assert f"Eval samples: {sum(_batch_sizes(config, 'Eval'))}" in log
