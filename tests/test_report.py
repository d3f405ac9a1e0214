"""`paddle-cls eval`'s report.html, opened from disk in a headless Chromium: it renders, its images load, nothing
leaves the page, and its numbers equal what the model gives, scikit-learn, per_class_accuracy.json and the [Test]
line."""
import base64
import io
import json
import os
import re

import numpy as np
import paddle
import pytest
import yaml
from PIL import Image
from scipy.special import log_softmax
from sklearn.metrics import precision_recall_fscore_support

from browser import chromium
from conftest import photo_patches
from own_images import TO_INPUT
from paddle_cls.cli import eval_main
from paddle_cls.config import load_config
from paddle_cls.data.cifar10 import CIFAR10_LABELS, read_cifar10_split
from paddle_cls.data.loader import build_loader
from paddle_cls.deploy.report import TOP_LOSSES
from paddle_cls.deploy.trained import load_trained_model
from paddle_cls.engine import train
from paddle_cls.engine.components import build_model

# Chinese class names, and one that is markup: the page must show each as written
FOLDER_CLASSES = ("猫", "狗", "金鱼", "a<b>&c")

PAGE = """
const value = sel => [...document.querySelectorAll(sel)].map(e => e.dataset.value);
const cells = table => [...document.querySelectorAll(`#${table} tbody tr`)].map(
    row => [...row.querySelectorAll("td")].map(cell => cell.dataset.value === undefined ? cell.textContent
                                                                                           : cell.dataset.value));
const number = id => [document.getElementById(id).textContent, document.getElementById(id).dataset.value];
return {
  images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
  addresses: [...document.querySelectorAll("[src], [href]")].map(e => e.getAttribute("src") || e.getAttribute("href")),
  fetched: performance.getEntriesByType("resource").map(entry => entry.name),
  classes: [...document.querySelectorAll("#per-class tr.class td.name")].map(e => e.textContent),
  precision: value("#per-class tr.class td.precision"), recall: value("#per-class tr.class td.recall"),
  f1: value("#per-class tr.class td.f1"), support: value("#per-class tr.class td.support"),
  averages: cells("per-class").slice(-2),
  accuracy: number("test-accuracy"), loss: number("test-loss"), count: number("test-count"),
  ece: document.getElementById("ece").dataset.value,
  gallery: [...document.querySelectorAll("#top-losses figure")].map(f => ({
      index: Number(f.dataset.index), loss: Number(f.dataset.loss), src: f.querySelector("img").src,
      size: [f.querySelector("img").naturalWidth, f.querySelector("img").naturalHeight],
      true: f.querySelector(".true").textContent, predicted: f.querySelector(".predicted").textContent,
      source: f.querySelector(".source").textContent})),
  counts: cells("confusion-counts"),
  confused: cells("most-confused"),
  curves: document.getElementById("curves") !== null,
  height: document.documentElement.scrollHeight,
};
"""


