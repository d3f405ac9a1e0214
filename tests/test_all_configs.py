"""Every shipped config runs end to end on small files in the real formats, on both engines."""
import json
import os

import pytest

from paddle_cls.config import load_config
from paddle_cls.engine import train
from paddle_cls.utils.history import FIELDS

pytestmark = pytest.mark.slow

CONFIGS = ["resnet18", "model_resnet18", "resnet18_hapi", "mynet_cifar10", "lenet_mnist", "resnet50_hapi",
           "cnn_mnist", "simplecnn_cifar10"]


def _quick(config_name, engine, data_dir, output_dir):
    overrides = [f"Global.engine={engine}", f"Global.data_dir={data_dir}", "Global.download=false",
                 f"Global.output_dir={output_dir}", "Global.epochs=2", "Global.log_steps=2", "Global.device=cpu",
                 "Global.deterministic=true",
                 "DataLoader.Train.subset=[0, 24]", "DataLoader.Train.batch_size=8",
                 "DataLoader.Eval.subset=[24, 40]", "DataLoader.Eval.batch_size=8",
                 "DataLoader.Test.subset=[0, 16]", "DataLoader.Test.batch_size=8"]
    if load_config(f"configs/{config_name}.yml")["Global"]["eval_steps"]:
        overrides.append("Global.eval_steps=2")  # the chapter's 3000 is more than these 6 steps
    return load_config(f"configs/{config_name}.yml", overrides)


@pytest.mark.parametrize("engine", ["runner", "hapi"])
@pytest.mark.parametrize("config_name", CONFIGS)
def test_config_runs_on_engine(config_name, engine, data_dir, tmp_path):
    config = _quick(config_name, engine, data_dir, str(tmp_path))
    results = train(config)
    files = set(os.listdir(tmp_path))
    # The course saves a best model only when the dev score beats 0.
    assert ("best_model.pdparams" in files) == (results["best_dev_score"] > 0)
    assert {config["Global"]["save_name"], "config.yml", "train.log", "history.json",
            "history.csv", "loss_accuracy.png", "validation_accuracy.png", "results.json", "visualdl"} <= files
    assert ("training_loss_acc.png" in files) == (engine == "runner")
    assert ("hapi" in files) == (engine == "hapi")
    history = json.load(open(tmp_path / "history.json"))
    assert [row["epoch"] for row in history] == [0, 1] and set(history[0]) == set(FIELDS)
    assert all(row["train_loss"] > 0 for row in history)
    assert all(row["dev_accuracy"] is not None for row in history)
    assert 0 <= results["test_accuracy"] <= 1 and results["test_loss"] > 0
    assert os.listdir(tmp_path / "visualdl")
    log = open(tmp_path / "train.log").read()
    assert log.count("[Test] accuracy/loss: ") == 1 and log.count("[Epoch] 1/2: ") == 1
    if engine == "hapi":  # Paddle's own progress lines reach the log file too
        assert "Eval samples:" in log
