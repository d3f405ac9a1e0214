"""Losses. `LOSSES` maps the names a config may use in `Loss.name`."""
from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from .errors import ConfigError


class CrossEntropyLoss(nn.Layer):
    """`paddle.nn.CrossEntropyLoss`, with `label_smoothing` on every Paddle version (2.6 lacks the argument).

    With `label_smoothing: e` the target of a sample of class k is `(1 - e) * one_hot(k) + e / classes`, as
    Paddle 3's own argument and PaddleClas's `CELoss` make it. Other arguments are Paddle's.
    """

    def __init__(self, label_smoothing=0.0, **kwargs):
        super().__init__()
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0 <= label_smoothing < 1:
            raise ConfigError(f"Loss.label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
        self.epsilon = float(label_smoothing)
        self.loss = nn.CrossEntropyLoss(soft_label=bool(self.epsilon), **kwargs)

    def forward(self, logits: paddle.Tensor, label: paddle.Tensor) -> paddle.Tensor:
        if self.epsilon:
            classes = logits.shape[-1]
            label = F.label_smooth(F.one_hot(label.reshape([-1]), classes).astype(logits.dtype), epsilon=self.epsilon)
        return self.loss(logits, label)


LOSSES = {"CrossEntropyLoss": CrossEntropyLoss}

__all__ = ["CrossEntropyLoss", "LOSSES"]
