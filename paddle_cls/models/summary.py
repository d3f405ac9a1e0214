"""A model's layer-by-layer output and parameter shapes, as the course walks through LeNet (001)."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import paddle

from ..utils.logger import logger


def layer_shapes(model: paddle.nn.Layer, input_shape: Sequence[int]) -> List[dict]:
    """Run one zero batch of `input_shape` ([N, C, H, W]) and return a row per leaf layer, in call order:
    `(layer name, output shape, [parameter shapes])`."""
    rows, hooks = [], []
    for name, layer in model.named_sublayers():
        if not layer.sublayers():
            def record(layer, inputs, output, name=name):
                parameters = layer.parameters(include_sublayers=False)
                rows.append((name, list(output.shape), [list(p.shape) for p in parameters]))
            hooks.append(layer.register_forward_post_hook(record))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(input_shape, dtype="float32"))
    finally:
        for hook in hooks:
            hook.remove()
        if was_training:
            model.train()
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
