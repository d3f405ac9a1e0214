"""What the model is fed agrees from the image file to the model: each split's transforms give Global.image_shape
with the model's input channels, checked before training or export writes anything; and a run without a dev
split leaves eval, predict and export the weights it tested."""
import json
import os

import numpy as np
import paddle
import pytest
from PIL import Image

from own_images import NAMES, digits_config
from paddle_cls.data.loader import build_dataset
from paddle_cls.data.transforms import build_transforms
from paddle_cls.deploy import evaluate, predict
from paddle_cls.deploy.export import export
from paddle_cls.deploy.predictor import Predictor
from paddle_cls.engine import train
from paddle_cls.engine.components import build_model
from paddle_cls.errors import ConfigError

SMALL = ["DataLoader.Train.subset=[0, 64]", "DataLoader.Eval.subset=[0, 32]", "DataLoader.Test.subset=[0, 32]"]


def _transforms(size, mean, std):
    return [{"name": "Resize", "size": size}, {"name": "ToTensor"}, {"name": "Normalize", "mean": mean, "std": std}]


def _set_transforms(config, transforms, splits=("Train", "Eval", "Test"), **dataset):
    for split in splits:
        config["DataLoader"][split]["dataset"].update(transforms=transforms, **dataset)
    return config


def _grey_lenet(tmp_path, digits, engine="runner", mean=0.5, std=0.5):
    """The usual grey-scale recipe: ImageFolder with channels: 1, Normalize(0.5, 0.5), LeNet on [1, 28, 28]."""
    config = digits_config(tmp_path, digits, f"Global.engine={engine}", *SMALL, epochs=1,
                           Global={"image_shape": [1, 28, 28]}, Arch={"name": "LeNet"})
    return _set_transforms(config, _transforms([28, 28], mean, std), channels=1)


