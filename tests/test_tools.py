"""The command line end to end, as a user runs it: tools/train.py then tools/eval.py as subprocesses."""
import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(cifar_archive, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("run"))
    overrides = [f"Global.data_dir={cifar_archive}", f"Global.output_dir={output_dir}", "Global.epochs=3",
                 "Global.log_steps=4", "Global.eval_steps=4", "Global.device=cpu", "DataLoader.Train.batch_size=32"]
    result = _tool("train.py", "-c", "configs/resnet18.yml", *[arg for o in overrides for arg in ("-o", o)])
    assert result.returncode == 0, result.stderr
    return output_dir, overrides, result.stdout


def test_train_writes_the_run_and_learns(trained):
    output_dir, _, stdout = trained
    assert sorted(os.listdir(output_dir)) == [
        "best_model.pdparams", "checkpoints", "classes.json", "config.yml", "history.csv", "history.json",
        "last_model.pdparams", "loss_accuracy.png", "results.json", "train.log", "training_loss_acc.png",
        "validation_accuracy.png", "visualdl"]
    for figure in ("training_loss_acc.png", "loss_accuracy.png", "validation_accuracy.png"):
        assert os.path.getsize(os.path.join(output_dir, figure)) > 10_000
    train_lines = [line for line in stdout.splitlines() if line.startswith("[Train]")]
    assert re.fullmatch(r"\[Train\] epoch: 0/3, step: 0/24, loss: \d+\.\d{5}", train_lines[0])
    assert "visualdl --logdir " + os.path.join(output_dir, "visualdl") in stdout
    assert "[Evaluate]  dev score: " in stdout and "[Train] Training done!" in stdout
    results = json.load(open(os.path.join(output_dir, "results.json")))
    assert results["test_accuracy"] > 0.3  # chance is 0.1
    assert f"[Test] accuracy/loss: {results['test_accuracy']:.4f}/{results['test_loss']:.4f}" in stdout
    log = open(os.path.join(output_dir, "train.log")).read()
    assert "[Train] Training done!" in log and "[Test] accuracy/loss:" in log
    saved = open(os.path.join(output_dir, "config.yml")).read()
    assert "epochs: 3" in saved and "name: resnet18" in saved


def test_eval_reproduces_the_test_line(trained):
    output_dir, overrides, stdout = trained
    result = _tool("eval.py", "-c", "configs/resnet18.yml", *[arg for o in overrides for arg in ("-o", o)])
    assert result.returncode == 0, result.stderr
    test_line = re.search(r"\[Test\] accuracy/loss: .*", stdout).group(0)
    assert test_line in result.stdout.splitlines()


def test_eval_without_a_model_is_a_clear_error(tmp_path):
    result = _tool("eval.py", "-c", "configs/resnet18.yml", "-o", f"Global.output_dir={tmp_path}")
    assert result.returncode == 2
    assert "error: no model file at" in result.stderr and "Global.checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_mistakes_are_one_line_errors(tmp_path):
    result = _tool("train.py", "-c", "configs/resnet18.yml", "-o", "Global.epoch=5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown key Global.epoch ")
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = _tool("train.py", "-c", "configs/resnet18.yml", "-o", f"Global.output_dir={blocked}/out")
    assert result.returncode == 2 and "Global.output_dir: cannot write to" in result.stderr


def test_missing_data_offline_is_a_clear_error(tmp_path):
    result = _tool("train.py", "-c", "configs/resnet18.yml", "-o", f"Global.data_dir={tmp_path}",
                   "-o", "Global.download=false", "-o", f"Global.output_dir={tmp_path}/out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "CIFAR-10 not found at" in result.stderr and "cifar-10-python.tar.gz" in result.stderr
