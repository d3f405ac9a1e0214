"""Your own images: folders and file lists of real pictures (scikit-learn's digits), checked before training,
learnt on both engines, with their class names carried to eval, predict and export."""
import copy
import json
import os
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from own_images import NAMES, TO_INPUT, digits_config
from paddle_cls.cli import check_data_main
from paddle_cls.data import ImageFolder, ImageNetDataset
from paddle_cls.data.loader import build_dataset, class_names
from paddle_cls.data.paddleclas_ops import ScaleNormalize, parse_number
from paddle_cls.data.preprocessing import build_preprocess, preprocessing_steps
from paddle_cls.deploy import evaluate, predict
from paddle_cls.deploy.export import export
from paddle_cls.deploy.predictor import Predictor
from paddle_cls.engine import train
from paddle_cls.engine.components import build_model
from paddle_cls.errors import CheckpointError, ConfigError, DataError

SORTED = sorted(NAMES)  # eight, five, four, nine, one, seven, six, three, two, zero
def test_folder_classes_are_the_sorted_folder_names_and_every_image_reads_as_rgb(digits):
    dataset = ImageFolder("train", folder_path=digits)
    assert dataset.classes == SORTED and len(dataset) == 1500  # hidden files and folders skipped
    assert any(os.sep + "more" + os.sep in path for path, _ in dataset.samples)  # sub-folders count
    labels = [label for _, label in dataset.samples]
    assert [SORTED[label] for label in labels] == [path.split(os.sep)[-2 if os.sep + "more" + os.sep not in path
                                                                         else -3] for path, _ in dataset.samples]
    modes = {Image.open(path).mode for path, _ in dataset.samples}
    assert {"L", "RGB", "P", "RGBA", "CMYK"} <= modes and ({"I;16"} & modes or {"I"} & modes)
    for index in range(0, 1500, 37):
        image, label = dataset[index]
        assert image.mode == "RGB" and label.dtype == np.int64
    grey = ImageFolder("train", channels=1, folder_path=digits)
    assert grey[0][0].mode == "L"


def test_linked_class_folders_are_followed(digits, tmp_path):
    linked = tmp_path / "subset"
    linked.mkdir()
    for name in ("one", "seven"):
        os.symlink(os.path.join(digits, "train", name), linked / name)
    dataset = ImageFolder(str(linked))
    assert dataset.classes == ["one", "seven"]
    assert len(dataset) == len(ImageFolder(os.path.join(digits, "train"))
                               .samples) - sum(1 for _, label in ImageFolder(os.path.join(digits, "train")).samples
                                               if SORTED[label] not in ("one", "seven"))


def test_hold_out_is_per_class_seeded_and_disjoint(digits):
    train_part = ImageFolder("train", split="train", val_fraction=0.2, folder_path=digits)
    val_part = ImageFolder("train", split="val", val_fraction=0.2, folder_path=digits)
    assert not {p for p, _ in train_part.samples} & {p for p, _ in val_part.samples}
    assert len(train_part) + len(val_part) == 1500
    per_class = np.bincount([label for _, label in val_part.samples], minlength=10)
    assert all(abs(count - 30) <= 5 for count in per_class)  # about a fifth of each class's ~150
    again = ImageFolder("train", split="val", val_fraction=0.2, folder_path=digits)
    assert again.samples == val_part.samples