def _config(path, output_dir, data_dir, dataset, classes, **test):
    config = {
        "Global": {"device": "cpu", "seed": 7, "epochs": 1, "output_dir": str(output_dir), "data_dir": str(data_dir),
                   "download": False, "log_steps": 0, "eval_per_epoch": True, "progress": False},
        "Arch": {"name": "MyNet", "num_classes": classes},
        "Optimizer": {"name": "Adam", "learning_rate": 0.002},
        "DataLoader": {"Train": {"dataset": dataset("train"), "batch_size": 16, "shuffle": True},
                       "Eval": {"dataset": dataset("test"), "batch_size": 16},
                       "Test": {"dataset": dataset("test"), "batch_size": 16, **test}},
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return str(path)


def _model_outputs(config_path):
    """Labels and float64 log-probabilities of the test split, computed here from the trained model's logits."""
    config = load_config(config_path, [])
    config["DataLoader"]["Test"]["shuffle"] = False
    model, labels, logits = load_trained_model(config), [], []
    with paddle.no_grad():
        for images, batch_labels in build_loader(config, "Test"):
            logits.append(model(images).numpy().astype(np.float64))
            labels.append(batch_labels.numpy().reshape(-1))
    return np.concatenate(labels), log_softmax(np.concatenate(logits), axis=1)


def _hand_ece(confidences, correct, bins=15):
    total = 0.0
    for m in range(bins):
        members = [i for i, c in enumerate(confidences) if (m == 0 and c == 0) or m / bins < c <= (m + 1) / bins]
        if members:
            accuracy = sum(correct[i] for i in members) / len(members)
            confidence = sum(confidences[i] for i in members) / len(members)
            total += len(members) / len(confidences) * abs(accuracy - confidence)
    return total


def _evaluate_and_open(browser, config_path, capsys):
    assert eval_main(["-c", config_path]) == 0
    out = capsys.readouterr().out
    accuracy, loss = re.search(r"\[Test\] accuracy/loss: ([\d.]+)/([\d.]+)", out).groups()
    report = re.search(r"^Evaluation report: (.+)$", out, re.M).group(1)
    browser.get("file://" + os.path.abspath(report))
    return (accuracy, loss), report, browser.execute_script(PAGE)


def _check_page(page, html, test_line, per_class_file, names, labels, log_p):
    """Everything the page shows against this test's own computation from the model's log-probabilities."""
    predictions, count = log_p.argmax(axis=1), len(labels)
    # renders from disk, every picture decoded, nothing fetched from anywhere
    assert page["images"] and all(complete and width > 0 and height > 0 for complete, width, height in page["images"])
    assert all(address.startswith("data:image/") for address in page["addresses"]), page["addresses"]
    assert not [name for name in page["fetched"] if not name.startswith("data:")]
    assert "http://" not in html and "https://" not in html
    # the [Test] line
    assert [page["accuracy"][0], page["loss"][0]] == list(test_line)
    assert f"{float(page['accuracy'][1]):.4f}" == test_line[0] and f"{float(page['loss'][1]):.4f}" == test_line[1]
    assert float(page["accuracy"][1]) == pytest.approx(np.mean(predictions == labels), abs=1e-12)
    assert page["count"] == [str(count), str(count)]
    # per class: scikit-learn's numbers, and recall = per_class_accuracy.json
    assert page["classes"] == list(names)
    reference = precision_recall_fscore_support(labels, predictions, labels=range(len(names)), zero_division=np.nan)
    shown = [np.array([float(v) if v else np.nan for v in page[key]]) for key in ("precision", "recall", "f1")]
    for ours, theirs in zip(shown, reference[:3]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, equal_nan=True)
    assert [int(v) for v in page["support"]] == reference[3].tolist()
    saved = json.load(open(per_class_file, encoding="utf-8"))
    assert list(saved) == list(names)
    assert [saved[name] for name in names] == [None if np.isnan(v) else pytest.approx(v) for v in shown[1]]
    for row, average in zip(page["averages"], ("macro", "weighted")):
        theirs = precision_recall_fscore_support(labels, predictions, labels=range(len(names)), average=average,
                                                 zero_division=np.nan)[:3]
        assert row[0] == f"{average} avg" and [float(v) for v in row[1:4]] == pytest.approx(theirs, rel=1e-12)
    # the confusion matrix and the most confused pair
    matrix = np.zeros((len(names), len(names)), int)
    np.add.at(matrix, (labels, predictions), 1)
    assert [[int(v) for v in row] for row in page["counts"]] == matrix.tolist()
    off = matrix - np.diag(np.diag(matrix))
    if off.any():
        true, predicted = np.unravel_index(off.argmax(), off.shape)
        assert page["confused"][0] == [names[true], names[predicted], str(off.max())]
    # the gallery: the k highest losses, highest first, labelled
    losses = -log_p[np.arange(count), labels]
    expected = np.argsort(-losses, kind="stable")[:TOP_LOSSES]
    assert [item["index"] for item in page["gallery"]] == expected.tolist()
    assert [item["loss"] for item in page["gallery"]] == pytest.approx(losses[expected].tolist(), rel=1e-9)
    assert [(item["true"], item["predicted"]) for item in page["gallery"]] == [
        (names[labels[i]], names[predictions[i]]) for i in expected]
    # the expected calibration error, by hand from the same probabilities
    confidences = np.exp(log_p.max(axis=1))
    assert float(page["ece"]) == pytest.approx(_hand_ece(confidences.tolist(), (predictions == labels).tolist()),
                                               abs=1e-9)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def _picture(src):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


@pytest.mark.browser
def test_report_of_a_trained_cifar10_model_shows_its_numbers_and_test_pictures(browser, cifar_folder, tmp_path,
                                                                                capsys):
    # a shuffled test split too: eval evaluates it in order, so the pictures are the samples scored
    config_path = _config(tmp_path / "cifar.yml", tmp_path / "out", cifar_folder,
                          lambda mode: {"name": "CIFAR10Dataset", "mode": mode}, 10, shuffle=True)
    train(load_config(config_path, ["DataLoader.Train.subset=[0, 96]"]))
    test_line, report, page = _evaluate_and_open(browser, config_path, capsys)
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    labels, log_p = _model_outputs(config_path)
    _check_page(page, open(report, encoding="utf-8").read(), test_line, tmp_path / "out" / "per_class_accuracy.json",
                names, labels, log_p)
    images, _ = read_cifar10_split(cifar_folder, "test")
    for item in page["gallery"]:  # the 32 x 32 picture of the batch file, exactly
        assert item["source"] == f"test[{item['index']}]"
        np.testing.assert_array_equal(_picture(item["src"]), images[item["index"]].transpose(1, 2, 0))
    assert page["curves"]  # the run folder's history.json


def _photo(side, seed):
    patch = photo_patches([0], seed)[0].transpose(1, 2, 0)
    return Image.fromarray(patch).resize(side, Image.BILINEAR)


@pytest.mark.browser
def test_report_of_an_image_folder_with_chinese_class_names(browser, tmp_path, capsys):
    data = tmp_path / "data"
    for split, per_class in (("train", 2), ("test", 3)):
        for label, name in enumerate(FOLDER_CLASSES):
            os.makedirs(data / split / name)
            for number in range(per_class):
                _photo((24 + 8 * number, 32), 10 * label + number).save(data / split / name / f"{number}.png")
    # a portrait phone photo, stored sideways with an EXIF orientation: the gallery shows it upright, shrunk
    photo, exif = _photo((1200, 900), 99), Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    photo.save(data / "test" / "猫" / "phone.jpg", exif=exif.tobytes())
    config_path = _config(tmp_path / "folder.yml", tmp_path / "out", data,
                          lambda split: {"name": "ImageFolder", "root": split, "transforms": TO_INPUT},
                          len(FOLDER_CLASSES))
    os.makedirs(tmp_path / "out")  # an untrained model, and a run folder without history.json
    paddle.seed(3)
    paddle.save(build_model(load_config(config_path, [])).state_dict(), str(tmp_path / "out" / "best_model.pdparams"))
    test_line, report, page = _evaluate_and_open(browser, config_path, capsys)
    labels, log_p = _model_outputs(config_path)
    _check_page(page, open(report, encoding="utf-8").read(), test_line, tmp_path / "out" / "per_class_accuracy.json",
                sorted(FOLDER_CLASSES), labels, log_p)  # ImageFolder's classes: the sorted folder names
    assert len(page["gallery"]) == len(labels) == 13  # fewer test images than the gallery holds: all of them
    phone = next(item for item in page["gallery"] if item["source"] == os.path.join("猫", "phone.jpg"))
    assert phone["size"] == [192, 256] and phone["true"] == "猫"
    for item in page["gallery"]:  # the small files as they are: PNG in the page, pixel for pixel
        if item["source"].endswith(".png"):
            expected = np.asarray(Image.open(data / "test" / item["source"]).convert("RGB"))
            np.testing.assert_array_equal(_picture(item["src"]), expected)
    assert not page["curves"]


def test_scores_where_a_class_has_no_samples_or_no_predictions_and_a_one_logit_model():
    from paddle_cls.deploy.report import SampleScores, class_scores, score_rows

    labels, predictions = np.array([0, 0, 1, 1, 1, 3]), np.array([0, 1, 1, 1, 0, 0])  # 2: no samples, 3: never right
    matrix = np.zeros((4, 4), int)
    np.add.at(matrix, (labels, predictions), 1)
    rows = score_rows(["a", "b", "c", "d"], class_scores(matrix))
    reference = precision_recall_fscore_support(labels, predictions, labels=range(4), zero_division=np.nan)
    for field, theirs in zip(("precision", "recall", "f1", "support"), reference):
        np.testing.assert_allclose([row[field] for row in rows[:4]], theirs, equal_nan=True)
    for row, average in zip(rows[4:], ("macro", "weighted")):
        theirs = precision_recall_fscore_support(labels, predictions, labels=range(4), average=average,
                                                 zero_division=np.nan)[:3]
        assert row["name"] == f"{average} avg" and [row["precision"], row["recall"], row["f1"]] == pytest.approx(theirs)
    scores = SampleScores()  # [N, 1] outputs: one logit for class 1, as Accuracy scores them
    scores.add(np.array([[2.0], [-1.0]]), np.array([[0], [0]]), np.array([1, 0]))
    p1 = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
    assert scores.confidences == pytest.approx([p1[0], 1 - p1[1]]) and scores.losses == pytest.approx(-np.log(1 - p1))


def test_a_model_with_more_outputs_than_classes_is_evaluated_over_every_sample_of_each_class(data_dir, tmp_path):
    # resnet18.yml keeps the chapter's 1000-way head on CIFAR-10's 10 classes: predictions may fall beyond them
    overrides = [f"Global.data_dir={data_dir}", f"Global.output_dir={tmp_path}", "Global.device=cpu",
                 "Arch={name: squeezenet1_1}", "DataLoader.Test.subset=[0, 40]",
                 f"Global.checkpoint={tmp_path / 'untrained.pdparams'}"]
    config = load_config("configs/mynet_cifar10.yml", overrides)
    paddle.seed(3)
    paddle.save(build_model(config).state_dict(), str(tmp_path / "untrained.pdparams"))
    assert eval_main(["-c", "configs/mynet_cifar10.yml", *[arg for o in overrides for arg in ("-o", o)]]) == 0
    per_class = json.load(open(tmp_path / "per_class_accuracy.json"))
    logits, labels = [], []
    model = load_trained_model(config)
    for images, batch_labels in build_loader(config, "Test"):
        logits.append(model(images).numpy())
        labels.append(batch_labels.numpy().reshape(-1))
    predictions, labels = np.concatenate(logits).argmax(axis=1), np.concatenate(labels)
    assert (predictions >= 10).any()  # the case this test is about
    for index, name in enumerate(CIFAR10_LABELS):
        mine = labels == index
        expected = (predictions[mine] == index).mean() if mine.any() else None
        assert per_class[name] == expected, name
    assert "(an output beyond the classes)" in open(tmp_path / "report.html", encoding="utf-8").read()
