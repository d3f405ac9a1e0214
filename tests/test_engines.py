"""The two engines agree: same schedules, same metric, same history; and both learn."""
import json
import math

import numpy as np
import paddle
import pytest

from paddle_cls import Accuracy, RunnerV3
from paddle_cls.config import load_config
from paddle_cls.engine import train
from paddle_cls.data.loader import build_loader
from paddle_cls.engine.components import build_model
from paddle_cls.errors import ConfigError
from paddle_cls.utils.weights import load_model_file


def _config(data_dir, output_dir, engine, *extra):
    return load_config("configs/mynet_cifar10.yml", [
        f"Global.engine={engine}", f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}",
        "Global.device=cpu", "Global.log_steps=0", "DataLoader.Train.subset=[0, 24]", "DataLoader.Train.batch_size=8",
        "DataLoader.Eval.subset=[0, 32]", "DataLoader.Eval.batch_size=8", "DataLoader.Test.batch_size=16", *extra])


@pytest.mark.parametrize("schedule,expected", [
    ("{name: CosineAnnealingDecay, learning_rate: 0.001, T_max: 4, by_epoch: true}",
     [0.001, 0.0005 * (1 + math.cos(math.pi / 4)), 0.0005]),
    ("{name: PiecewiseDecay, boundaries: [3, 6], values: [0.01, 0.001, 0.0001]}",  # 3 steps an epoch, per step
     [0.001, 0.0001, 0.0001]),
])
def test_schedules_step_in_one_place_on_both_engines(schedule, expected, data_dir, tmp_path):
    for engine in ("runner", "hapi"):
        train(_config(data_dir, str(tmp_path / engine), engine, "Global.epochs=3",
                      f"Optimizer.learning_rate={schedule}"))
        history = json.load(open(tmp_path / engine / "history.json"))
        np.testing.assert_allclose([row["lr"] for row in history], expected, rtol=1e-6, err_msg=engine)


def test_hapi_learns_and_its_best_model_scores_what_it_logged(data_dir, tmp_path):
    config = _config(data_dir, str(tmp_path), "hapi", "Global.epochs=4", "DataLoader.Train.subset=[0, 160]",
                     "DataLoader.Train.batch_size=16", "Optimizer.learning_rate=0.005")
    results = train(config)
    history = json.load(open(tmp_path / "history.json"))
    best_row = max(history, key=lambda row: row["dev_accuracy"])
    assert results["best_dev_score"] == pytest.approx(best_row["dev_accuracy"]) and best_row["dev_accuracy"] > 0.3
    model = build_model(config)
    load_model_file(model, str(tmp_path / "best_model.pdparams"))
    score, loss = RunnerV3(model, None, paddle.nn.CrossEntropyLoss(), Accuracy()).evaluate(build_loader(config, "Eval"))
    assert score == pytest.approx(best_row["dev_accuracy"])
    assert loss == pytest.approx(best_row["dev_loss"], rel=1e-5)


def test_runner_and_hapi_evaluate_the_same_weights_alike(data_dir, tmp_path):
    config = _config(data_dir, str(tmp_path), "runner")
    paddle.seed(0)
    model = build_model(config)
    loader = build_loader(config, "Test")
    runner_score, _ = RunnerV3(model, None, paddle.nn.CrossEntropyLoss(), Accuracy()).evaluate(loader)
    hapi = paddle.Model(model)
    hapi.prepare(loss=paddle.nn.CrossEntropyLoss(), metrics=Accuracy(topk=(1, 5)))
    result = hapi.evaluate(loader.dataset, batch_size=16, verbose=0)
    assert result["acc_top1"] == pytest.approx(runner_score)
    assert result["acc_top5"] >= runner_score


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_to_static_trains_to_the_same_weights_and_amp_is_ignored_on_cpu(data_dir, tmp_path, engine, capsys):
    dynamic = train(_config(data_dir, str(tmp_path / "dynamic"), engine, "Global.epochs=1"))
    compiled = train(_config(data_dir, str(tmp_path / "static"), engine, "Global.epochs=1", "Global.to_static=true",
                             "Global.amp=O1"))
    assert compiled["weights_fingerprint"] == pytest.approx(dynamic["weights_fingerprint"], rel=1e-6)
    assert compiled["test_accuracy"] == dynamic["test_accuracy"]
    assert "Global.amp: O1 is for GPUs; training in float32 on cpu" in capsys.readouterr().out
    assert load_config("configs/mynet_cifar10.yml", ["Global.amp=off"])["Global"]["amp"] == "off"


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_a_run_whose_dev_accuracy_stays_zero_tests_the_first_evaluations_model(engine, data_dir, tmp_path,
                                                                              monkeypatch, capsys):
    # Every accuracy reads 0.0, as for a model that never gets a dev image right.
    monkeypatch.setattr(Accuracy, "accumulate", lambda self: 0.0 if len(self.topk) == 1 else [0.0] * len(self.topk))
    results = train(_config(data_dir, str(tmp_path), engine, "Global.epochs=2", "Optimizer.learning_rate=0.01"))
    history = json.load(open(tmp_path / "history.json"))
    assert [row["dev_accuracy"] for row in history] == [0.0, 0.0] and results["best_dev_score"] == 0.0
    assert results["tested_weights"] == "best_model.pdparams"  # not the final weights, for want of a best model
    assert "best model saved: the first evaluation (dev score 0.00000)" in capsys.readouterr().out
    best = paddle.load(str(tmp_path / "best_model.pdparams"))
    final = paddle.load(str(tmp_path / load_config("configs/mynet_cifar10.yml")["Global"]["save_name"]))
    assert any(not np.array_equal(best[name].numpy(), final[name].numpy()) for name in best)  # epoch 0's, kept
    if engine == "hapi":  # hapi's own snapshot of epoch 0 is the same weights
        first = paddle.load(str(tmp_path / "hapi" / "0.pdparams"))
        assert all(np.array_equal(best[name].numpy(), first[name].numpy()) for name in best)


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_resuming_a_finished_run_is_refused_rather_than_training_nothing(engine, data_dir, tmp_path):
    train(_config(data_dir, str(tmp_path), engine, "Global.epochs=1"))
    with pytest.raises(ConfigError, match=r"nothing left to train; raise (num_epochs \()?Global.epochs"):
        train(_config(data_dir, str(tmp_path), engine, "Global.epochs=1", "Global.resume=auto"))
    resumed = train(_config(data_dir, str(tmp_path), engine, "Global.epochs=2", "Global.resume=auto"))
    assert len(json.load(open(tmp_path / "history.json"))) == 2 and resumed["test_samples"] > 0
