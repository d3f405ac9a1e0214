"""`paddle-cls lr-find`: the learning-rate range test on both engines, from a copy of the config's model, writing
nothing but its plot."""
import hashlib
import os
import re

import numpy as np
import paddle
import pytest

from paddle_cls.cli import lr_find_main
from paddle_cls.config import load_config
from paddle_cls.data.loader import build_loader
from paddle_cls.engine.components import build_loss, build_model
from paddle_cls.engine.lr_find import DIVERGENCE, RangeTest, SweepOver, lr_find, plot_lr_find, suggest
from paddle_cls.utils.weights import load_model_file

ENGINES = ["runner", "hapi"]
SUGGESTION = re.compile(r"suggested learning rate \(valley\): (\S+);")


def _config(data_dir, output_dir, engine="runner", *extra):
    return load_config("configs/mynet_cifar10.yml", [
        f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
        f"Global.engine={engine}", "Global.progress=false", "DataLoader.Train.subset=[0, 48]",
        "DataLoader.Train.batch_size=16", *extra])


def _listing(folder):
    return sorted((os.path.relpath(os.path.join(where, name), folder), os.path.getmtime(os.path.join(where, name)))
                  for where, _, names in os.walk(folder) for name in names)


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_the_sweep_is_exponential_and_the_same_on_both_engines(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = {engine: lr_find(_config(data_dir, tmp_path / "run", engine), 1e-5, 1e-1, 10) for engine in ENGINES}
    for result in results.values():
        # 10 steps over 3 batches an epoch: the sweep crosses epochs
        assert result.lrs == pytest.approx([1e-5 * 10 ** (4 * i / 9) for i in range(10)], rel=1e-9)
        assert not result.diverged and len(result.losses) == 10 and np.isfinite(result.losses).all()
        assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    assert results["runner"].losses == pytest.approx(results["hapi"].losses, rel=1e-4)
    assert _listing(tmp_path) == []  # Global.output_dir not created, nothing written anywhere


@pytest.mark.parametrize("engine", ENGINES)
def test_the_test_stops_when_the_loss_diverges_and_suggests_a_rate_below_that(data_dir, tmp_path, engine):
    config = _config(data_dir, tmp_path / "run", engine, "Optimizer={name: SGD, learning_rate: 0.01}")
    result = lr_find(config, 1e-4, 1e6, 40)
    assert result.diverged and 10 < len(result.lrs) < 40
    assert result.lrs == pytest.approx(list(np.geomspace(1e-4, 1e6, 40)[:len(result.lrs)]), rel=1e-9)
    last = result.smoothed[-1]
    assert not np.isfinite(last) or last > DIVERGENCE * min(result.smoothed[:-1])
    # it stopped at the first step past the rule
    assert all(value <= DIVERGENCE * min(result.smoothed[:i + 1]) for i, value in enumerate(result.smoothed[:-1]))
    assert 1e-4 <= result.suggestion < result.lrs[-6]  # the last 5 points are never suggested
    plot_lr_find(result, str(tmp_path / "diverged.png"))
    assert open(tmp_path / "diverged.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


SCHEDULES = {
    "cosine_by_epoch_with_warmup": "{name: Adam, learning_rate: {name: CosineAnnealingDecay, learning_rate: 0.01, "
                                   "T_max: 3, by_epoch: true, warmup_steps: 1}}",
    "piecewise": "{name: AdamW, weight_decay: 0.01, learning_rate: {name: PiecewiseDecay, boundaries: [2, 4], "
                 "values: [0.1, 0.01, 0.001]}}",
    "momentum_weight_decay": "{name: Momentum, momentum: 0.9, weight_decay: 0.5, learning_rate: 0.01}",
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("optimizer", sorted(SCHEDULES))
def test_the_rate_follows_the_sweep_whatever_optimizer_and_schedule_the_config_gives(data_dir, tmp_path, engine,
                                                                                     optimizer):
    result = lr_find(_config(data_dir, tmp_path / "run", engine, f"Optimizer={SCHEDULES[optimizer]}"), 1e-3, 1.0, 8)
    assert result.lrs == pytest.approx(list(np.geomspace(1e-3, 1.0, 8)), rel=1e-9)
    assert not os.path.exists(tmp_path / "run")


def test_the_configs_weight_decay_is_kept(data_dir, tmp_path):
    def losses(decay):
        optimizer = f"Optimizer={{name: Momentum, momentum: 0.9, weight_decay: {decay}, learning_rate: 0.01}}"
        return lr_find(_config(data_dir, tmp_path / "run", "runner", optimizer), 1e-2, 1.0, 7).losses

    without, with_decay = losses(0.0), losses(0.5)
    assert without[0] == pytest.approx(with_decay[0], rel=1e-6)  # the same first batch and weights
    assert abs(without[-1] - with_decay[-1]) > 1e-3


@pytest.mark.parametrize("engine", ENGINES)
def test_it_starts_from_the_pretrained_weights_and_leaves_every_file_alone(data_dir, tmp_path, engine):
    paddle.seed(7)  # weights other than the seeded initialisation the finder would otherwise start from
    weights = tmp_path / "pretrained.pdparams"
    paddle.save(build_model(_config(data_dir, tmp_path / "run")).state_dict(), str(weights))
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / "best_model.pdparams").write_bytes(weights.read_bytes())
    before, digest = _listing(tmp_path), _digest(weights)
    config = _config(data_dir, output_dir, engine, f"Global.pretrained_model={weights}",
                     "DataLoader.Train.shuffle=false")
    result = lr_find(config, 1e-6, 1e-2, 7)
    model = build_model(config)
    load_model_file(model, str(weights))
    images, labels = next(iter(build_loader(config, "Train")))
    assert result.losses[0] == pytest.approx(float(build_loss(config)(model(images), labels)), rel=1e-5)
    assert _listing(tmp_path) == before and _digest(weights) == digest


def test_the_command_prints_the_suggestion_and_writes_the_plot_in_the_current_folder(data_dir, tmp_path, monkeypatch,
                                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    code = lr_find_main(["-c", "mynet_cifar10", "-o", f"Global.data_dir={data_dir}", "-o", "Global.output_dir=run",
                         "-o", "Global.device=cpu", "-o", "DataLoader.Train.subset=[0, 48]",
                         "-o", "DataLoader.Train.batch_size=16", "--start-lr", "1e-4", "--end-lr", "1",
                         "--steps", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    suggestion = float(SUGGESTION.search(out).group(1))
    assert 1e-4 <= suggestion <= 1 and "step  learning rate" in out
    assert sorted(os.listdir(tmp_path)) == ["lr_find.png"]
    assert open(tmp_path / "lr_find.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("switches, named", [
    (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr"),
    (["--start-lr", "0.1", "--end-lr", "0.1"], "--start-lr"),
    (["--steps", "1"], "--steps"),
    (["--steps", "6"], "--steps"),  # runs, but leaves fewer than two points to read a suggestion from
    (["--start-lr", "0"], "--start-lr"),
    (["--end-lr", "inf"], "--end-lr"),
    (["--out", "plot.txt"], "--out"),
    (["--out", "no/such/folder/plot.png"], "--out"),
])
def test_a_bad_switch_is_a_one_line_error(tmp_path, monkeypatch, capsys, switches, named):
    monkeypatch.chdir(tmp_path)
    assert lr_find_main(["-c", "mynet_cifar10", *switches]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: lr-find:") and captured.err.count("\n") == 1
    assert named in captured.err
    assert os.listdir(tmp_path) == []


def test_the_range_test_smooths_stops_and_sets_each_rate():
    layer = paddle.nn.Linear(2, 2)
    optimizer = paddle.optimizer.SGD(learning_rate=1.0, parameters=layer.parameters())
    finder = RangeTest(optimizer, np.geomspace(1e-3, 1e3, 20))
    finder.on_train_begin({})
    losses = [2.0] * 10 + [100.0]
    with pytest.raises(SweepOver):
        for step, loss in enumerate(losses):
            assert optimizer.get_lr() == pytest.approx(1e-3 * 10 ** (6 * step / 19))
            finder.on_train_batch_end(step, {"loss": paddle.to_tensor(loss), "lr": optimizer.get_lr()})
    # fastai's smoothing: an exponential moving average (beta 0.98) divided by 1 - beta^n
    average = 0.0
    for n, loss in enumerate(losses, 1):
        average = 0.98 * average + 0.02 * loss
        assert finder.smoothed[n - 1] == pytest.approx(average / (1 - 0.98 ** n))
    assert finder.diverged and len(finder.losses) == 11 and finder.smoothed[-1] > 4 * 2.0


def test_the_suggestions_follow_fastais_rules():
    lrs = list(np.geomspace(1e-5, 1.0, 40))
    # flat for 4 steps, falls ever faster from step 4 to 24, rises after; the first 4 (40 // 10) and the last 5
    # points are left out
    smoothed = [5.0] * 4 + [5.0 - 0.01 * i ** 2 for i in range(21)] + [1.0 + 0.5 * i for i in range(1, 16)]
    # valley: the longest fall is steps 4..24, which fastai takes as starting one before (3), and a third plus a
    # sixth of the 21 steps from there (7 + 3) in; minimum: the lowest loss; steep: the steepest fall, 23 to 24
    assert suggest(lrs, smoothed, 40) == {"valley": 3 + 7 + 3, "minimum": 24, "steep": 23}
    # cut before the NaN, two points remain: fastai's valley would be index -1 (the last, highest rate)
    assert suggest(lrs, [3.0, 2.5, 2.0, 1.5] + [float("nan")] * 8, 20) == {"valley": 2, "minimum": 3, "steep": 2}
    assert suggest(lrs, [3.0, 2.5, 2.0, float("nan")] + [1.0] * 8, 20) == {}  # one point before the NaN


def test_under_the_launcher_rank_0_runs_it_alone_and_the_others_exit(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["-c", "mynet_cifar10", "-o", f"Global.data_dir={data_dir}", "-o", "Global.device=cpu",
            "-o", "DataLoader.Train.subset=[0, 48]", "-o", "DataLoader.Train.batch_size=16", "--steps", "8",
            "--start-lr", "1e-3", "--end-lr", "1", "--out", "plot.svg"]
    assert lr_find_main(args) == 0
    single = capsys.readouterr().out
    os.remove("plot.svg")
    with monkeypatch.context() as launched:
        for name in ("PADDLE_TRAINERS_NUM", "PADDLE_GLOBAL_SIZE", "PADDLE_LOCAL_SIZE"):
            launched.setenv(name, "2")
        launched.setenv("PADDLE_TRAINER_ID", "1")
        assert lr_find_main(args) == 0
        assert capsys.readouterr().out == ("lr-find: process 1 of 2 has nothing to do: under paddle.distributed.launch,"
                                           " process 0 runs lr-find alone, as a single process\n")
        assert os.listdir(tmp_path) == []
        launched.setenv("PADDLE_TRAINER_ID", "0")
        assert lr_find_main(args) == 0
        assert capsys.readouterr().out == single and os.listdir(tmp_path) == ["plot.svg"]
