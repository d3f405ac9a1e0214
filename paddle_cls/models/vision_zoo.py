"""Every model of `paddle.vision.models` by the name of its constructor, with its family and the inputs it takes.

`VISION_MODELS` maps `Arch.name` to the constructor (each takes `num_classes`; the ResNets, MobileNets, ShuffleNets,
SqueezeNets, DenseNets, GoogLeNet and InceptionV3 also `with_pool`, the MobileNets `scale`, the VGGs `batch_norm`).
`INPUTS` says, for these and the tutorials' networks, which images a model takes: a model fed a smaller one does not
always raise, Paddle's kernels may crash the process (InceptionV3 at 16 px does), so `input_problem` is asked first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import paddle
from paddle.vision import models as zoo


@dataclass(frozen=True)
class InputRange:
    """The images a model takes: `channels` (None: any, the model's `in_channels`), square sides from `min_size`
    to `max_size` (None: no limit) pixels."""

    family: str
    channels: Optional[int] = 3
    min_size: int = 1
    max_size: Optional[int] = None


class GoogLeNet(zoo.GoogLeNet):
    """paddle.vision's GoogLeNet (Inception v1) returning its main classifier's logits only.

    Paddle's returns `(out, aux1, aux2)`; the two auxiliary classifiers serve the paper's weighted training loss
    only, and their fixed-size heads would tie the input to 224 px. They are left out: the main path is Paddle's,
    layer for layer, taking any input of 45 px and more.
    """

    AUXILIARY = ("_pool_o1", "_pool_o2", "_conv_o1", "_fc_o1", "_drop_o1", "_out1", "_conv_o2", "_fc_o2",
                 "_drop_o2", "_out2")

    def __init__(self, num_classes: int = 1000, with_pool: bool = True):
        super().__init__(num_classes, with_pool)
        for name in self.AUXILIARY:
            if hasattr(self, name):
                delattr(self, name)

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        x = self._pool(self._conv_2(self._conv_1(self._pool(self._conv(inputs)))))
        x = self._pool(self._ince3b(self._ince3a(x)))
        x = self._ince4e(self._ince4d(self._ince4c(self._ince4b(self._ince4a(x)))))
        x = self._ince5b(self._ince5a(self._pool(x)))
        if self.with_pool:
            x = self._pool_5(x)
        if self.num_classes > 0:
            x = self._fc_out(paddle.squeeze(self._drop(x), axis=[2, 3]))
        return x


def googlenet(num_classes: int = 1000, with_pool: bool = True) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2015) as paddle.vision builds it, without the auxiliary classifiers."""
    return GoogLeNet(num_classes, with_pool)


def _family(family, names, **inputs):
    return {name: InputRange(family, **inputs) for name in names}


# Sizes: the square sides each model runs at without an empty feature map (measured on Paddle 3.3.1 and 2.6.2,
# every side up to 110 px beyond the smallest); AlexNet's classifier takes a 6x6 map only.
INPUTS = {
    "alexnet": InputRange("AlexNet", min_size=223, max_size=254),
    **_family("DenseNet", ["densenet121", "densenet161", "densenet169", "densenet201", "densenet264"]),
    "googlenet": InputRange("GoogLeNet", min_size=45),
    "inception_v3": InputRange("InceptionV3", min_size=59),
    "vision_LeNet": InputRange("LeNet", channels=1, min_size=28, max_size=28),
    **_family("MobileNetV1", ["mobilenet_v1"]),
    **_family("MobileNetV2", ["mobilenet_v2"]),
    **_family("MobileNetV3", ["mobilenet_v3_small", "mobilenet_v3_large"]),
    **_family("ResNet", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]),
    **_family("ResNeXt", ["resnext50_32x4d", "resnext50_64x4d", "resnext101_32x4d", "resnext101_64x4d",
                          "resnext152_32x4d", "resnext152_64x4d"]),
    **_family("Wide ResNet", ["wide_resnet50_2", "wide_resnet101_2"]),
    **_family("ShuffleNetV2", ["shufflenet_v2_x0_25", "shufflenet_v2_x0_33", "shufflenet_v2_x0_5",
                               "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
                               "shufflenet_v2_swish"]),
    **_family("SqueezeNet", ["squeezenet1_0", "squeezenet1_1"], min_size=21),
    **_family("VGG", ["vgg11", "vgg13", "vgg16", "vgg19"]),
    # the tutorials' networks (models/tutorial_nets.py, models/resnet.py): their first Linear fixes the size
    "Model_ResNet18": InputRange("course ResNet18", channels=None),
    "LeNet": InputRange("course LeNet", channels=1, min_size=28, max_size=28),
    "MyNet": InputRange("Paddle tutorial MyNet", min_size=32, max_size=32),
    "CNN": InputRange("PyTorch tutorial CNN", channels=1, min_size=28, max_size=28),
    "SimpleCNN": InputRange("PyTorch tutorial SimpleCNN", min_size=32, max_size=32),
}

TUTORIAL_NETS = ("Model_ResNet18", "LeNet", "MyNet", "CNN", "SimpleCNN")  # models/__init__.py adds these
_OURS = {"googlenet": googlenet, "vision_LeNet": zoo.LeNet}  # Paddle's LeNet (ReLU), not the course's LeNet
# what the installed Paddle has (2.6.2 and 3.3.1 have them all)
VISION_MODELS = {name: _OURS.get(name) or getattr(zoo, name) for name in INPUTS
                 if name not in TUTORIAL_NETS and (name in _OURS or hasattr(zoo, name))}


def input_problem(name: str, shape: Sequence[int], channels: Optional[int] = None) -> Optional[str]:
    """Why model `name` cannot take one [C, H, W] input of `shape`, or None when it can (or is not listed).

    `channels`: the input channels the built model takes, where they are settable (`Arch.in_channels`)."""
    limits = INPUTS.get(name)
    if limits is None:
        return None
    wanted = limits.channels or channels
    if wanted is not None and shape[0] != wanted:
        return f"takes {wanted} channel(s), not {shape[0]}"
    low, high = limits.min_size, limits.max_size
    if min(shape[1:]) < low or (high is not None and max(shape[1:]) > high):
        sizes = f"{low}x{low} px" if low == high else f"{low}x{low} to {high}x{high} px" if high \
            else f"{low}x{low} px and up"
        return f"takes images of {sizes}, not {shape[1]}x{shape[2]}"
    return None
