"""Progress bars with rate and time left on a terminal (and in notebooks, see test_notebooks), never in train.log;
the course's lines print unchanged above them; `Global.progress: false` turns them off."""
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from paddle_cls.engine.visualdl_records import scalar_recorder

pytestmark = pytest.mark.slow
BAR = re.compile(r"\d+/\d+ \[\d\d:\d\d<")  # a tqdm bar's "done/total [elapsed<left"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train_on_a_terminal(data_dir, output_dir, *extra):
    """tools/train.py with stderr on a 100-column terminal (a pty); returns (stdout, what the terminal showed)."""
    terminal, child_side = pty.openpty()
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
                 "Global.epochs=2", "DataLoader.Train.subset=[0, 96]", "DataLoader.Train.batch_size=8", *extra]
    process = subprocess.Popen([sys.executable, "tools/train.py", "-c", "configs/mynet_cifar10.yml",
                                *[arg for o in overrides for arg in ("-o", o)]],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=child_side)
    os.close(child_side)
    shown = b""
    while True:  # read while it runs: a full pty buffer would block the child
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child side closed
            break
        if not chunk:
            break
        shown += chunk
    stdout = process.stdout.read().decode()
    assert process.wait(timeout=300) == 0, shown.decode(errors="replace")[-2000:]
    os.close(terminal)
    return stdout, shown.decode(errors="replace")


def test_terminal_shows_run_and_epoch_bars_with_rate_and_time_left(data_dir, tmp_path):
    stdout, shown = _train_on_a_terminal(data_dir, tmp_path)
    frames = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "\n", shown).splitlines()  # cursor moves and returns end a frame
    run_bars = [f for f in frames if f.startswith("train: ")]
    epoch_bars = [f for f in frames if f.startswith("epoch 0: ") or f.startswith("epoch 1: ")]
    rate = r"\s*[\d.]+(step/s|s/step)\]"  # padded below 10 steps/s; seconds per step below 1
    assert any(re.search(r"24/24 \[\d\d:\d\d<00:00," + rate, f) for f in run_bars)  # 2 epochs of 12 steps
    # while it runs: steps done, elapsed<time left, rate
    assert any(re.search(r" ([1-9]|1\d|2[0-3])/24 \[\d\d:\d\d<\d\d:\d\d," + rate, f) for f in run_bars)
    assert {f.split(":")[0] for f in epoch_bars} == {"epoch 0", "epoch 1"}
    assert all("/12 [" in f for f in epoch_bars)
    assert "[Train] epoch: 0/2, step: 0/24, loss: " in stdout and "[Test] accuracy/loss: " in stdout
    log = open(tmp_path / "train.log").read()
    assert not BAR.search(log) and "\r" not in log and "[Test] accuracy/loss: " in log


def test_progress_false_draws_nothing(data_dir, tmp_path):
    stdout, shown = _train_on_a_terminal(data_dir, tmp_path, "Global.progress=false")
    assert not BAR.search(shown) and "[Test] accuracy/loss: " in stdout


def test_no_bars_when_output_goes_to_a_file(data_dir, tmp_path):
    run = subprocess.run([sys.executable, "tools/train.py", "-c", "configs/mynet_cifar10.yml", "-o",
                          f"Global.data_dir={data_dir}", "-o", f"Global.output_dir={tmp_path}", "-o", "Global.epochs=1",
                          "-o", "Global.device=cpu", "-o", "DataLoader.Train.subset=[0, 32]"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and not BAR.search(run.stderr + run.stdout)


def test_visualdl_points_cover_short_runs_and_thin_out_long_ones(tmp_path):
    paths = {"visualdl": str(tmp_path)}
    every = lambda epochs, steps, vdl=None: scalar_recorder(  # noqa: E731
        {"epochs": epochs, "vdl_steps": vdl}, paths, steps, __import__("paddle_cls").Accuracy()).every
    assert every(2, 37) == 1  # the 74-step MyNet run: every step
    assert every(30, 625) == 18  # resnet18.yml's 18,750 steps: about 1,000 points
    assert every(30, 625, vdl=5) == 5
