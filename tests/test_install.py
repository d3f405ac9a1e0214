"""The installed tool: `paddle-cls` / `python -m paddle_cls`, shipped configs found by name (a file of the
user's own winning), and the wheel run from a folder outside the source tree."""
import glob
import os
import subprocess
import sys
import zipfile

import pytest

from paddle_cls import __version__
from paddle_cls.config import load_config, shipped_configs
from paddle_cls.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_shipped_config_is_found_by_name_and_a_file_of_your_own_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = load_config(os.path.join(ROOT, "configs", "resnet18.yml"))
    assert load_config("resnet18") == load_config("resnet18.yml") == load_config("configs/resnet18.yml") == shipped
    (tmp_path / "resnet18.yml").write_text(open(os.path.join(ROOT, "configs", "resnet18.yml")).read()
                                           .replace("epochs: 30", "epochs: 3"))
    assert load_config("resnet18")["Global"]["epochs"] == load_config("resnet18.yml")["Global"]["epochs"] == 3
    with pytest.raises(ConfigError, match=r"config file resnet_18 not found, and no shipped config is named "
                                          r"'resnet_18' \(shipped: cnn_mnist, imagefolder, lenet_mnist"):
        load_config("resnet_18")
    assert set(shipped_configs()) == {name[:-4] for name in os.listdir(os.path.join(ROOT, "configs"))}


def _run(*args, cwd, env=None):
    return subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_python_m_paddle_cls_has_every_command(tmp_path):
    import paddle

    result = _run(sys.executable, "-m", "paddle_cls", "--version", cwd=tmp_path)
    assert result.stdout.strip() == f"paddle_cls {__version__}, paddle {paddle.__version__}"
    listing = _run(sys.executable, "-m", "paddle_cls", "configs", cwd=tmp_path).stdout
    assert "model_resnet18     Chapter 5.5.7 of the nndl course" in listing
    unknown = _run(sys.executable, "-m", "paddle_cls", "fit", cwd=tmp_path)
    assert unknown.returncode == 2 and "invalid choice: 'fit'" in unknown.stderr
    printed = _run(sys.executable, "-m", "paddle_cls", "train", "-c", "lenet_mnist", "-o", "Global.epochs=2",
                   "--print-config", cwd=tmp_path)
    assert "epochs: 2" in printed.stdout and "name: LeNet" in printed.stdout


@pytest.mark.slow
def test_the_wheel_trains_evaluates_predicts_and_exports_outside_the_source_tree(tmp_path, data_dir):
    wheels, target, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), ROOT, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    wheel, = glob.glob(str(wheels / "paddle_cls-*.whl"))
    packed = set(zipfile.ZipFile(wheel).namelist())
    assert {"paddle_cls/configs/resnet18.yml", "paddle_cls/configs/imagefolder.yml",
            "paddle_cls/serving/page.html", "paddle_cls/__main__.py"} <= packed
    installed = _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel,
                     cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    where = _run(sys.executable, "-c", "import paddle_cls; print(paddle_cls.__file__)", cwd=work, env=env)
    assert where.stdout.startswith(str(target))  # the wheel's copy, not the source tree's
    command = [str(target / "bin" / "paddle-cls")]
    overrides = [arg for o in (f"Global.data_dir={data_dir}", "Global.download=false", "Global.epochs=1",
                               "Global.device=cpu", "DataLoader.Train.batch_size=32") for arg in ("-o", o)]
    for step in (["train"], ["eval"], ["predict", "--index", "0"], ["export"]):
        result = _run(sys.executable, *command, step[0], "-c", "model_resnet18", *overrides, *step[1:], cwd=work,
                      env=env)
        assert result.returncode == 0, (step, result.stderr[-2000:])
    output = work / "output" / "model_resnet18"
    assert (output / "best_model.pdparams").is_file() and (output / "inference" / "preprocess.json").is_file()
    assert "[Test] accuracy/loss: " in (output / "train.log").read_text()
