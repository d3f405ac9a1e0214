import json
import os
import runpy
import subprocess
import sys

import pytest

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
    benchmark = runpy.run_path(os.path.join(ROOT, "tools", "benchmark.py"))
    rows = benchmark["loader_table"](images_per_batch=400)
    assert [row["method"] for row in rows] == ["course", "paddle_cls", "paddle_cls batched",
                                               "paddle_cls, uneven batches in an archive out of order"]
    assert all(row["build_s"] > 0 and row["read_images_per_s"] > 0 for row in rows)
