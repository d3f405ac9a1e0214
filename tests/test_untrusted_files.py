"""Nothing a user feeds the toolkit may run code: crafted CIFAR batches through the API and the command line."""
import os
import pickle
import subprocess
import sys

import pytest

from paddle_cls import CIFAR10Dataset, Cifar10
from paddle_cls.data.synthetic import write_cifar10
from paddle_cls.errors import DataError


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Shell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Writer:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('pwned')",)


def _crafted_folder(tmp_path, payload, batch="data_batch_1"):
    folder = write_cifar10(str(tmp_path / "data"), 8)
    with open(os.path.join(folder, batch), "wb") as file:
        pickle.dump({"data": payload, "labels": [0]}, file, protocol=2)
    return folder


@pytest.mark.parametrize("make", ["shell", "writer"])
def test_crafted_batches_are_refused_through_the_api(tmp_path, make):
    marker = str(tmp_path / "marker")
    payload = _Shell(f"touch {marker}") if make == "shell" else _Writer(marker)
    folder = _crafted_folder(tmp_path, payload)
    with pytest.raises(DataError, match=r"data_batch_1: refused to load '(posix|os|builtins|__builtin__)\."):
        CIFAR10Dataset(folder, "train")
    with pytest.raises(DataError, match="refused to load"):
        Cifar10(folder, "train")
    assert not os.path.exists(marker)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["resnet18", "mynet_cifar10"])
def test_crafted_batches_are_refused_through_train(tmp_path, config):
    marker = str(tmp_path / "marker")
    folder = _crafted_folder(tmp_path, _Shell(f"touch {marker}"), batch="data_batch_2")
    result = subprocess.run([sys.executable, "tools/train.py", "-c", f"configs/{config}.yml",
                             "-o", f"Global.data_dir={folder}", "-o", f"Global.output_dir={tmp_path / 'out'}",
                             "-o", "Global.device=cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "data_batch_2: refused to load" in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(marker)
