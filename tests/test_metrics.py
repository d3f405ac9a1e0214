import numpy as np
import paddle
import pytest

import course_reference as course
from paddle_cls import Accuracy


def _both(outputs, labels, **kwargs):
    """Score with tensors (RunnerV3's way) and with NumPy arrays (paddle.Model's way)."""
    scores = []
    for convert in (paddle.to_tensor, np.asarray):
        metric = Accuracy(**kwargs)
        metric.update(convert(np.asarray(outputs, np.float32)), convert(np.asarray(labels)))
        scores.append(metric.accumulate())
    return scores


def test_multiclass_argmax_with_labels_n_or_n_by_1():
    outputs = [[0.1, 0.7, 0.2], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]]
    assert _both(outputs, [1, 0, 0, 2]) == [0.5, 0.5]
    assert _both(outputs, [[1], [0], [2], [1]]) == [1.0, 1.0]


def test_binary_threshold_depends_on_is_logist():
    outputs = [[0.3], [-0.2], [0.7], [0.45]]
    labels = [[1], [0], [1], [0]]
    assert _both(outputs, labels, is_logist=True) == [0.75, 0.75]  # threshold 0: 0.45 counts as class 1
    assert _both(outputs, labels, is_logist=False) == [0.75, 0.75]  # threshold 0.5: 0.3 counts as class 0
    assert _both([[0.6], [0.4]], [1, 1], is_logist=False) == [0.5, 0.5]


def test_accumulates_over_batches_and_resets():
    metric = Accuracy()
    metric.update(paddle.to_tensor([[0.0, 1.0]] * 3), paddle.to_tensor([1, 1, 0]))
    metric.update(np.array([[1.0, 0.0]]), np.array([0]))
    assert metric.accumulate() == pytest.approx(3 / 4)
    assert metric.num_correct == 3 and metric.num_count == 4
    metric.reset()
    assert metric.accumulate() == 0 and metric.name() == "Accuracy"


def test_agrees_with_the_course_metric_on_random_batches():
    rng = np.random.RandomState(0)
    ours, ref = Accuracy(), course.Accuracy()
    for _ in range(5):
        logits = paddle.to_tensor(rng.randn(16, 10).astype(np.float32))
        labels = paddle.to_tensor(rng.randint(0, 10, size=(16, 1)))
        ours.update(logits, labels)
        ref.update(logits, labels)
    assert ours.accumulate() == pytest.approx(ref.accumulate())


def test_is_a_paddle_metric():
    assert isinstance(Accuracy(), paddle.metric.Metric)


def test_topk_like_paddles_accuracy_and_clipped_on_few_classes(capsys):
    rng = np.random.RandomState(1)
    logits, labels = rng.randn(32, 10).astype(np.float32), rng.randint(0, 10, size=(32, 1))
    ours, ref = Accuracy(topk=(1, 5)), paddle.metric.Accuracy(topk=(1, 5))
    ours.update(paddle.to_tensor(logits), paddle.to_tensor(labels))
    ref.update(ref.compute(paddle.to_tensor(logits), paddle.to_tensor(labels)))
    assert ours.accumulate() == pytest.approx(ref.accumulate()) and ours.name() == ["acc_top1", "acc_top5"]
    three = Accuracy(topk=(1, 5))
    three.update(np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]), np.array([0, 0]))
    assert three.accumulate() == [0.5, 1.0]
    assert "topk (1, 5) asks for more than the 3 classes; k is clipped to 3" in capsys.readouterr().out
