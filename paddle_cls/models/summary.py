"""A model's layer-by-layer output and parameter shapes, as the course walks through LeNet (001)."""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import numpy as np
import paddle

from ..utils.logger import logger


def probe(model: paddle.nn.Layer, input_shape: Sequence[int],
          hooks: Sequence[Tuple[paddle.nn.Layer, Callable]]) -> None:
    """Run `model` once on a zero batch of `input_shape` ([N, C, H, W]), in eval mode and without gradients, with
    each `(layer, hook)` of `hooks` registered as a forward post-hook meanwhile; the hooks are removed and the
    model's train/eval mode restored after, also when the run fails."""
    handles = [layer.register_forward_post_hook(hook) for layer, hook in hooks]
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(list(input_shape), dtype="float32"))
    finally:
        for handle in handles:
            handle.remove()
        if was_training:
            model.train()


def layer_shapes(model: paddle.nn.Layer, input_shape: Sequence[int]) -> List[dict]:
    """Run one zero batch of `input_shape` ([N, C, H, W]) and return a row per leaf layer, in call order:
    `(layer name, output shape, [parameter shapes])`."""
    rows, hooks = [], []
    for name, layer in model.named_sublayers():
        if not layer.sublayers():
            def record(layer, inputs, output, name=name):
                parameters = layer.parameters(include_sublayers=False)
                rows.append((name, list(output.shape), [list(p.shape) for p in parameters]))
            hooks.append((layer, record))
    probe(model, input_shape, hooks)
    return rows


def print_summary(model: paddle.nn.Layer, input_shape: Sequence[int]) -> List[dict]:
    """Log each leaf layer's output shape and parameter shapes, then the parameter count; returns the rows."""
    rows = layer_shapes(model, input_shape)
    logger.info(f"{'layer':<28}{'output shape':<22}parameter shapes")
    for name, shape, params in rows:
        logger.info(f"{name:<28}{str(shape):<22}{', '.join(map(str, params))}")
    total = sum(int(np.prod(p.shape)) for p in model.parameters())
    logger.info(f"total parameters: {total:,}")
    return rows
