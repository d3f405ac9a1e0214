"""Metrics. `METRICS` maps the names a config may use in `Metric.name`."""
from __future__ import annotations

from typing import Any, List, Sequence, Union

import numpy as np
import paddle

from .utils.distributed import all_reduce_sum
from .utils.logger import logger


class Accuracy(paddle.metric.Metric):
    """The course's accuracy metric (nndl `metric.Accuracy`), usable by RunnerV3 and by `paddle.Model`.

    Args:
        is_logist: for [N, 1] outputs, whether they are logits (threshold 0) or probabilities (threshold 0.5).
            [N, C] outputs with C > 1 are scored by argmax.
        topk: the k of top-k accuracy; `(1, 5)` reports top-1 and top-5 as `paddle.metric.Accuracy` does.
            A k larger than the number of classes is clipped to it, with a notice.
        name: the name reported by `name()` (with several k: `acc_top1`, `acc_top5`, ...).

    `update(outputs, labels)` takes Paddle tensors (RunnerV3) or NumPy arrays (`paddle.Model` hands it
    those); labels may be [N] or [N, 1]. With tensors the correct counts stay on the device until
    `accumulate()`, so evaluation does not wait on the device every batch. `accumulate()` returns a float
    for one k and a list for several.

    >>> metric = Accuracy()
    >>> metric.update(paddle.to_tensor([[0.1, 0.9], [0.8, 0.2]]), paddle.to_tensor([1, 1]))
    >>> metric.accumulate()
    0.5
    """

    def __init__(self, is_logist=True, topk=(1,), name="Accuracy"):
        super().__init__()
        self.is_logist = is_logist
        self.topk = tuple(topk) if isinstance(topk, (list, tuple)) else (topk,)
        if not self.topk or any(not isinstance(k, int) or k < 1 for k in self.topk):
            raise ValueError(f"Accuracy topk must be positive integers, got {topk!r}")
        self._name = name
        self._clipped = False
        self.reset()

    def _effective_topk(self, num_classes):
        if max(self.topk) > num_classes and not self._clipped:
            self._clipped = True
            logger.info(f"Accuracy: topk {self.topk} asks for more than the {num_classes} classes; "
                        f"k is clipped to {num_classes}")
        return [min(k, num_classes) for k in self.topk]

    def _binary_hits(self, outputs, labels, backend):
        scores = outputs.reshape([-1]) if backend is paddle else outputs.reshape(-1)
        preds = scores >= (0 if self.is_logist else 0.5)
        return [(preds.astype(labels.dtype) == labels).astype("int64").sum()]

    def _multiclass_hits(self, outputs, labels, backend):
        hits = []
        for k in self._effective_topk(outputs.shape[1]):
            if k == 1:
                correct = backend.argmax(outputs, axis=1).astype(labels.dtype) == labels
            elif backend is paddle:
                top = paddle.topk(outputs, k=k, axis=1)[1].astype(labels.dtype)
                correct = (top == labels.reshape([-1, 1])).any(axis=1)
            else:
                top = np.argsort(-outputs, axis=1, kind="stable")[:, :k]
                correct = (top == labels.reshape(-1, 1)).any(axis=1)
            hits.append(correct.astype("int64").sum())
        return hits

    def update(self, outputs: Any, labels: Any) -> None:
        """Add one batch: `outputs` [N, C] (or [N, 1] for two classes) and `labels` [N] or [N, 1]."""
        if isinstance(outputs, paddle.Tensor):
            labels = labels if isinstance(labels, paddle.Tensor) else paddle.to_tensor(labels)
            labels, backend = labels.reshape([-1]), paddle
        else:
            outputs, labels, backend = np.asarray(outputs), np.asarray(labels).reshape(-1), np
        score = self._binary_hits if outputs.shape[1] == 1 else self._multiclass_hits
        hits = score(outputs, labels, backend)
        if backend is paddle:
            self._hits_on_device = self._hits_on_device + paddle.stack(hits)
        else:
            self._hits_on_host = self._hits_on_host + np.array(hits, dtype=np.int64)
        self.num_count += int(labels.shape[0])

    def _hits(self):
        on_device = self._hits_on_device
        on_device = on_device.numpy() if isinstance(on_device, paddle.Tensor) else on_device
        return np.zeros(len(self.topk), dtype=np.int64) + self._hits_on_host + on_device

    @property
    def num_correct(self) -> int:
        """Correct (top-1, or first k) predictions so far."""
        return int(self._hits()[0])

    def accumulate(self) -> Union[float, List[float]]:
        """Accuracy over everything since the last `reset()`: a float for one k, a list for several."""
        if self.num_count == 0:
            return 0 if len(self.topk) == 1 else [0.0] * len(self.topk)
        values = (self._hits() / self.num_count).tolist()
        return values[0] if len(self.topk) == 1 else values

    def all_reduce(self) -> None:
        """Sum the counts over the processes of a data-parallel evaluation (each saw its own shard)."""
        counts = paddle.to_tensor(np.append(self._hits(), self.num_count).astype(np.int64))
        counts = all_reduce_sum(counts).numpy()
        self._hits_on_device, self._hits_on_host, self.num_count = 0, counts[:-1], int(counts[-1])

    def reset(self) -> None:
        self._hits_on_device = 0
        self._hits_on_host = 0
        self.num_count = 0

    def name(self) -> Union[str, List[str]]:
        if len(self.topk) == 1:
            return self._name
        return [f"acc_top{k}" for k in self.topk]


METRICS = {"Accuracy": Accuracy}


def score_name(metric: paddle.metric.Metric) -> str:
    """The name under which engines log `metric`'s (first) score, e.g. 'Accuracy' or 'acc_top1'; 'score' for a
    course-style metric without `name()` (RunnerV3 needs only update, accumulate and reset)."""
    name = metric.name() if hasattr(metric, "name") else "score"
    return name[0] if isinstance(name, (list, tuple)) else name


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> np.ndarray:
    """`matrix[true, predicted]` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)), 1)
    return matrix
