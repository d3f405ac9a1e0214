"""Metrics. `METRICS` maps the names a config may use in `Metric.name`."""
import numpy as np
import paddle


class Accuracy(paddle.metric.Metric):
    """The course's accuracy metric (nndl `metric.Accuracy`), usable by RunnerV3 and by `paddle.Model`.

    Args:
        is_logist: for [N, 1] outputs, whether they are logits (threshold 0) or probabilities (threshold 0.5).
            [N, C] outputs with C > 1 are scored by argmax.
        name: the name reported by `name()`.

    `update(outputs, labels)` takes Paddle tensors (RunnerV3) or NumPy arrays (`paddle.Model` hands it
    those); labels may be [N] or [N, 1]. With tensors the correct count stays on the device until
    `accumulate()`, so evaluation does not wait on the device every batch.

    >>> metric = Accuracy()
    >>> metric.update(paddle.to_tensor([[0.1, 0.9], [0.8, 0.2]]), paddle.to_tensor([1, 1]))
    >>> metric.accumulate()
    0.5
    """

    def __init__(self, is_logist=True, name="Accuracy"):
        super().__init__()
        self.is_logist = is_logist
        self._name = name
        self.reset()

    def _predictions(self, outputs, backend):
        if outputs.shape[1] == 1:
            scores = outputs.reshape([-1]) if backend is paddle else outputs.reshape(-1)
            return scores >= (0 if self.is_logist else 0.5)
        return backend.argmax(outputs, axis=1)

    def update(self, outputs, labels):
        """Add one batch: `outputs` [N, C] (or [N, 1] for two classes) and `labels` [N] or [N, 1]."""
        if isinstance(outputs, paddle.Tensor):
            labels = paddle.to_tensor(labels) if not isinstance(labels, paddle.Tensor) else labels
            labels = labels.reshape([-1])
            preds = self._predictions(outputs, paddle).astype(labels.dtype)
            self._correct_on_device = self._correct_on_device + (preds == labels).astype("int64").sum()
        else:
            outputs, labels = np.asarray(outputs), np.asarray(labels).reshape(-1)
            preds = self._predictions(outputs, np).astype(labels.dtype)
            self._correct_on_host += int((preds == labels).sum())
        self.num_count += int(labels.shape[0])

    @property
    def num_correct(self):
        """Correct predictions so far (reads the device-side count)."""
        on_device = self._correct_on_device
        return self._correct_on_host + (on_device.item() if isinstance(on_device, paddle.Tensor) else on_device)

    def accumulate(self):
        """Accuracy over everything since the last `reset()`; 0 when nothing was seen."""
        if self.num_count == 0:
            return 0
        return self.num_correct / self.num_count

    def reset(self):
        self._correct_on_device = 0
        self._correct_on_host = 0
        self.num_count = 0

    def name(self):
        return self._name


METRICS = {"Accuracy": Accuracy}
