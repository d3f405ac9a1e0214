"""Every notebook runs top to bottom in a Jupyter kernel on small files, unchanged (PADDLE_CLS_SMALL=1)."""
import glob
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                          "notebooks", "*.ipynb")))


def test_there_are_the_three_notebooks():
    assert [os.path.basename(path) for path in NOTEBOOKS] == [
        "000_mynet_cifar10.ipynb", "001_lenet_mnist_hapi.ipynb", "004_resnet18_cifar10.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_and_is_stored_without_outputs(path, data_dir, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "PADDLE_CLS_DATA_DIR" in code[0].source and "PADDLE_CLS_SMALL" in code[0].source
    monkeypatch.setenv("PADDLE_CLS_DATA_DIR", data_dir)
    monkeypatch.setenv("PADDLE_CLS_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on any cell error
    printed = "".join(output.get("text", "") for cell in code for output in cell.outputs)
    assert "small run" in printed
    if "runner.train" in "".join(cell.source for cell in code):  # RunnerV3's progress bar in the notebook
        assert any(re.search(r"train: .*\d+/\d+ \[\d\d:\d\d<", output.get("text", ""))
                   for cell in code for output in cell.outputs if output.get("name") == "stderr")
    if "004" in path:
        assert "[Test] accuracy/loss: " in printed and "The true category is" in printed
    if "001" in path:
        assert os.path.exists(tmp_path / "mnist.pdparams")
