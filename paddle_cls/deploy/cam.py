"""Grad-CAM: where a trained model looks (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017), computed as pytorch-grad-cam's `GradCAM` does.

For the class scored (the model's top-1 unless given), the gradients of its logit with respect to a layer's
activations A [K, h, w] are averaged over space into one weight per channel; the map is ReLU(sum_k weight_k A_k),
scaled to [0, 1] (minus its minimum, over its maximum) and upsampled bilinearly to the model's input size.

It needs the model in Python (the dygraph weights): an export has no gradients to follow.
"""
from __future__ import annotations

import threading
from typing import List, Optional, Sequence, Set, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
from PIL import Image

from ..data.preprocessing import build_preprocess, preprocessing_steps
from ..errors import ConfigError
from ..models.summary import probe
from .overlay import picture_overlay
from .trained import load_trained_model

# Pooling to a fixed size copies or averages a map rather than computing one (VGG's 7x7 one upsamples a 1x1 map)
_ADAPTIVE_POOLS = (paddle.nn.AdaptiveAvgPool2D, paddle.nn.AdaptiveMaxPool2D)


def feature_maps(model: paddle.nn.Layer, input_shape: Sequence[int]) -> List[Tuple[str, int, List[int]]]:
    """Every sublayer call that outputs a 4-D tensor [N, K, h, w] on one zero input of `input_shape` [C, H, W]:
    `(sublayer name, its call number, output shape)`, in the order the outputs are made (a block after the
    layers inside it). A layer called several times (a shared ReLU) appears once per call."""
    found, hooks, calls = [], [], {}
    for name, layer in model.named_sublayers():
        def record(layer, inputs, output, name=name):
            call = calls[name] = calls.get(name, -1) + 1
            if isinstance(output, paddle.Tensor) and output.ndim == 4:
                found.append((name, call, list(output.shape), isinstance(layer, _ADAPTIVE_POOLS)))

        hooks.append((layer, record))
    probe(model, [1, *input_shape], hooks)
    return [(name, call, shape) for name, call, shape, adaptive in found if not adaptive]


def stage_names(model: paddle.nn.Layer) -> Set[str]:
    """The model's top-level sublayers and the members of its top-level `Sequential` / `LayerList` containers:
    the whole blocks a default Grad-CAM layer is chosen among (not a branch or a conv inside one)."""
    names = set()
    for name, child in model.named_children():
        names.add(name)
        if isinstance(child, (paddle.nn.Sequential, paddle.nn.LayerList)):
            names.update(f"{name}.{inner}" for inner, _ in child.named_children())
    return names


def default_layer(maps: Sequence[Tuple[str, int, List[int]]],
                  stages: Optional[Set[str]] = None) -> Tuple[str, int]:
    """The last convolutional block: the last whole block (one of `stages`, see `stage_names`; any sublayer when
    none qualifies) whose output is a feature map larger than 1x1 (global pooling, the flattening and the
    classifier come after it), as `(name, call number)`.

    Raises:
        ConfigError: the model makes no such map at this input size.
    """
    spatial = [(name, call) for name, call, shape in maps if shape[2] * shape[3] > 1]
    if not spatial:
        raise ConfigError("the model makes no feature map larger than 1x1 at this input size: Grad-CAM has "
                          "nothing to locate with")
    blocks = [item for item in spatial if stages is None or item[0] in stages]
    return (blocks or spatial)[-1]


