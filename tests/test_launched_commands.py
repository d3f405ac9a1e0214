"""The commands one process does whole (eval, predict, export, check-data) in processes started by
`paddle.distributed.launch`: rank 0 runs them as a single process, the other ranks exit at once with one line.
Here the launcher's environment is set in-process; tests/test_distributed.py runs the launcher itself."""
import os

import pytest

from paddle_cls.cli import check_data_main, eval_main, export_main, predict_main
from paddle_cls.config import load_config
from paddle_cls.engine.components import build_model
from paddle_cls.utils.weights import save_weights

CONFIG = "configs/mynet_cifar10.yml"


def _launched(monkeypatch, rank):
    """This process as rank `rank` of 2 under the launcher; every variable `run_alone` sets is restored after."""
    monkeypatch.setenv("PADDLE_TRAINER_ID", str(rank))
    for name in ("PADDLE_TRAINERS_NUM", "PADDLE_GLOBAL_SIZE", "PADDLE_LOCAL_SIZE"):
        monkeypatch.setenv(name, "2")


@pytest.mark.parametrize("main, command, extra", [(eval_main, "eval", []), (predict_main, "predict", ["--index", "0"]),
                                                  (export_main, "export", []), (check_data_main, "check-data", [])])
def test_other_ranks_exit_with_one_line_and_write_nothing(monkeypatch, capsys, tmp_path, main, command, extra):
    _launched(monkeypatch, 1)
    output_dir = tmp_path / "out"
    assert main(["-c", CONFIG, "-o", f"Global.output_dir={output_dir}", "-o", "Global.data_dir=/nowhere", *extra]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{command}: process 1 of 2 has nothing to do: under "
                                         f"paddle.distributed.launch, process 0 runs {command} alone, as a single "
                                         "process"]
    assert captured.err == "" and not output_dir.exists()


def test_rank_0_evaluates_as_a_single_process(monkeypatch, capsys, tmp_path, data_dir):
    overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={tmp_path}", "Global.device=cpu",
                 "DataLoader.Test.batch_size=12", f"Global.checkpoint={tmp_path / 'weights.pdparams'}"]
    save_weights(build_model(load_config(CONFIG, overrides)), str(tmp_path / "weights.pdparams"))
    args = ["-c", CONFIG, *[arg for override in overrides for arg in ("-o", override)]]

    def test_lines():
        assert eval_main(args) == 0
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("[Test]")]

    single = test_lines()
    with monkeypatch.context() as launched:
        _launched(launched, 0)  # without run_alone: "The global group is not initialized" on the test split
        assert test_lines() == single and len(single) == 11  # the [Test] line and one per class
    assert os.environ.get("PADDLE_TRAINERS_NUM") is None  # (the launcher's variables are gone again)