def test_a_file_list_with_spaces_in_paths_and_a_class_map(digits, tmp_path):
    folder = ImageFolder("test", folder_path=digits)
    (tmp_path / "my images").mkdir()
    lines = []
    for index, (path, label) in enumerate(folder.samples[:30]):
        target = tmp_path / "my images" / f"digit {index}{os.path.splitext(path)[1]}"
        os.symlink(path, target)
        lines.append(f"my images/digit {index}{os.path.splitext(path)[1]} {label}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n\n")
    (tmp_path / "classes.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(SORTED)))
    listed = ImageNetDataset(".", "list.txt", class_id_map_file="classes.txt", folder_path=str(tmp_path))
    assert listed.classes == SORTED and len(listed) == 30
    assert [label for _, label in listed.samples] == [label for _, label in folder.samples[:30]]
    np.testing.assert_array_equal(np.asarray(listed[3][0]), np.asarray(folder[3][0]))
    (tmp_path / "list.txt").write_text(lines[0] + "\nmy images/digit 1.png\n")
    with pytest.raises(DataError, match=r"list.txt:2: expected 'relative/path label'"):
        ImageNetDataset(".", "list.txt", folder_path=str(tmp_path))
    (tmp_path / "list.txt").write_text("my images/nowhere.png 1\n")
    with pytest.raises(DataError, match=r"list.txt:1: .*nowhere.png does not exist"):
        ImageNetDataset(".", "list.txt", folder_path=str(tmp_path))
    (tmp_path / "list.txt").write_text(lines[0].rsplit(" ", 1)[0] + " 10\n")
    with pytest.raises(DataError, match=r"list.txt:1: label 10 is outside 0..9"):
        ImageNetDataset(".", "list.txt", class_id_map_file="classes.txt", folder_path=str(tmp_path))


def test_bad_folders_are_named_before_training(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        ImageFolder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no class folders"):
        ImageFolder(str(tmp_path / "empty"))
    (tmp_path / "root" / "cat").mkdir(parents=True)
    (tmp_path / "root" / "dog").mkdir()
    Image.new("RGB", (9, 7)).save(tmp_path / "root" / "cat" / "a.JPG")  # extensions in any case
    (tmp_path / "root" / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder dog/ holds no images"):
        ImageFolder(str(tmp_path / "root"))


def test_an_image_that_cannot_be_decoded_stops_the_run_with_its_path(digits, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(os.path.join(digits, "test"), root / "train")
    shutil.copytree(os.path.join(digits, "test"), root / "test")
    broken = root / "train" / "three" / "broken.png"
    broken.write_bytes(open(next(p for p, _ in ImageFolder(str(root / "train")).samples
                                 if p.endswith(".png")), "rb").read()[:60])  # a truncated PNG
    for workers in (0, 2):  # read in the main thread; in loader workers
        config = digits_config(tmp_path, str(root), f"DataLoader.Train.num_workers={workers}", epochs=1)
        with pytest.raises(DataError, match=r"broken.png: cannot be decoded"):
            train(config)


def test_classes_must_agree_between_splits_and_with_num_classes(digits, tmp_path):
    config = digits_config(tmp_path, digits)
    assert class_names(config) == tuple(SORTED)
    assert build_model(config).linear2.weight.shape == [64, 10]  # num_classes omitted: from the data
    with pytest.raises(ConfigError, match=r"Arch.num_classes: 12, but the training data holds 10 classes \(eight, "):
        build_model(digits_config(tmp_path, digits, "Arch.num_classes=12"))
    (tmp_path / "other" / "cat").mkdir(parents=True)
    Image.new("RGB", (9, 7)).save(tmp_path / "other" / "cat" / "a.png")
    mismatch = digits_config(tmp_path, digits, f"DataLoader.Test.dataset.root={tmp_path / 'other'}")
    with pytest.raises(DataError, match=r"DataLoader.Test's classes differ from DataLoader.Train's: \['cat'\]"):
        class_names(mismatch)


def test_a_paddleclas_dataset_section_pastes_in_unchanged(digits, tmp_path):
    section = yaml.safe_load("""
        name: ImageFolder
        root: test
        transform_ops:
          - DecodeImage: {to_rgb: True, channel_first: False}
          - ResizeImage: {resize_short: 36}
          - CropImage: {size: 32}
          - RandFlipImage: {flip_code: 1}
          - NormalizeImage: {scale: 1.0/255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: ''}
          - ToCHWImage:
    """)
    config = digits_config(tmp_path, digits)
    config["DataLoader"]["Test"]["dataset"] = section
    image, label = build_dataset(config, "Test")[5]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    assert parse_number("1.0/255.0", "scale") == pytest.approx(1 / 255)
    raw = np.full((2, 2, 3), 255, dtype=np.uint8)
    assert ScaleNormalize(1 / 255, [0.5] * 3, [0.25] * 3)(raw) == pytest.approx(np.full((2, 2, 3), 2.0))
    section["transform_ops"].append({"AutoAugment": None})
    with pytest.raises(ConfigError, match=r"the PaddleClas op AutoAugment is not supported \(supported: DecodeImage"):
        build_dataset(config, "Test")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_a_small_net_learns_the_digits_folder(digits, tmp_path, engine):
    results = train(digits_config(tmp_path, digits, f"Global.engine={engine}"))
    assert results["test_accuracy"] >= 0.9 and results["test_samples"] == 297
    log = open(tmp_path / "out" / "train.log").read()
    assert "Data: Train 1,201, Eval 299, Test 297 samples; 10 classes: eight, five, four, nine" in log
    assert json.load(open(tmp_path / "out" / "classes.json")) == SORTED


@pytest.fixture(scope="module")
def trained_digits(digits, tmp_path_factory):
    config = digits_config(tmp_path_factory.mktemp("trained"), digits, epochs=2)
    train(config)
    return config


def _test_images(digits, per_class=3):
    return [(os.path.join(digits, "test", name, file), name) for name in SORTED
            for file in sorted(f for f in os.listdir(os.path.join(digits, "test", name)) if "." in f)[:per_class]]


def test_class_names_travel_to_eval_predict_and_export(trained_digits, digits, tmp_path, caplog):
    config = trained_digits
    output_dir = config["Global"]["output_dir"]
    evaluate(config)
    per_class = json.load(open(os.path.join(output_dir, "per_class_accuracy.json")))
    assert list(per_class) == SORTED and os.path.isfile(os.path.join(output_dir, "confusion_matrix.png"))
    assert "[Test]        eight: " in caplog.text

    images = _test_images(digits)
    results, failures = predict(config, [path for path, _ in images], topk=2)
    assert not failures and all(ranked[0][0] in SORTED for _, _, ranked in results)
    assert np.mean([ranked[0][0] == name for (_, _, ranked), (_, name) in zip(results, images)]) >= 0.8

    folder = export(config)
    preprocess = json.load(open(os.path.join(folder, "preprocess.json")))
    assert preprocess["label_names"] == SORTED and preprocess["steps"] == TO_INPUT
    exported = Predictor(folder)([path for path, _ in images], topk=2)
    assert [ranked[0][0] for ranked in exported] == [ranked[0][0] for _, _, ranked in results]

    preprocess["label_names"] = SORTED[:9]
    json.dump(preprocess, open(os.path.join(folder, "preprocess.json"), "w"))
    with pytest.raises(CheckpointError, match=r"the model scores 10 classes but 9 class names go with it"):
        Predictor(folder)([images[0][0]])
    os.remove(os.path.join(folder, "preprocess.json"))  # no export: predictions come from the trained weights

    elsewhere = copy.deepcopy(config)  # predicting on a machine without the training images
    elsewhere["Global"]["data_dir"] = str(tmp_path / "not-here")
    results, _ = predict(elsewhere, [images[0][0]])
    assert results[0][2][0][0] in SORTED


def test_evaluation_uses_the_deterministic_part_of_the_transforms(digits, tmp_path):
    augment = [{"name": "RandomResizedCrop", "size": 32}, {"name": "RandomHorizontalFlip"},
               {"name": "ColorJitter", "brightness": 0.4}, {"name": "ToTensor"}]
    config = digits_config(tmp_path, digits)
    config["DataLoader"]["Train"]["dataset"]["transforms"] = augment
    for split in ("Eval", "Test"):
        del config["DataLoader"][split]["dataset"]["transforms"]
    test_set = build_dataset(config, "Test")
    assert np.array_equal(test_set[3][0], test_set[3][0]) and list(test_set[3][0].shape) == [3, 32, 32]
    assert preprocessing_steps(config)["steps"] == [{"name": "Resize", "size": 32}, {"name": "CenterCrop", "size": 32},
                                                    {"name": "ToTensor"}]
    config["DataLoader"]["Test"]["dataset"]["transforms"] = [{"name": "ToTensor"}]
    preprocess = build_preprocess(preprocessing_steps(config))
    with pytest.raises(ConfigError, match=r"turn a 40x24 image into \[3, 24, 40\], but the model takes \[3, 32, 32\]"):
        preprocess(Image.new("RGB", (40, 24)))


def test_check_data_lists_every_bad_image_at_once(digits, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(os.path.join(digits, "test"), root / "train")
    shutil.copytree(os.path.join(digits, "test"), root / "test")
    (root / "train" / "two" / "notes.jpg").write_text("a text file named like a photo")
    (root / "test" / "six" / "empty.png").write_bytes(b"")
    config = digits_config(tmp_path, str(root))
    assert check_data_main(["-c", str(tmp_path / "digits.yml")]) == 1
    out = capsys.readouterr().out
    assert "DataLoader.Test: 298 samples in 10 classes" in out and "2 problem(s) found" in out
    assert "notes.jpg: cannot be decoded" in out and "empty.png: cannot be decoded" in out
    os.remove(root / "train" / "two" / "notes.jpg")
    os.remove(root / "test" / "six" / "empty.png")
    assert check_data_main(["-c", str(tmp_path / "digits.yml")]) == 0
    assert config["DataLoader"]["Train"]["dataset"]["root"] == "train"