class GradCAM:
    """Grad-CAM of `model` (a dygraph `paddle.nn.Layer`) for inputs of `input_shape` [C, H, W].

    Args:
        layer: the sublayer's name (as `model.named_sublayers()` gives it, e.g. `layer4` of paddle.vision's
            ResNets, `net.4` of the course's Model_ResNet18); default the last convolutional block (see
            `default_layer`). A layer called several times is taken at its last call that makes a 4-D map.

    `cam(images)` maps float32 [N, C, H, W] to `(maps [N, H, W] in [0, 1], logits [N, classes])`.

    Raises:
        ConfigError: `layer` is not a sublayer making a 4-D feature map; the message lists those that do.
    """

    def __init__(self, model: paddle.nn.Layer, input_shape: Sequence[int], layer: Optional[str] = None):
        self.model, self.input_shape = model, list(input_shape)
        maps = feature_maps(model, input_shape)
        if layer is None:
            self.layer, self.call = default_layer(maps, stage_names(model))
        else:
            calls = [call for name, call, _ in maps if name == layer]
            if not calls:
                valid = list(dict.fromkeys(name for name, _, _ in maps))
                raise ConfigError(f"--cam-layer {layer}: {type(model).__name__} has no such layer making a 4-D "
                                  f"feature map; valid: {', '.join(valid)}")
            self.layer, self.call = layer, calls[-1]
        self.sublayer = dict(model.named_sublayers())[self.layer]
        self.map_shape = next(shape for name, call, shape in maps if (name, call) == (self.layer, self.call))

    def __call__(self, images: np.ndarray,
                 classes: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, np.ndarray]:
        captured, calls = [], [0]

        def keep(layer, inputs, output):
            if calls[0] == self.call:
                captured.append(output)
            calls[0] += 1

        hook = self.sublayer.register_forward_post_hook(keep)
        was_training = self.model.training
        self.model.eval()
        try:
            with paddle.set_grad_enabled(True):  # also under a caller's paddle.no_grad()
                # the input takes part in the graph: the activations have gradients even with frozen weights
                inputs = paddle.to_tensor(np.asarray(images, dtype=np.float32), stop_gradient=False)
                logits = self.model(inputs)
                scores = logits.numpy()
                targets = np.argmax(scores, axis=1) if classes is None else np.asarray(classes)
                chosen = paddle.to_tensor(np.eye(scores.shape[1], dtype=np.float32)[targets])
                gradients, = paddle.grad([(logits * chosen).sum()], [captured[0]])
        finally:
            hook.remove()
            if was_training:
                self.model.train()
        activations = captured[0].detach()
        weights = gradients.mean(axis=[2, 3], keepdim=True)
        cam = F.relu((weights * activations).sum(axis=1, keepdim=True))
        low = cam.min(axis=[2, 3], keepdim=True)
        cam = cam - low
        cam = cam / (cam.max(axis=[2, 3], keepdim=True) + 1e-7)
        cam = F.interpolate(cam, size=self.input_shape[1:], mode="bilinear", align_corners=False)
        return cam[:, 0].numpy().clip(0, 1), scores


class ImageExplainer:
    """Grad-CAM overlays of pictures for a config's trained model (`trained.load_trained_model`, loaded at the
    first call; calls from several threads run one at a time): `explainer(image)` takes a PIL image as the user
    sees it and returns `(overlay uint8 [H, W, 3], class index)`, the map of the model's top-1 class drawn over
    the part of the picture the model's input shows (`overlay.input_box`), the picture shrunk to at most
    `MAX_OVERLAY_SIDE` pixels on its long side."""

    def __init__(self, config: dict, layer: Optional[str] = None):
        self.config, self.layer = config, layer
        self.steps = preprocessing_steps(config)
        self.preprocess = build_preprocess(self.steps)
        self.cam: Optional[GradCAM] = None
        self.lock = threading.Lock()

    def __call__(self, image: Image.Image) -> Tuple[np.ndarray, int]:
        shape = self.config["Global"]["image_shape"]
        sample = self.preprocess(image.convert("L" if shape[0] == 1 else "RGB"))
        with self.lock:
            if self.cam is None:
                self.cam = GradCAM(load_trained_model(self.config), shape, self.layer)
            heat, logits = self.cam(sample[None])
        return picture_overlay(image, heat[0], self.steps), int(np.argmax(logits[0]))
