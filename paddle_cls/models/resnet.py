"""The course's hand-written ResNet18 (nndl `op.py`, sections 5.4 and 5.5.7), layer for layer.

The layer names and creation order match the course, so a `best_model.pdparams` trained with the course
code loads here, and the same `paddle.seed` gives the same initial weights.
"""
from __future__ import annotations

import paddle
from paddle import nn
import paddle.nn.functional as F


class ResBlock(nn.Layer):
    """Residual block: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.

    A 1x1 conv + BN shortcut is used when the channels or the stride change. With `use_residual=False`
    the sum is skipped (the course's plain-network comparison).
    """

    def __init__(self, in_channels, out_channels, stride=1, use_residual=True):
        super().__init__()
        self.stride = stride
        self.use_residual = use_residual
        # Creation order (conv1, conv2, shortcut, bn1, bn2, bn3) is the course's: it fixes the seeded init.
        self.conv1 = nn.Conv2D(in_channels, out_channels, 3, padding=1, stride=stride, bias_attr=False)
        self.conv2 = nn.Conv2D(out_channels, out_channels, 3, padding=1, bias_attr=False)
        self.use_1x1conv = in_channels != out_channels or stride != 1
        if self.use_1x1conv:
            self.shortcut = nn.Conv2D(in_channels, out_channels, 1, stride=stride, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(out_channels)
        self.bn2 = nn.BatchNorm2D(out_channels)
        if self.use_1x1conv:
            self.bn3 = nn.BatchNorm2D(out_channels)

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        y = F.relu(self.bn1(self.conv1(inputs)))
        y = self.bn2(self.conv2(y))
        if self.use_residual:
            shortcut = self.bn3(self.shortcut(inputs)) if self.use_1x1conv else inputs
            y = paddle.add(shortcut, y)
        return F.relu(y)


def _stage(in_channels, out_channels, stride, use_residual):
    return nn.Sequential(
        ResBlock(in_channels, out_channels, stride=stride, use_residual=use_residual),
        ResBlock(out_channels, out_channels, use_residual=use_residual),
    )


class Model_ResNet18(nn.Layer):
    """The course's ResNet18: 11,191,306 parameters for 10 classes.

    Args:
        in_channels: 3 for CIFAR-10, 1 for MNIST.
        num_classes: size of the final Linear layer.
        use_residual: False builds the same network without the residual sums.

    >>> model = Model_ResNet18(in_channels=3, num_classes=10)
    >>> list(model(paddle.zeros([2, 3, 32, 32])).shape)
    [2, 10]
    """

    def __init__(self, in_channels=3, num_classes=10, use_residual=True):
        super().__init__()
        stem = nn.Sequential(
            nn.Conv2D(in_channels, 64, 7, stride=2, padding=3),
            nn.BatchNorm2D(64),
            nn.ReLU(),
            nn.MaxPool2D(kernel_size=3, stride=2, padding=1),
        )
        self.net = nn.Sequential(
            stem,
            _stage(64, 64, 1, use_residual),
            _stage(64, 128, 2, use_residual),
            _stage(128, 256, 2, use_residual),
            _stage(256, 512, 2, use_residual),
            nn.AdaptiveAvgPool2D(1),
            nn.Flatten(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)
