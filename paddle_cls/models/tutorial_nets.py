"""The small networks of the source tutorials, layer for layer.

- `LeNet` of the course notes (001): sigmoid LeNet on 1x28x28 MNIST.
- `MyNet` of the Paddle 2.0 CIFAR-10 tutorial (000): three 3x3 convs on 3x32x32.
- `CNN` of the PyTorch MNIST tutorial (002) and `SimpleCNN` of the PyTorch CIFAR-10 tutorial (003), ported.
"""
from __future__ import annotations

import paddle
from paddle import nn
import paddle.nn.functional as F


class LeNet(nn.Layer):
    """The course's LeNet: conv 6@5x5 -> sigmoid -> max-pool -> sigmoid -> conv 16@5x5 -> max-pool ->
    conv 120@4x4 -> flatten -> Linear(120, 64) -> sigmoid -> Linear(64, num_classes), on 1x28x28 inputs.

    Not Paddle's `paddle.vision.models.LeNet` (ReLU, other sizes); that one is `vision_LeNet` in configs.
    """

    def __init__(self, num_classes=1):
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels=1, out_channels=6, kernel_size=5)
        self.max_pool1 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2D(in_channels=6, out_channels=16, kernel_size=5)
        self.max_pool2 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.conv3 = nn.Conv2D(in_channels=16, out_channels=120, kernel_size=4)
        self.fc1 = nn.Linear(in_features=120, out_features=64)
        self.fc2 = nn.Linear(in_features=64, out_features=num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        x = F.sigmoid(x)
        x = self.max_pool1(x)
        x = F.sigmoid(x)  # the course applies sigmoid again after the first pool
        x = self.conv2(x)
        x = self.max_pool2(x)
        x = self.conv3(x)
        x = paddle.reshape(x, [x.shape[0], -1])
        x = self.fc1(x)
        x = F.sigmoid(x)
        return self.fc2(x)


class MyNet(nn.Layer):
    """The Paddle 2.0 tutorial's MyNet: conv 32 -> ReLU -> pool -> conv 64 -> ReLU -> pool -> conv 64 -> ReLU ->
    flatten (1024) -> Linear(1024, 64) -> ReLU -> Linear(64, num_classes), on 3x32x32 inputs."""

    def __init__(self, num_classes=1):
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels=3, out_channels=32, kernel_size=(3, 3))
        self.pool1 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2D(in_channels=32, out_channels=64, kernel_size=(3, 3))
        self.pool2 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.conv3 = nn.Conv2D(in_channels=64, out_channels=64, kernel_size=(3, 3))
        self.flatten = nn.Flatten()
        self.linear1 = nn.Linear(in_features=1024, out_features=64)
        self.linear2 = nn.Linear(in_features=64, out_features=num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = F.relu(self.linear1(self.flatten(x)))
        return self.linear2(x)


class CNN(nn.Layer):
    """The PyTorch MNIST tutorial's CNN: conv 16@3x3 (padding 1) -> max-pool -> ReLU -> conv 32@3x3 ->
    max-pool -> ReLU -> Linear(32*7*7, 128) -> ReLU -> Linear(128, num_classes), on 1x28x28 inputs."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2D(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2D(16, 32, kernel_size=3, padding=1)
        self.mp = nn.MaxPool2D(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.relu(self.mp(self.conv1(x)))
        x = self.relu(self.mp(self.conv2(x)))
        x = paddle.flatten(x, start_axis=1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


class SimpleCNN(nn.Layer):
    """The PyTorch CIFAR-10 tutorial's SimpleCNN: conv 18@3x3 (padding 1) -> ReLU -> max-pool ->
    Linear(18*16*16, 64) -> ReLU -> Linear(64, num_classes), on 3x32x32 inputs."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2D(3, 18, kernel_size=3, padding=1, stride=1)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=2, padding=0)
        self.fc1 = nn.Linear(18 * 16 * 16, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = paddle.reshape(x, [-1, 18 * 16 * 16])
        x = F.relu(self.fc1(x))
        return self.fc2(x)
