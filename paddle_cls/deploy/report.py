"""The evaluation report: `report.html`, one self-contained page (styles and images inline, nothing fetched) with the
`[Test]` numbers, per-class precision, recall, F1 and support, the confusion matrix and the most confused pairs,
the test images with the highest loss, a reliability diagram with the expected calibration error, and the
training curves of the run. Modelled on fastai's `ClassificationInterpretation` (`most_confused`,
`plot_top_losses`)."""
from __future__ import annotations

import datetime
import json
import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import jinja2
import numpy as np

from ..utils.logger import logger
from .report_figures import picture_uri, reliability_diagram, training_curves

REPORT_FILE = "report.html"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.html.j2")
CALIBRATION_BINS = 15  # Guo et al. 2017, "On Calibration of Modern Neural Networks", the usual choice
TOP_LOSSES = 16
MOST_CONFUSED = 10
MAX_MATRIX_CLASSES = 60  # beyond this a matrix table is unreadable (and 1,000 classes make a million cells)


def _log_probabilities(outputs, is_logist):
    """log p [N, C] of model outputs [N, C] (logits), or [N, 1] (one logit, or with `is_logist=False` the
    probability of class 1) as two classes."""
    if outputs.shape[1] == 1:
        value = outputs[:, 0]
        if is_logist:  # log sigmoid(-x), log sigmoid(x)
            return np.stack([-np.logaddexp(0, value), -np.logaddexp(0, -value)], axis=1)
        with np.errstate(divide="ignore"):
            return np.log(np.stack([1 - value, value], axis=1).clip(0, 1))
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class SampleScores:
    """What the report needs of each test sample, in loader order, gathered batch by batch during evaluation:
    five numbers a sample (the probabilities of every class are not kept).

    Attributes (NumPy arrays [N], after `add`): `labels`, `predictions` (int64); `confidences` (probability of
    the predicted class), `true_probabilities` (of the labelled class), `losses` (cross-entropy, -log p(true),
    in nats; inf where p(true) is 0), float64. Probabilities are the softmax of the logits (two classes from
    a single output: its sigmoid).
    """

    FIELDS = ("labels", "predictions", "confidences", "true_probabilities", "losses")

    def __init__(self) -> None:
        self._parts: Dict[str, List[np.ndarray]] = {field: [] for field in self.FIELDS}

    def add(self, outputs: np.ndarray, labels: np.ndarray, predictions: np.ndarray, is_logist: bool = True) -> None:
        """One batch: model `outputs` [N, C] or [N, 1], `labels` [N] or [N, 1], the `predictions` [N] scored."""
        log_p = _log_probabilities(np.asarray(outputs, dtype=np.float64), is_logist)
        labels, predictions = np.asarray(labels).astype(np.int64).reshape(-1), np.asarray(predictions).reshape(-1)
        rows = np.arange(len(labels))
        values = (labels, predictions, np.exp(log_p[rows, predictions]), np.exp(log_p[rows, labels]),
                  -log_p[rows, labels])
        for field, value in zip(self.FIELDS, values):
            self._parts[field].append(value)

    def __getattr__(self, field):
        if field not in SampleScores.FIELDS:
            raise AttributeError(field)
        parts = self._parts[field]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64 if field in self.FIELDS[:2] else np.float64)


