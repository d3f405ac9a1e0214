"""The config resolved once: each split's dataset built once per run, the loader settings that take effect shown
by --print-config, and dataset facts on the dataset classes (a new dataset is a class and a table entry)."""
import json

import numpy as np
import paddle
import pytest
import yaml

from own_images import digits_config
from paddle_cls.cli import train_main
from paddle_cls.config import load_config
from paddle_cls.data import DATASETS, ImageFolder
from paddle_cls.data.loader import build_loader, class_names
from paddle_cls.data.preprocessing import preprocessing_steps
from paddle_cls.deploy import evaluate
from paddle_cls.engine import train
from paddle_cls.engine.components import build_model
from paddle_cls.errors import ConfigError


@pytest.fixture
def folder_builds(monkeypatch):
    """The `root`/`split` of every ImageFolder built (each build indexes the folder's files)."""
    built = []
    original = ImageFolder.__init__

    def counting(self, root, *args, **kwargs):
        built.append((root, kwargs.get("split")))
        original(self, root, *args, **kwargs)

    monkeypatch.setattr(ImageFolder, "__init__", counting)
    return built


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_an_image_folder_run_indexes_each_split_once(digits, tmp_path, folder_builds, engine):
    config = digits_config(tmp_path, digits, f"Global.engine={engine}", epochs=1)
    results = train(config)
    assert results["test_samples"] == 297
    assert sorted(folder_builds, key=str) == sorted([("train", "train"), ("train", "val"), ("test", None)], key=str)
    folder_builds.clear()
    evaluate(config)  # the sibling: eval builds each split it reads once too
    assert len(folder_builds) == len(set(folder_builds)) == 3


def test_print_config_shows_the_loader_settings_that_take_effect(capsys):
    assert train_main(["-c", "configs/mynet_cifar10.yml", "-o", "DataLoader.Test.drop_last=true",
                       "--print-config"]) == 0
    loaders = yaml.safe_load(capsys.readouterr().out)["DataLoader"]
    assert {split: (loaders[split]["batch_size"], loaders[split]["shuffle"], loaders[split]["drop_last"],
                    loaders[split]["num_workers"]) for split in loaders} == {
        "Train": (32, True, False, 0), "Eval": (32, False, False, 0), "Test": (32, False, True, 0)}


def test_print_config_shows_a_paddleclas_sampler_as_the_settings_it_means(tmp_path, capsys):
    config = yaml.safe_load(open("configs/mynet_cifar10.yml"))
    eval_split = config["DataLoader"]["Eval"]
    del eval_split["batch_size"]
    eval_split["sampler"] = {"name": "DistributedBatchSampler", "batch_size": 16, "shuffle": False,
                             "drop_last": False}
    eval_split["loader"] = {"num_workers": 2, "use_shared_memory": True}
    path = tmp_path / "paddleclas_style.yml"
    path.write_text(yaml.safe_dump(config))
    assert train_main(["-c", str(path), "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)["DataLoader"]["Eval"]
    assert (shown["batch_size"], shown["shuffle"], shown["num_workers"]) == (16, False, 2)
    assert "sampler" not in shown and "loader" not in shown


class Squares(paddle.io.Dataset):
    """A dataset of the user's own making: bright squares (class 1) or dark ones (class 0), 3x32x32."""

    label_names = ("dark", "bright")
    own_images = False
    whole_batches = False
    steps = None

    def __init__(self, folder_path=None, mode="train", transforms=None, download=False, count=64):
        rng = np.random.RandomState(0 if mode == "train" else 1)
        self.labels = rng.randint(0, 2, size=count).astype(np.int64)
        self.images = (rng.rand(count, 3, 32, 32) * 0.2 + self.labels[:, None, None, None] * 0.8).astype(np.float32)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __len__(self):
        return len(self.images)


def test_a_new_dataset_is_a_class_and_a_table_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "Squares", Squares)
    config = load_config("configs/mynet_cifar10.yml", [
        f"Global.output_dir={tmp_path}", "Global.device=cpu", "Global.epochs=4", "Global.progress=false",
        "DataLoader.Train.batch_size=8",
        "Arch.num_classes=auto", "DataLoader.Train.dataset={name: Squares, mode: train}",
        "DataLoader.Eval.dataset={name: Squares, mode: test}", "DataLoader.Test.dataset={name: Squares, mode: test}"])
    assert class_names(config) == ("dark", "bright")
    assert build_model(config)(paddle.zeros([1, 3, 32, 32])).shape == [1, 2]  # num_classes: auto
    assert preprocessing_steps(config)["steps"][0] == {"name": "Resize", "size": [32, 32]}  # one sample size
    results = train(config)
    assert results["test_samples"] == 64 and results["test_accuracy"] > 0.9
    assert json.load(open(tmp_path / "classes.json")) == ["dark", "bright"]
    config["DataLoader"]["Train"]["batched"] = True
    with pytest.raises(ConfigError, match="whole-batch loading is for CIFAR10Dataset only, not Squares"):
        build_loader(config, "Train")


def test_whole_batch_loading_of_a_dataset_without_it_stops_before_anything_is_written(data_dir, tmp_path):
    output_dir = tmp_path / "run"
    config = load_config("configs/mynet_cifar10.yml", [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}",
                                                       "Global.device=cpu", "DataLoader.Train.batched=true"])
    with pytest.raises(ConfigError, match="DataLoader.Train.batched/on_device: whole-batch loading is for "
                                          "CIFAR10Dataset only, not Cifar10"):
        train(config)
    assert not output_dir.exists()


def test_print_config_shows_the_loss_and_metric_a_config_leaves_out(tmp_path, capsys):
    config = yaml.safe_load(open("configs/mynet_cifar10.yml"))
    del config["Loss"], config["Metric"]
    path = tmp_path / "no_loss.yml"
    path.write_text(yaml.safe_dump(config))
    assert train_main(["-c", str(path), "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["Loss"] == {"name": "CrossEntropyLoss"} and shown["Metric"] == {"name": "Accuracy"}
