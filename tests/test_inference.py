"""Using a trained model: tools/eval.py per class, tools/predict.py on files and test samples, --summary."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from paddle_cls.cli import eval_main, predict_main, train_main
from paddle_cls.config import load_config
from paddle_cls.engine import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("mynet"))
    overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={output_dir}", "Global.device=cpu",
                 "Global.epochs=3", "Global.log_steps=0", "DataLoader.Train.subset=[0, 160]",
                 "DataLoader.Train.batch_size=16", "Optimizer.learning_rate=0.005"]
    train(load_config("configs/mynet_cifar10.yml", overrides))
    return output_dir, [arg for override in overrides for arg in ("-o", override)]


def test_eval_reports_each_class_and_draws_the_confusion_matrix(trained, capsys):
    output_dir, args = trained
    assert eval_main(["-c", "configs/mynet_cifar10.yml", *args]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("[Test] accuracy/loss: ")[1].split("/")[0])
    per_class = json.load(open(os.path.join(output_dir, "per_class_accuracy.json")))
    assert list(per_class) == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for name in per_class:
        assert f"[Test] {name:>12}: " in out
    assert os.path.getsize(os.path.join(output_dir, "confusion_matrix.png")) > 10_000
    assert accuracy > 0.3  # chance is 0.1


def test_predict_classifies_files_of_any_kind_and_reports_bad_ones(trained, tmp_path):
    output_dir, args = trained
    rgb, grey, jpg, bad = (str(tmp_path / name) for name in ("big.png", "grey.png", "photo.jpg", "notes.png"))
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (90, 120, 3), dtype=np.uint8)).save(rgb)
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(grey)
    Image.fromarray(np.full((32, 32, 3), (200, 30, 30), np.uint8)).save(jpg)
    open(bad, "w").write("this is not an image")
    result = subprocess.run([sys.executable, "tools/predict.py", "-c", "configs/mynet_cifar10.yml", *args,
                             rgb, bad, grey, jpg, "--index", "3", "--topk", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"error: {bad}: cannot be decoded as an image" in result.stderr and "Traceback" not in result.stderr
    lines = {line.split(": ")[0]: line for line in result.stdout.splitlines() if ": " in line}
    for path in (rgb, grey, jpg):
        probabilities = [float(part.split()[-1]) for part in lines[path].split(": ", 1)[1].split(", ")]
        assert len(probabilities) == 2 and probabilities[0] >= probabilities[1] and sum(probabilities) <= 1.0 + 1e-6
    assert "(true: " in lines["test[3]"]
    assert os.path.getsize(os.path.join(output_dir, "predictions.png")) > 5_000


def test_summary_and_print_config(capsys):
    assert train_main(["-c", "configs/lenet_mnist.yml", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "conv3" in out and "[1, 120, 1, 1]" in out and "total parameters: 41,806" in out
    assert train_main(["-c", "configs/lenet_mnist.yml", "-o", "Global.epochs=2", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "epochs: 2" in printed and "name: LeNet" in printed and "momentum: 0.9" in printed


def test_predict_without_a_model_is_a_clear_error(tmp_path, capsys):
    assert predict_main(["-c", "configs/mynet_cifar10.yml", "-o", f"Global.output_dir={tmp_path}", "x.png"]) == 2
    assert "error: no model file at" in capsys.readouterr().err


def test_export_runs_through_paddle_inference_with_the_same_logits(trained, data_dir):
    from paddle_cls.deploy.backends import InferenceModel
    from paddle_cls.deploy.export import export
    from paddle_cls.deploy.trained import load_trained_model
    import paddle

    output_dir, args = trained
    config = load_config("configs/mynet_cifar10.yml", [args[i + 1] for i in range(0, len(args), 2)])
    folder = export(config)
    preprocess = json.load(open(os.path.join(folder, "preprocess.json")))
    assert preprocess["input_shape"] == [3, 32, 32] and preprocess["label_names"][0] == "airplane"
    assert preprocess["steps"] == [{"name": "Resize", "size": [32, 32]}, {"name": "ToTensor"}]
    images = np.random.RandomState(0).rand(5, 3, 32, 32).astype(np.float32)
    dynamic = load_trained_model(config)(paddle.to_tensor(images)).numpy()
    np.testing.assert_allclose(InferenceModel(folder)(images), dynamic, rtol=1e-5, atol=1e-5)


def test_predict_with_the_exported_model_agrees(trained, capsys):
    from paddle_cls.cli import export_main

    output_dir, args = trained
    assert export_main(["-c", "configs/mynet_cifar10.yml", *args]) == 0
    assert predict_main(["-c", "configs/mynet_cifar10.yml", *args, "--index", "0", "--index", "1",
                         "--engine", "dygraph"]) == 0
    dynamic = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test[")]
    assert predict_main(["-c", "configs/mynet_cifar10.yml", *args, "--index", "0", "--index", "1", "--inference"]) == 0
    exported = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test[")]
    assert [line.split(": ")[1].split()[0] for line in exported] == [line.split(": ")[1].split()[0] for line in dynamic]


def test_export_refuses_without_trained_weights(tmp_path, capsys):
    from paddle_cls.cli import export_main

    assert export_main(["-c", "configs/mynet_cifar10.yml", "-o", f"Global.output_dir={tmp_path}"]) == 2
    assert "error: no model file at" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "inference")
