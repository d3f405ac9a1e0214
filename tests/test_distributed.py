"""Data parallel on CPU through Paddle's own launcher (gloo): 2 processes, one machine."""
import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(tmp_path, name, engine, data_dir, *extra, launcher=("--nproc_per_node", "2"),
            config="configs/mynet_cifar10.yml", script="tools/train.py"):
    output_dir, log_dir = tmp_path / name, tmp_path / f"{name}-logs"
    overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
                 f"Global.engine={engine}", "Global.epochs=2", "Global.log_steps=5", "DataLoader.Train.batch_size=16",
                 "DataLoader.Eval.batch_size=12", "DataLoader.Test.batch_size=12", *extra]
    command = [sys.executable, "-m", "paddle.distributed.launch", *launcher, "--log_dir", str(log_dir),
               script, "-c", config]
    result = subprocess.run(command + [arg for o in overrides for arg in ("-o", o)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    logs = [open(log_dir / name).read() for name in sorted(os.listdir(log_dir)) if name.startswith("workerlog")]
    assert result.returncode == 0, (result.stdout[-3000:], logs)
    return output_dir, logs, overrides


def _fingerprints(logs):
    """(rank, fingerprint) of each process's last run (a log folder used again is appended to)."""
    return [re.findall(r"final weights fingerprint \(process (\d)\): (\S+)", log)[-1] for log in logs]


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_two_processes_agree_and_count_every_sample_once(tmp_path, data_dir, engine):
    output_dir, logs, overrides = _launch(tmp_path, "run", engine, data_dir)
    prints = _fingerprints(logs)
    assert sorted(rank for rank, _ in prints) == ["0", "1"] and prints[0][1] == prints[1][1]
    results = json.load(open(output_dir / "results.json"))
    assert results["test_samples"] == 64  # the whole test split, each sample once (12 does not divide 64)
    # Only rank 0 wrote: one log file, whose test line matches a single-process evaluation of the same weights.
    assert open(output_dir / "train.log").read().count("process 1 of 2") == 0
    single = subprocess.run([sys.executable, "tools/eval.py", "-c", "configs/mynet_cifar10.yml",
                             *[arg for o in overrides for arg in ("-o", o)]], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    test_line = f"[Test] accuracy/loss: {results['test_accuracy']:.4f}/{results['test_loss']:.4f}"
    assert test_line in single.stdout and all(test_line in log for log in logs)


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_every_process_tests_the_best_model_that_process_0_is_still_writing(tmp_path, data_dir, engine):
    # One epoch: its evaluation saves best_model.pdparams (3 s late, tests/slow_best_writer.py) from the final weights.
    output_dir, logs, _ = _launch(tmp_path, "slow", engine, data_dir, "Global.epochs=1",
                                  script="tests/slow_best_writer.py")
    final = dict(_fingerprints(logs))
    tested = [re.findall(r"process (\d) tested (\S+): (\S+)", log) for log in logs]
    assert sorted(tested) == [[("0", "best_model.pdparams", final["0"])], [("1", "best_model.pdparams", final["1"])]]
    assert final["0"] == final["1"]
    assert json.load(open(output_dir / "results.json"))["tested_weights"] == "best_model.pdparams"


def test_distributed_run_resumes_mid_epoch(tmp_path, data_dir):
    _, straight_logs, _ = _launch(tmp_path, "straight", "runner", data_dir, "Global.epochs=3")
    # 10 steps an epoch per process; saving every 3 steps leaves the step-9 checkpoint, mid-epoch, as the
    # last one of a run stopped after epoch 0. Resuming it must replay that epoch's order on each process.
    first, _, _ = _launch(tmp_path, "first", "runner", data_dir, "Global.epochs=1", "Global.save_unit=step",
                          "Global.save_interval=3")
    assert open(first / "checkpoints" / "latest").read().strip() == "step_00000009"
    _, resumed_logs, _ = _launch(tmp_path, "first", "runner", data_dir, "Global.epochs=3", "Global.resume=auto")
    assert _fingerprints(resumed_logs)[0][1] == _fingerprints(straight_logs)[0][1]


def test_two_launchers_as_two_nodes_on_loopback(tmp_path, data_dir):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = ("--master", f"127.0.0.1:{port}", "--nnodes", "2", "--nproc_per_node", "1")
    overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={tmp_path / 'out'}", "Global.device=cpu",
                 "Global.epochs=1", "Global.log_steps=5", "DataLoader.Train.batch_size=16"]
    processes = []
    for index in range(2):
        command = [sys.executable, "-m", "paddle.distributed.launch", *node,
                   "--log_dir", str(tmp_path / f"node{index}"), "tools/train.py", "-c", "configs/mynet_cifar10.yml",
                   *[a for o in overrides for a in ("-o", o)]]
        processes.append(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [out[-2000:] for out in outputs]
    logs = [open(tmp_path / f"node{index}" / "workerlog.0").read() for index in range(2)]
    prints = _fingerprints(logs)
    assert sorted(rank for rank, _ in prints) == ["0", "1"] and prints[0][1] == prints[1][1]
    assert json.load(open(tmp_path / "out" / "results.json"))["test_samples"] == 64


def test_distributed_hapi_run_resumes(tmp_path, data_dir):
    _, straight_logs, _ = _launch(tmp_path, "straight", "hapi", data_dir, "Global.epochs=3")
    first, _, _ = _launch(tmp_path, "first", "hapi", data_dir, "Global.epochs=1")
    assert open(first / "checkpoints" / "latest").read().strip() == "step_00000010"  # after epoch 0
    _, resumed_logs, _ = _launch(tmp_path, "first", "hapi", data_dir, "Global.epochs=3", "Global.resume=auto")
    assert _fingerprints(resumed_logs)[0][1] == _fingerprints(straight_logs)[0][1]


def test_two_processes_train_on_a_folder_of_images_with_loader_workers(tmp_path, digits):
    from own_images import digits_config

    digits_config(tmp_path, digits)  # writes digits.yml: MyNet on the digits folders, a 20% hold-out as dev set
    output_dir, logs, _ = _launch(tmp_path, "folder", "runner", digits, "DataLoader.Train.num_workers=2",
                                  config=str(tmp_path / "digits.yml"))
    prints = _fingerprints(logs)
    assert sorted(rank for rank, _ in prints) == ["0", "1"] and prints[0][1] == prints[1][1]
    results = json.load(open(output_dir / "results.json"))
    assert results["test_samples"] == 297 and results["test_accuracy"] > 0.8


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """A model trained by one process, and the overrides naming it."""
    from paddle_cls.config import load_config
    from paddle_cls.engine import train

    output_dir = tmp_path_factory.mktemp("trained")
    overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
                 "Global.epochs=1", "DataLoader.Train.batch_size=16", "DataLoader.Test.batch_size=12"]
    train(load_config("configs/mynet_cifar10.yml", overrides))
    return output_dir, overrides


def _launch_tool(tmp_path, tool, overrides, *args):
    """`tools/<tool>.py` under the launcher with 2 CPU processes: each rank's log lines (warnings left out)."""
    log_dir = tmp_path / f"{tool}-logs"
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(log_dir),
               f"tools/{tool}.py", "-c", "configs/mynet_cifar10.yml", *args, *[a for o in overrides for a in ("-o", o)]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    logs = [[line for line in open(log_dir / f"workerlog.{rank}").read().splitlines() if "warn" not in line.lower()]
            for rank in range(2)]
    assert result.returncode == 0, (result.stdout[-3000:], logs)
    return logs


def _single(main, overrides, *args):
    """A command's log lines when run by one process (this one), without the launcher."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["-c", "configs/mynet_cifar10.yml", *args, *[a for o in overrides for a in ("-o", o)]]) == 0
    return out.getvalue().splitlines()


def _one_line_from_rank_1(logs, command):
    assert logs[1] == [f"{command}: process 1 of 2 has nothing to do: under paddle.distributed.launch, process 0 "
                       f"runs {command} alone, as a single process"]


def test_eval_under_the_launcher_prints_the_single_process_numbers_once(tmp_path, trained):
    from paddle_cls.cli import eval_main

    output_dir, overrides = trained
    single = [line for line in _single(eval_main, overrides) if line.startswith("[Test]")]
    os.remove(output_dir / "per_class_accuracy.json")
    logs = _launch_tool(tmp_path, "eval", overrides)
    assert [line for line in logs[0] if line.startswith("[Test]")] == single and len(single) == 11
    _one_line_from_rank_1(logs, "eval")
    assert os.path.isfile(output_dir / "per_class_accuracy.json")  # written by rank 0


def test_export_then_predict_under_the_launcher_as_one_process(tmp_path, trained):
    from paddle_cls.cli import predict_main

    output_dir, overrides = trained
    logs = _launch_tool(tmp_path, "export", overrides)
    assert any(line.startswith("[Export] inference against dygraph") for line in logs[0])
    _one_line_from_rank_1(logs, "export")
    assert json.load(open(output_dir / "inference" / "preprocess.json"))["verified"]["inference"] < 1e-4
    args = ("--engine", "inference", "--index", "0", "--index", "7")
    single = [line for line in _single(predict_main, overrides, *args) if line.startswith("test[")]
    logs = _launch_tool(tmp_path, "predict", overrides, *args)
    assert [line for line in logs[0] if line.startswith("test[")] == single and len(single) == 2
    _one_line_from_rank_1(logs, "predict")
