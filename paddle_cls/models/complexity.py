"""A model's size and cost: parameters, and FLOPs as `paddle.flops` counts them (multiply-adds of the
convolutions and Linear layers, plus batch norm and pooling), for one input."""
from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle

from .summary import probe
from .vision_zoo import INPUTS, input_problem


def count_parameters(model: paddle.nn.Layer) -> int:
    """The number of parameters, trainable or not: batch norm's running mean and variance are Paddle parameters
    too, counted as `paddle.summary` and `paddle.flops` count them (resnet18: 11,699,112 of which 9,600)."""
    return sum(int(np.prod(parameter.shape)) for parameter in model.parameters())


def _flops_rules() -> Dict[type, Callable]:
    """`paddle.flops`'s counting function per layer type (`paddle.hapi.dynamic_flops.register_hooks`).

    Internal to Paddle, used here only: `paddle.flops` itself ends by converting shape-[1] tensors with `int()`,
    which NumPy 2.4 refuses (TypeError on Paddle 2.6.2 and 3.3.1 alike), after leaving buffers on the model."""
    from paddle.hapi.dynamic_flops import register_hooks

    return register_hooks


def count_flops(model: paddle.nn.Layer, input_shape: Sequence[int]) -> int:
    """FLOPs of one [C, H, W] input of `input_shape`, by `paddle.flops`'s rules: the sum over the leaf layers
    of the kinds it knows (a layer of another kind, and operations called as functions, count zero).

    Runs the model once in eval mode on zeros; the model is left as it was."""
    rules, hooks, counted = _flops_rules(), [], []
    for layer in model.sublayers():
        rule = rules.get(type(layer))
        if rule is None or layer.sublayers():
            continue

        def count(layer, inputs, output, rule=rule):
            layer.total_ops = 0  # the attribute paddle.flops's rules add to
            rule(layer, inputs, output)
            counted.append(int(layer.total_ops))
            del layer.total_ops

        hooks.append((layer, count))
    probe(model, [1, *input_shape], hooks)
    return sum(counted)


def model_table(input_shape: Sequence[int], num_classes: Optional[int] = None) -> List[dict]:
    """A row per model of `MODELS`, in its order: `{"name", "family", "parameters", "flops", "problem"}` at one
    [C, H, W] input of `input_shape`, with `num_classes` (default each constructor's own: Paddle's 1000 ImageNet
    classes, the tutorials' 10 or 1). A model that cannot take that input has `flops` None and `problem` saying
    why (see `vision_zoo.input_problem`); it is not run, as Paddle's kernels may crash on too small an input."""
    from . import MODELS  # the package's table, built after this module is importable

    rows = []
    for name, build in MODELS.items():
        arguments = {} if num_classes is None else {"num_classes": num_classes}
        if "in_channels" in inspect.signature(build).parameters:
            arguments["in_channels"] = input_shape[0]
        # the weights' values change no count: built lazily and set to zeros, skipping Paddle's random
        # initialisation, which took 37 of the 40 s the whole list took
        with paddle.LazyGuard():
            model = build(**arguments)
        for parameter in model.parameters():
            parameter.set_value(paddle.zeros(parameter.shape, parameter.dtype))
        problem = input_problem(name, input_shape)
        rows.append({"name": name, "family": INPUTS[name].family if name in INPUTS else "", "problem": problem,
                     "parameters": count_parameters(model),
                     "flops": None if problem else count_flops(model, input_shape)})
        del model
    return rows