def test_a_scalar_normalize_keeps_the_channels_of_the_image():
    grey, colour = Image.new("L", (5, 4), 255), Image.new("RGB", (5, 4), 255)
    scalar = build_transforms([{"name": "ToTensor"}, {"name": "Normalize", "mean": 0.5, "std": 0.25}], "t")
    assert list(scalar(grey).shape) == [1, 4, 5] and list(scalar(colour).shape) == [3, 4, 5]
    assert np.allclose(np.asarray(scalar(grey)), 2.0)  # (1 - 0.5) / 0.25
    on_arrays = build_transforms([{"name": "Normalize", "mean": 127.5, "std": 127.5, "data_format": "HWC"}], "t")
    assert on_arrays(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 1)
    assert np.allclose(on_arrays(np.full((4, 5, 3), 255, np.uint8)), 255 / 127.5 - 1)


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_grey_images_with_a_scalar_normalize_train_lenet(digits, tmp_path, engine):
    config = _grey_lenet(tmp_path, digits, engine)
    image, _ = build_dataset(config, "Test")[0]
    assert list(image.shape) == [1, 28, 28] and float(image.max()) <= 1.0 and float(image.min()) >= -1.0
    results = train(config)
    assert results["test_samples"] == 32 and 0.0 <= results["test_accuracy"] <= 1.0


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_three_channel_statistics_on_grey_images_are_refused_before_anything_is_written(digits, tmp_path, engine):
    config = _grey_lenet(tmp_path, digits, engine, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    with pytest.raises(ConfigError, match=r"^DataLoader.Train.dataset: its transforms give samples of shape "
                                          r"\[3, 28, 28\], but Global.image_shape is \[1, 28, 28\]: read the images "
                                          r"with 1 channel\(s\)"):
        train(config)
    assert not os.path.exists(config["Global"]["output_dir"])


def test_a_model_of_other_input_channels_is_refused(digits, tmp_path):
    colour = _set_transforms(digits_config(tmp_path, digits, *SMALL, Global={"image_shape": [3, 28, 28]},
                                           Arch={"name": "LeNet"}), _transforms([28, 28], 0.5, 0.5))
    with pytest.raises(ConfigError, match=r"^Arch LeNet takes 1 input channel\(s\), but Global.image_shape is "
                                          r"\[3, 28, 28\]: set Global.image_shape: \[1, 28, 28\]"):
        train(colour)
    grey = _grey_lenet(tmp_path, digits)
    grey["Arch"] = {"name": "Model_ResNet18", "in_channels": 3}
    with pytest.raises(ConfigError, match=r"^Arch Model_ResNet18 takes 3 input channel\(s\), but Global.image_shape "
                                          r"is \[1, 28, 28\]: set Arch.in_channels: 1, or"):
        train(grey)
    assert not os.path.exists(grey["Global"]["output_dir"])


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_test_transforms_of_another_size_than_image_shape_stop_training_at_once(digits, tmp_path, engine):
    config = digits_config(tmp_path, digits, f"Global.engine={engine}", "Arch.pretrained=false", *SMALL,
                           Global={"image_shape": [3, 224, 224]}, Arch={"name": "resnet18"})
    _set_transforms(config, _transforms([224, 224], 0.5, 0.5), ("Train", "Eval"))
    _set_transforms(config, _transforms([32, 32], 0.5, 0.5), ("Test",))
    with pytest.raises(ConfigError, match=r"^DataLoader.Test.dataset: its transforms give samples of shape "
                                          r"\[3, 32, 32\], but Global.image_shape is \[3, 224, 224\]: end them with "
                                          r"a Resize and CenterCrop to \[224, 224\]"):
        train(config)
    assert not os.path.exists(config["Global"]["output_dir"])
    _set_transforms(config, [{"name": "Resize", "size": [224, 224]}], ("Test",))  # PIL images, no ToTensor
    with pytest.raises(ConfigError, match=r"^DataLoader.Test.dataset: its transforms give PIL images, but "
                                          r"Global.image_shape is \[3, 224, 224\]: .*end the transforms with "
                                          r"\{name: ToTensor\}"):
        train(config)


def _untrained(config):
    """Save the config's freshly built model as the best model of its output folder."""
    os.makedirs(config["Global"]["output_dir"], exist_ok=True)
    paddle.seed(0)
    paddle.save(build_model(config).state_dict(), os.path.join(config["Global"]["output_dir"], "best_model.pdparams"))


@pytest.mark.parametrize("onnx", [False, True])
def test_export_refuses_test_transforms_that_miss_the_input_size_before_writing(digits, tmp_path, onnx):
    if onnx:
        pytest.importorskip("onnxruntime")
    # resnet18 pools globally, so it would run on 32x32 inputs; the export's input spec says 224
    config = digits_config(tmp_path, digits, "Arch.pretrained=false", *SMALL, Global={"image_shape": [3, 224, 224]},
                           Arch={"name": "resnet18"})
    _set_transforms(config, _transforms([32, 32], 0.5, 0.5), ("Test",))
    _untrained(config)
    with pytest.raises(ConfigError, match=r"^DataLoader.Test.dataset: its transforms give samples of shape "
                                          r"\[3, 32, 32\], but Global.image_shape is \[3, 224, 224\]"):
        export(config, onnx=onnx)
    assert not os.path.exists(os.path.join(config["Global"]["output_dir"], "inference"))


def test_export_refuses_preprocessing_that_gives_the_size_only_for_some_pictures(digits, tmp_path):
    for name in NAMES:  # square test pictures: the test split itself comes out at the model's size
        os.makedirs(tmp_path / "square" / name)
        Image.new("RGB", (40, 40), 128).save(tmp_path / "square" / name / "a.png")
    config = digits_config(tmp_path, digits, *SMALL[:2])
    config["DataLoader"]["Test"]["dataset"]["root"] = str(tmp_path / "square")
    # the short side to 32 without a crop: square pictures come out 32x32, others do not
    _set_transforms(config, [{"name": "Resize", "size": 32}, {"name": "ToTensor"}], ("Test",))
    _untrained(config)
    assert list(build_dataset(config, "Test")[0][0].shape) == [3, 32, 32]
    with pytest.raises(ConfigError, match=r"^the test transforms turn a 97x61 image into \[3, 32, 50\], but the "
                                          r"model takes \[3, 32, 32\] \(Global.image_shape\); end them with a Resize "
                                          r"and CenterCrop"):
        export(config)
    assert not os.path.exists(os.path.join(config["Global"]["output_dir"], "inference"))


def test_an_export_whose_preprocessing_misses_the_model_input_is_refused_when_loaded(digits, tmp_path):
    config = digits_config(tmp_path, digits, *SMALL)
    _untrained(config)
    folder = export(config, parity_images=4)
    path = os.path.join(folder, "preprocess.json")
    info = json.load(open(path))
    info["steps"] = [{"name": "ToTensor"}]  # as an export made without the check could hold
    json.dump(info, open(path, "w"))
    with pytest.raises(ConfigError, match=r"preprocess.json: the test transforms turn a 97x61 image into "
                                          r"\[3, 61, 97\], but the model takes \[3, 32, 32\] .*; then export again"):
        Predictor(folder)


def _without_dev_split(tmp_path, digits, engine, *overrides):
    config = digits_config(tmp_path, digits, f"Global.engine={engine}", "Global.eval_per_epoch=false",
                           "DataLoader.Train.subset=[0, 96]", "DataLoader.Test.subset=[0, 48]", *overrides, epochs=1)
    del config["DataLoader"]["Eval"]
    return config


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_a_run_without_a_dev_split_leaves_its_tested_weights_to_eval_predict_and_export(digits, tmp_path, engine,
                                                                                         caplog):
    config = _without_dev_split(tmp_path, digits, engine)
    output_dir = config["Global"]["output_dir"]
    results = train(config)
    assert "No dev evaluation ran, so the final weights (last_model.pdparams) are tested" in caplog.text
    assert results["tested_weights"] == "last_model.pdparams"
    assert json.load(open(os.path.join(output_dir, "results.json")))["tested_weights"] == "last_model.pdparams"
    assert not os.path.exists(os.path.join(output_dir, "best_model.pdparams"))
    caplog.clear()
    assert evaluate(config, "dygraph")[0] == pytest.approx(results["test_accuracy"])
    final = os.path.join(output_dir, "last_model.pdparams")
    assert f"Loaded {final} (the final weights, which the run tested" in caplog.text
    image = os.path.join(digits, "test", "seven", sorted(os.listdir(os.path.join(digits, "test", "seven")))[0])
    predicted, failures = predict(config, [image], engine="dygraph")
    assert not failures and len(predicted) == 1
    folder = export(config, parity_images=4)
    assert json.load(open(os.path.join(folder, "preprocess.json")))["weights"]["path"] == os.path.abspath(final)


def test_the_tested_weights_win_over_a_best_model_left_by_an_earlier_run(digits, tmp_path, caplog):
    with_dev = digits_config(tmp_path, digits, "DataLoader.Train.subset=[0, 96]", "DataLoader.Eval.subset=[0, 32]",
                             "DataLoader.Test.subset=[0, 48]", epochs=1)
    train(with_dev)
    output_dir = with_dev["Global"]["output_dir"]
    assert json.load(open(os.path.join(output_dir, "results.json")))["tested_weights"] == "best_model.pdparams"
    config = _without_dev_split(tmp_path, digits, "runner", "Optimizer.learning_rate=0.02")  # same folder
    results = train(config)
    assert os.path.isfile(os.path.join(output_dir, "best_model.pdparams"))  # the first run's, stale
    caplog.clear()
    assert evaluate(config, "dygraph")[0] == pytest.approx(results["test_accuracy"])
    assert "last_model.pdparams (the final weights" in caplog.text
    checkpoint = dict(config, Global=dict(config["Global"], checkpoint=os.path.join(output_dir, "best_model.pdparams")))
    caplog.clear()
    evaluate(checkpoint, "dygraph")
    assert "best_model.pdparams (Global.checkpoint)" in caplog.text


def test_a_run_with_a_training_split_only_predicts_with_its_final_weights(digits, tmp_path, caplog):
    config = _without_dev_split(tmp_path, digits, "runner")
    del config["DataLoader"]["Test"]
    results = train(config)
    assert "tested_weights" not in results and "test_accuracy" not in results
    caplog.clear()
    image = os.path.join(digits, "test", "two", sorted(os.listdir(os.path.join(digits, "test", "two")))[0])
    predicted, failures = predict(config, [image], engine="dygraph")
    assert not failures and len(predicted) == 1
    final = os.path.join(config["Global"]["output_dir"], "last_model.pdparams")
    assert f"Loaded {final} (the final weights: no dev evaluation chose a best model)" in caplog.text


def test_serve_answers_a_picture_the_steps_miss_with_422_not_500():
    pytest.importorskip("fastapi")
    from paddle_cls.serving.app import model_input
    from paddle_cls.serving.uploads import UploadError

    class StepsMissingTheShape:
        def preprocess(self, image):
            raise ConfigError(f"the test transforms turn a {image.size[0]}x{image.size[1]} image into [3, 32, 50]")

    with pytest.raises(UploadError) as refused:
        model_input(StepsMissingTheShape(), Image.new("RGB", (97, 61)), "wide.png")
    assert refused.value.status == 422
    assert refused.value.reason == "wide.png: the test transforms turn a 97x61 image into [3, 32, 50]"
