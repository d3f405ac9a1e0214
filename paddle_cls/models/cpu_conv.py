"""A faster CPU training path for convolutions on small feature maps: im2col over the whole batch, then GEMMs.

Paddle's CPU conv2d kernel (not oneDNN, which its dygraph mode does not use) runs im2col and one GEMM per sample,
forward and backward (phi/kernels/impl/conv_kernel_impl.h, conv_grad_kernel_impl.h). Where the output map is
small (ResNet18 on 32x32 images: 8x8 down to 1x1), each sample's GEMM has a handful of columns and re-reads the
whole weight matrix, so the kernel runs far below the machine's speed. `batched_conv2d` computes the same
convolution as one `F.unfold` over the batch and then, for maps of up to 64 positions, one `paddle.matmul` over
all samples' columns ([N*L, C*kh*kw] x weight^T: the weight is read once), or for larger maps one batched-GEMM
`paddle.matmul` whose output is NCHW already (no transposing copies). It leaves out the kernel taps that only
ever read zero padding (a 3x3 conv on a 1x1 map is its centre tap). Its backward is Paddle's autograd of those
ops, so it works in dygraph, under `paddle.jit.to_static` and inside `paddle.DataParallel`, on Paddle 2.6 and
3.x. The sums are the same products added in another order: results equal Paddle's conv2d within float32
rounding.

`use_cpu_conv(model)` switches a built model's `nn.Conv2D` layers to it; parameters, their names and the
state-dict keys stay as they were, and each call still takes Paddle's own conv2d where that is faster
(`batched_wins`), adding a bias there over a 3-D view (Paddle's 4-D broadcast add is far slower on the CPU).
`apply_cpu_conv` is the switch `Global.cpu_conv` turns.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from ..utils.runtime import keep_freed_memory

# The batched path is taken when a sample's output map has at most this many positions (Ho * Wo = L). Measured
# on a 2-core AVX-512 Xeon, forward + backward at batch 64, ms, Paddle's conv2d -> ours: ResNet18 at 32x32,
# 3x3 64ch 8x8 (L=64) 18.9 -> 12.6, 3x3 128ch 4x4 (L=16) 14.5 -> 8.6, 3x3 256ch 2x2 (L=4) 25.7 -> 7.8,
# 3x3 512ch 1x1 44.6 -> 3.6 (centre tap only); MyNet's 3x3 at 13x13 (L=169, batch 32) 10.4 -> 8.1. At L=256 Paddle's
# per-sample GEMMs are wide enough and it wins: the 7x7/2 stem at 32 -> 16 14.2 -> 17.1, a 3x3 64ch 16x16
# 50 -> 86 (the batch's columns, 38 MB, no longer fit the caches).
MAX_BATCHED_POSITIONS = 196
# ... and when a sample's columns (C*kh*kw x L floats) stay within this, so that the batch's columns (kept for
# the backward) stay small: 64 MB at batch 64. ResNet18 at 32x32 needs at most 36,864.
MAX_COLUMNS_PER_SAMPLE = 2 ** 18
# Depthwise and other many-group convs give each group a GEMM with a handful of rows; Paddle's depthwise
# kernel is faster there.
MAX_BATCHED_GROUPS = 2
# Up to this many output positions per sample, all samples' columns go into one GEMM ([N*L, C*kh*kw] x weight^T:
# its gradients are two more single GEMMs, the weight read once); above it one batched-GEMM op, a GEMM per sample
# writing NCHW directly, saves transposing the columns (measured: 12.6 against 14.1 ms at L=64, 8.1 against
# 8.5 at L=169).
ONE_GEMM_POSITIONS = 64

Padding = Union[int, str, Sequence[int]]


def _pair(value: Union[int, Sequence[int]]) -> List[int]:
    return [value, value] if isinstance(value, int) else [int(v) for v in value]


def _explicit_padding(padding: Padding, size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                      dilation: Sequence[int]) -> Tuple[List[int], List[int]]:
    """Padding as [top, bottom, left, right] and the dilation Paddle's conv2d uses with it ('same' sets it to 1,
    phi's UpdatePaddingAndDilation)."""
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return [0, 0, 0, 0], list(dilation)
        if padding.upper() != "SAME":
            raise ValueError(f"padding {padding!r}: use 'same', 'valid', an int or a list of 2 or 4 ints")
        pads = []
        for axis in range(2):
            out = (size[axis] + stride[axis] - 1) // stride[axis]
            total = max((out - 1) * stride[axis] + kernel[axis] - size[axis], 0)
            pads += [total // 2, total - total // 2]
        return pads, [1, 1]
    if isinstance(padding, int):
        return [padding] * 4, list(dilation)
    values = [int(v) for v in padding]
    if len(values) == 2:
        return [values[0], values[0], values[1], values[1]], list(dilation)
    if len(values) == 4:
        return values, list(dilation)
    raise ValueError(f"padding {padding!r}: use 'same', 'valid', an int or a list of 2 or 4 ints")


def _live_taps(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int):
    """Along one axis: the output length, the first and last kernel taps that read the input (not only zero
    padding) and the input rows those taps span, from `first_row` (< 0 inside the padding) to `last_row`."""
    out = (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1
    reach = (out - 1) * stride
    live = [tap for tap in range(kernel) if tap * dilation - pad_before + reach >= 0
            and tap * dilation - pad_before < size]
    if not live:  # every tap reads padding only: keep them all (the sums are zero, as Paddle's)
        live = [0, kernel - 1]
    first, last = live[0], live[-1]
    return out, first, last, first * dilation - pad_before, last * dilation - pad_before + reach


@paddle.jit.not_to_static  # its branches are on static sizes: plain Python builds the ops
def batched_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor] = None,
                   stride: Union[int, Sequence[int]] = 1, padding: Padding = 0, dilation: Union[int, Sequence[int]] = 1,
                   groups: int = 1) -> paddle.Tensor:
    """`F.conv2d(x, weight, bias, stride, padding, dilation, groups)` for NCHW inputs, as im2col over the whole
    batch and one GEMM per group (see the module's docstring).

    Args:
        x: float [N, C, H, W]; C, H and W known (the batch may be -1 under to_static).
        weight: [O, C / groups, kh, kw]. bias: [O] or None.
        stride, dilation: an int or [h, w]. padding: an int, [h, w], [top, bottom, left, right], 'same' or 'valid'
            (as F.conv2d).
        groups: O and C divisible by it.

    Returns:
        [N, O, Ho, Wo], Paddle's output sizes.
    """
    _, channels, height, width = x.shape
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    stride, dilation = _pair(stride), _pair(dilation)
    pads, dilation = _explicit_padding(padding, [height, width], [kernel_h, kernel_w], stride, dilation)
    out_h, top, bottom, row0, row1 = _live_taps(height, kernel_h, stride[0], pads[0], pads[1], dilation[0])
    out_w, left, right, col0, col1 = _live_taps(width, kernel_w, stride[1], pads[2], pads[3], dilation[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"conv2d: a {kernel_h}x{kernel_w} kernel with dilation {dilation} and padding {pads} does "
                         f"not fit a {height}x{width} input")
    taps = [bottom - top + 1, right - left + 1]
    if taps != [kernel_h, kernel_w]:
        weight = _kept_taps(weight, [row * kernel_w + col for row in range(top, bottom + 1)
                                     for col in range(left, right + 1)])
    paddings = [max(-row0, 0), max(-col0, 0), max(row1 - height + 1, 0), max(col1 - width + 1, 0)]
    if row0 > 0 or height - 1 - row1 >= stride[0] or col0 > 0 or width - 1 - col1 >= stride[1]:
        x = x[:, :, max(row0, 0):min(row1 + 1, height), max(col0, 0):min(col1 + 1, width)]  # rows no tap reads
    cols = F.unfold(x, taps, strides=stride, dilations=dilation, paddings=paddings)  # [N, C * taps, L]
    positions, depth = out_h * out_w, group_channels * taps[0] * taps[1]
    kernel = weight.reshape([groups, out_channels // groups, depth])
    if positions > ONE_GEMM_POSITIONS:
        # [O, depth] x [N, depth, L] (per group): one batched-GEMM op whose output is already NCHW
        if groups == 1:
            out = paddle.matmul(kernel.reshape([out_channels, depth]), cols)
        else:  # same ranks: Paddle's matmul grad fails on a 3-D x 4-D broadcast
            out = paddle.matmul(kernel.unsqueeze(0), cols.reshape([-1, groups, depth, positions]))
        out = out.reshape([-1, out_channels, positions])
        if bias is not None:
            out = out + bias.reshape([out_channels, 1])
        return out.reshape([-1, out_channels, out_h, out_w])
    if groups == 1:  # one 2-D GEMM over the whole batch, [N * L, depth] x [depth, O] (a 3-D one is 2x slower)
        rows = cols.reshape([-1, depth]) if positions == 1 else cols.transpose([0, 2, 1]).reshape([-1, depth])
        out = paddle.matmul(rows, kernel.reshape([out_channels, depth]), transpose_y=True)
        if bias is not None:
            out = out + bias
        if positions == 1:
            return out.reshape([-1, out_channels, 1, 1])
        return out.reshape([-1, out_h, out_w, out_channels]).transpose([0, 3, 1, 2])
    # groups: one GEMM per group over the whole batch, [G, N * L, depth] x [G, depth, O/G]
    if positions == 1:
        rows = cols.reshape([-1, groups, depth]).transpose([1, 0, 2])
    else:
        rows = cols.reshape([-1, groups, depth, positions]).transpose([1, 0, 3, 2]).reshape([groups, -1, depth])
    out = paddle.matmul(rows, kernel, transpose_y=True)  # [G, N * L, O / G]
    out = out.reshape([groups, -1, positions, out_channels // groups]).transpose([1, 0, 3, 2])
    out = out.reshape([-1, out_channels, out_h, out_w])
    return out if bias is None else out + bias.reshape([1, out_channels, 1, 1])


def _kept_taps(weight: paddle.Tensor, kept: List[int]) -> paddle.Tensor:
    """weight [O, C, kh, kw] -> [O, C, len(kept)]: the kernel taps `kept` (indices into kh*kw, in order), as one
    GEMM with a one-hot matrix. Measured at 512x512x3x3, forward + backward: 5.3 ms, where gather takes 11.0,
    index_select 16.7 and slicing 14.0 (their gradients scatter into zeros one element at a time; this one is a
    GEMM that writes the whole gradient)."""
    out_channels, channels, kernel_h, kernel_w = weight.shape
    pick = np.zeros([kernel_h * kernel_w, len(kept)], dtype="float32")
    pick[kept, np.arange(len(kept))] = 1.0
    selected = paddle.matmul(weight.reshape([out_channels * channels, kernel_h * kernel_w]),
                             paddle.to_tensor(pick, dtype=weight.dtype))
    return selected.reshape([out_channels, channels, len(kept)])


def _settings(layer: nn.Conv2D) -> tuple:
    """An nn.Conv2D's stride, padding (or 'SAME' / 'VALID'), dilation, groups, padding mode and data format.
    Paddle keeps them only in private attributes (the
    same names in 2.6 and 3.x, paddle/nn/layer/conv.py); this is the one place that reads them."""
    padding = layer._padding_algorithm if layer._padding_algorithm in ("SAME", "VALID") else layer._updated_padding
    return layer._stride, padding, layer._dilation, layer._groups, layer._padding_mode, layer._data_format


@paddle.jit.not_to_static  # plain Python on the static sizes: to_static must not rewrite its branches
def batched_wins(layer: nn.Conv2D, x: paddle.Tensor) -> bool:
    """Whether `batched_conv2d` beats Paddle's CPU conv2d for `layer` on input `x` ([N, C, H, W]): up to
    MAX_BATCHED_POSITIONS output positions and MAX_COLUMNS_PER_SAMPLE columns per sample, at most
    MAX_BATCHED_GROUPS groups, and not a 1x1 kernel on more than ONE_GEMM_POSITIONS positions (measured: Paddle's
    is as fast there). False when C, H or W is unknown (-1 under to_static) or the kernel does not fit, so that
    Paddle's conv2d handles those."""
    stride, padding, dilation, groups, _, _ = _settings(layer)
    _, channels, height, width = x.shape  # static sizes: this function is not rewritten by to_static
    kernel = layer.weight.shape[2:]
    if min(channels, height, width) <= 0 or groups > MAX_BATCHED_GROUPS:
        return False
    pads, dilation = _explicit_padding(padding, [height, width], kernel, stride, dilation)
    out_h = (height + pads[0] + pads[1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (width + pads[2] + pads[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    positions = out_h * out_w
    if out_h <= 0 or out_w <= 0 or positions > MAX_BATCHED_POSITIONS:
        return False
    if channels * kernel[0] * kernel[1] * positions > MAX_COLUMNS_PER_SAMPLE:
        return False
    return list(kernel) != [1, 1] or positions <= ONE_GEMM_POSITIONS


class BatchedConv2D(nn.Conv2D):
    """An nn.Conv2D (same parameters, names and state-dict keys) that computes with `batched_conv2d` where
    `batched_wins` says so, and with Paddle's conv2d elsewhere. Made by `use_cpu_conv`, not directly."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        stride, padding, dilation, groups, padding_mode, data_format = _settings(self)
        # what use_cpu_conv switches: zero padding, NCHW, and not a tensor sharded across devices (RingConv2d's)
        plain = padding_mode == "zeros" and data_format == "NCHW" and not (
            callable(getattr(x, "is_dist", None)) and x.is_dist())
        if plain and batched_wins(self, x):
            return batched_conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)
        if not plain or self.bias is None or min(x.shape[1:]) <= 0:
            return super().forward(x)
        # Paddle adds a conv's bias as a 4-D broadcast, whose forward and gradient took 25 ms at [64, 64, 16, 16]
        # (the course ResNet18's stem); the same sum over a 3-D view takes 0.3 ms.
        out = F.conv2d(x, self.weight, None, stride, padding, dilation, groups)
        _, channels, height, width = out.shape
        out = out.reshape([-1, channels, height * width]) + self.bias.reshape([channels, 1])
        return out.reshape([-1, channels, height, width])


def use_cpu_conv(model: paddle.nn.Layer, enable: bool = True) -> int:
    """Switch every plain `nn.Conv2D` in `model` (zero padding, NCHW) to `BatchedConv2D`, in place; with
    `enable=False` switch them back. Parameters, their names, state-dict keys, hooks and `isinstance(layer,
    nn.Conv2D)` are unchanged, so saving, loading and optimizer state are unaffected.

    Call it on a CPU, after building (and loading) the model and before `paddle.jit.to_static`,
    `paddle.DataParallel` or AMP decoration. Export a model switched back (`enable=False`) or freshly built, so
    that the inference program holds conv2d ops.

    Returns:
        How many layers are switched now (enable) or were switched back.
    """
    target, source = (BatchedConv2D, nn.Conv2D) if enable else (nn.Conv2D, BatchedConv2D)
    count = 0
    for layer in model.sublayers(include_self=True):
        if type(layer) is source and (not enable or _settings(layer)[4:] == ("zeros", "NCHW")):
            layer.__class__ = target  # same object, same attributes: only forward changes
            count += 1
    return count


def apply_cpu_conv(model: paddle.nn.Layer, setting: Union[str, bool], device: str) -> int:
    """The CPU training path as `Global.cpu_conv` says: `auto` on a CPU `device` only (on a GPU cuDNN is fast),
    `true` always, `false` never. The path is `use_cpu_conv(model)` and, where it switched a layer, glibc's malloc
    keeping freed memory for reuse in this process (`keep_freed_memory`: without it each step's new columns
    page-fault afresh).
    Returns how many layers were switched."""
    wanted = device.startswith("cpu") if setting == "auto" else bool(setting)
    switched = use_cpu_conv(model) if wanted else 0
    if switched:
        keep_freed_memory()
    return switched