def class_scores(matrix: np.ndarray) -> Dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix `[true, predicted]` (counts), as
    scikit-learn's `precision_recall_fscore_support(..., zero_division=np.nan)` gives them: NaN where a ratio
    has nothing to count (precision of a class never predicted, recall of a class without samples).

    Returns:
        `{"precision", "recall", "f1": float64 [C], "support": int64 [C]}`; recall is the per-class accuracy.
    """
    hits = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"precision": np.where(predicted > 0, hits / predicted, np.nan),
                "recall": np.where(support > 0, hits / support, np.nan),
                "f1": np.where(predicted + support > 0, 2 * hits / (predicted + support), np.nan),
                "support": support}


def score_rows(names: Sequence[str], scores: Dict[str, np.ndarray]) -> List[dict]:
    """The per-class table: one row per class of `class_scores`, then "macro avg" and "weighted avg", each
    over the classes where the value is defined, the second weighted by support (scikit-learn's `average=`
    with `zero_division=np.nan`). Rows: `{"kind": "class" or "average", "name", "precision", "recall", "f1",
    "support"}`."""
    fields = ("precision", "recall", "f1")
    rows = [{"kind": "class", "name": name, **{field: float(scores[field][i]) for field in fields},
             "support": int(scores["support"][i])} for i, name in enumerate(names)]
    support = scores["support"].astype(np.float64)
    for name in ("macro avg", "weighted avg"):
        row = {"kind": "average", "name": name, "support": int(support.sum())}
        for field in fields:
            known = ~np.isnan(scores[field])
            weights = support[known] if name == "weighted avg" else np.ones(int(known.sum()))
            row[field] = float(np.dot(scores[field][known], weights) / weights.sum()) if weights.sum() else math.nan
        rows.append(row)
    return rows


def most_confused(matrix: np.ndarray, names: Sequence[str], limit: int = MOST_CONFUSED) -> List[Tuple[str, str, int]]:
    """The off-diagonal cells of `matrix` with the most samples, as fastai's `most_confused`:
    `(true class, predicted class, count)`, most first (ties in row-major order), cells of 0 left out."""
    off = matrix.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off.ravel(), kind="stable")[:limit]
    cells = [divmod(int(flat), off.shape[1]) for flat in order]
    return [(names[true], names[predicted], int(off[true, predicted])) for true, predicted in cells
            if off[true, predicted] > 0]


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> Tuple[float, List[dict]]:
    """The expected calibration error (Guo et al. 2017, eq. 3): bin m of `bins` equal-width bins holds the
    samples whose confidence (probability of the predicted class) is in ((m-1)/M, m/M] (a confidence of 0 in
    the first); ECE = sum over bins of |B_m|/n * |accuracy(B_m) - mean confidence(B_m)|.

    Returns:
        `(ece, rows)`: one row per bin, `{"lower", "upper", "count", "accuracy", "confidence"}` (the last two
        NaN for an empty bin).
    """
    confidences, correct = np.asarray(confidences, np.float64), np.asarray(correct, bool)
    edges = np.arange(bins + 1) / bins
    which = np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for m in range(bins):
        members = which == m
        count = int(members.sum())
        accuracy = float(correct[members].mean()) if count else math.nan
        confidence = float(confidences[members].mean()) if count else math.nan
        if count:
            ece += count / len(confidences) * abs(accuracy - confidence)
        rows.append({"lower": float(edges[m]), "upper": float(edges[m + 1]), "count": count,
                     "accuracy": accuracy, "confidence": confidence})
    return ece, rows


def top_losses(losses: np.ndarray, k: int = TOP_LOSSES) -> np.ndarray:
    """Indices of the `k` highest losses, highest first (ties: the earlier sample first), as fastai's
    `top_losses`."""
    return np.argsort(-np.asarray(losses), kind="stable")[:k]


def read_history(output_dir: str) -> Optional[List[dict]]:
    """The rows of `history.json` in `output_dir` (see `utils.history`), or None where there is none; one
    warning line, and None, for a file that cannot be read."""
    path = os.path.join(output_dir, "history.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            rows = json.load(file)
        if not isinstance(rows, list) or not all(isinstance(row, dict) and "epoch" in row for row in rows):
            raise ValueError("expected a list of rows with an epoch each")
    except (OSError, ValueError) as exc:
        logger.warning(f"{path}: left out of the report, it cannot be read ({exc})")
        return None
    return rows


def _number(value, digits=4):
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _exact(value):
    """A number for a `data-value` attribute: repr's shortest round-trip form, '' for an undefined one."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _template():
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
    environment.filters.update(number=_number, exact=_exact)
    with open(TEMPLATE, encoding="utf-8") as file:
        return environment.from_string(file.read())


def _gallery(scores, names, original, k):
    entries, losses, labels, predictions = [], scores.losses, scores.labels, scores.predictions
    confidences, true_probabilities = scores.confidences, scores.true_probabilities
    for index in top_losses(losses, k):
        image, source, path = original(int(index))
        entries.append({"index": int(index), "source": source, "path": path, "uri": picture_uri(image),
                        "true": names[labels[index]], "predicted": names[predictions[index]],
                        "confidence": float(confidences[index]), "true_probability": float(true_probabilities[index]),
                        "loss": float(losses[index])})
    return entries


def write_report(path: str, title: str, names: Sequence[str], matrix: np.ndarray, scores: SampleScores,
                 test_result: Tuple[float, float, int], original: Callable[[int], Tuple[np.ndarray, str, str]],
                 history: Optional[List[dict]] = None, k: int = TOP_LOSSES) -> str:
    """Write the evaluation report to `path` (UTF-8 HTML that opens from disk, fetching nothing).

    Args:
        title: what was evaluated, for the heading.
        names: the class names, in label order (any script).
        matrix: the confusion matrix `[true, predicted]`, counts [C, C].
        scores: the test samples' `SampleScores`, in dataset order.
        test_result: `(accuracy, loss, samples)` of the `[Test]` line.
        original: sample index -> `(uint8 picture HWC or HW as the user sees it, a short name of where it comes
            from, its full path)` (`report_figures.original_picture`), called for the `k` highest-loss samples.
        history: the run's `read_history` rows, for the training curves.
        k: how many highest-loss samples the gallery shows.

    Returns:
        `path`.
    """
    per_class = class_scores(matrix)
    ece, bins = expected_calibration_error(scores.confidences, scores.predictions == scores.labels)
    accuracy, loss, count = test_result
    row_totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(row_totals > 0, matrix / row_totals, np.nan)
    page = _template().render(
        title=title, created=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), names=list(names),
        accuracy=accuracy, loss=loss, count=count, per_class=score_rows(names, per_class),
        matrix=matrix.tolist() if len(names) <= MAX_MATRIX_CLASSES else None, normalised=normalised.tolist(),
        max_matrix_classes=MAX_MATRIX_CLASSES, confused=most_confused(matrix, names),
        gallery=_gallery(scores, names, original, k), ece=ece, bins=bins,
        reliability=reliability_diagram(bins, ece), curves=training_curves(history) if history else None)
    with open(path, "w", encoding="utf-8") as file:
        file.write(page)
    return path
