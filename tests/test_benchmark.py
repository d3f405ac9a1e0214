import json
import os
import subprocess
import sys

import pytest

from paddle_cls.benchmarks.inference import inference_table
from paddle_cls.benchmarks.loading import folder_loader_table, loader_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_benchmark_prints_a_table_and_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "tools/benchmark.py", "--quick", "--models", "LeNet", "--steps", "2",
                             "--batch-size", "8", "--json", str(path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "training images/s" in result.stdout and "RunnerV3 / bare" in result.stdout
    row = json.load(open(path))["engines"][0]
    assert row["model"] == "LeNet" and all(row[engine] > 0 for engine in ("bare loop", "RunnerV3", "hapi fit"))
    assert row["RunnerV3 / bare"] == round(row["RunnerV3"] / row["bare loop"], 3)


@pytest.mark.slow
def test_loader_table_measures_every_loading_method():
    rows = loader_table(images_per_batch=400)
    assert [row["method"] for row in rows] == ["course", "paddle_cls", "paddle_cls batched",
                                               "paddle_cls, uneven batches in an archive out of order"]
    assert all(row["build_s"] > 0 and row["read_images_per_s"] > 0 for row in rows)


@pytest.mark.slow
def test_folder_loader_row_times_both_loaders_and_the_model():
    rows = folder_loader_table(images=40, batch_size=8, model_steps=1, model_batch=4)
    assert [row["loader"] for row in rows] == ["0 workers", "2 workers", "2 workers, full decode (before)",
                                               "resnet18 training at 224 px"]
    assert all(row["images_per_s"] > 0 for row in rows)


@pytest.mark.slow
def test_inference_table_times_every_engine_against_dygraph():
    rows = inference_table("LeNet", (1, 28, 28), batches=(8, 1), repeats=1, images_per_timing=16)
    assert [row["batch"] for row in rows] == [8, 1]
    for row in rows:
        assert row["dygraph"] > 0 and row["inference + oneDNN"] > 0
        assert row["inference + oneDNN / dygraph"] == round(row["inference + oneDNN"] / row["dygraph"], 2)
        assert isinstance(row["onnxruntime"], (float, str))  # a speed, or why it could not run


@pytest.mark.slow
def test_serving_table_drives_a_real_server_without_errors():
    pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
    from paddle_cls.benchmarks.serving import serving_table

    rows = serving_table(clients=(1, 4), requests_per_run=16)
    assert [row["clients"] for row in rows] == [1, 4]
    assert all(row["errors"] == 0 and row["images_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0 for row in rows)
    assert rows[0]["mean_batch"] == 1.0 and 1.0 <= rows[1]["mean_batch"] <= 4.0  # one client: batches of one


def test_cpu_training_table_times_paddle_ours_and_pytorch_side_by_side():
    from paddle_cls.benchmarks import format_cpu_training
    from paddle_cls.benchmarks.training import cpu_training_table

    rows = cpu_training_table(models=(("MyNet", 4),), steps=1, repeats=1, memory=False)
    row = rows[0]
    assert row["model"] == "MyNet" and row["batch"] == 4 and row["paddle"] > 0 and row["ours"] > 0
    assert row["ours / paddle"] == round(row["ours"] / row["paddle"], 2)
    if row["pytorch"] == "not installed":
        assert row["ours / pytorch"] == "-"
    else:
        assert row["ours / pytorch"] == round(row["ours"] / row["pytorch"], 2)
    text = "\n".join(format_cpu_training(rows))
    assert "CPU training images/s" in text and "MyNet" in text and "ours / pytorch" in text
