"""The PyTorch counterparts of the benchmarked models, for the CPU training table's reference column.

PyTorch is not a dependency: `torch_trainer` returns None when `import torch` fails, and the table says so.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np


def _mynet(torch, num_classes):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2, 2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 64),
                         nn.ReLU(), nn.Linear(64, num_classes))


def _resnet18(torch, num_classes, stem_bias=False):
    import torchvision

    model = torchvision.models.resnet18(num_classes=num_classes)
    if stem_bias:  # the course's Model_ResNet18: the same network with a bias on the 7x7 stem conv
        model.conv1 = torch.nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=True)
    return model


BUILDERS = {"MyNet": _mynet, "resnet18": _resnet18,
            "Model_ResNet18": lambda torch, classes: _resnet18(torch, classes, stem_bias=True)}


def torch_trainer(name: str, images: np.ndarray, labels: np.ndarray, threads: int) -> Optional[Callable[[], float]]:
    """A function that runs one Adam training step of PyTorch's `name` (fp32, `threads` CPU threads) on
    `images` (float32 [N, C, H, W]) and `labels` (int64 [N]) and returns the loss; None when PyTorch (and
    torchvision, for the ResNets) cannot be imported."""
    try:
        import torch

        torch.manual_seed(0)
        model = BUILDERS[name](torch, 10)
    except ImportError:
        return None
    torch.set_num_threads(threads)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets = torch.from_numpy(images), torch.from_numpy(labels)

    def step():
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    return step
