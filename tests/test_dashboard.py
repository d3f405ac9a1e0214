"""The records a run writes show in the VisualDL dashboard users open (its HTTP API, on loopback)."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from paddle_cls.config import load_config
from paddle_cls.engine import train

pytestmark = pytest.mark.slow


def _get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/app/api/{path}", timeout=5) as response:
        body = json.load(response)
    return body.get("data", body) if isinstance(body, dict) else body


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_visualdl_serves_the_runs_scalars(data_dir, tmp_path, engine):
    overrides = [f"Global.engine={engine}", f"Global.data_dir={data_dir}", f"Global.output_dir={tmp_path}",
                 "Global.device=cpu", "Global.epochs=2", "DataLoader.Train.subset=[0, 160]",
                 "DataLoader.Train.batch_size=8"]  # 40 steps, with the config's log_steps of 1000
    train(load_config("configs/mynet_cifar10.yml", overrides))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    visualdl = os.path.join(os.path.dirname(sys.executable), "visualdl")
    server = subprocess.Popen([visualdl, "--logdir", str(tmp_path / "visualdl"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, runs = time.time() + 60, None
        while time.time() < deadline:
            try:
                runs = _get(port, "runs")
                break
            except OSError:
                time.sleep(0.5)
        assert runs, "the VisualDL server did not answer"
        tags = _get(port, "scalar/tags")
        run = runs[0]
        scalar_tags = tags["tags"][tags["runs"].index(run)]
        assert {"train/loss", "train/lr", "eval/loss", "eval/Accuracy"} <= set(scalar_tags), tags
        query = urllib.parse.urlencode({"run": run, "tag": "eval/Accuracy"})
        points = _get(port, f"scalar/list?{query}")
        assert len(points) == 2  # one evaluation per epoch
        history = json.load(open(tmp_path / "history.json"))
        assert [round(p[2], 5) for p in points] == [round(row["dev_accuracy"], 5) for row in history]
        losses = _get(port, "scalar/list?" + urllib.parse.urlencode({"run": run, "tag": "train/loss"}))
        assert [p[1] for p in losses] == list(range(40))  # a curve: every step of a short run
        for epoch, row in enumerate(history):
            assert sum(p[2] for p in losses[epoch * 20:(epoch + 1) * 20]) / 20 == pytest.approx(row["train_loss"], 1e-5)
        rates = _get(port, "scalar/list?" + urllib.parse.urlencode({"run": run, "tag": "train/lr"}))
        assert len(rates) == 40 and all(p[2] == pytest.approx(0.001) for p in rates)
    finally:
        server.terminate()
        server.wait(timeout=30)
