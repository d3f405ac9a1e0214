"""The CPU training path (paddle_cls/models/cpu_conv.py) computes what Paddle's conv2d computes: outputs and the
gradients of input, weight and bias equal within float32 rounding, over kernel sizes, strides, paddings, groups,
dilations, biases and odd shapes, and whole ResNet18s switched to it keep their parameters and results."""
import itertools
import os
import platform
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddle_cls.models import MODELS, Model_ResNet18
from paddle_cls.models.cpu_conv import BatchedConv2D, apply_cpu_conv, batched_conv2d, batched_wins, use_cpu_conv

PADDINGS = [0, 1, 3, "same", "valid", [1, 2], [0, 1, 2, 3]]
MAPS = [(1, 1), (3, 3), (5, 5), (3, 7), (8, 6)]  # odd, tiny and non-square feature maps


def _fits(size, kernel, stride, padding, dilation):
    """Whether Paddle's conv2d has a valid output for this input (it does not check, and crashes when not)."""
    if isinstance(padding, str):
        return padding == "same" or all(s >= dilation * (kernel - 1) + 1 for s in size)
    pads = [padding] * 4 if isinstance(padding, int) else (
        [padding[0], padding[0], padding[1], padding[1]] if len(padding) == 2 else padding)
    return all(size[axis] + pads[2 * axis] + pads[2 * axis + 1] >= dilation * (kernel - 1) + 1 for axis in range(2))


def _grads(out, tensors, seed):
    upstream = paddle.to_tensor(np.random.RandomState(seed).randn(*out.shape).astype("float32"))
    return [grad.numpy() for grad in paddle.grad([out], tensors, [upstream])]


def _close(actual, expected, what):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=2e-6 * scale, err_msg=what)


def _check(batch, channels, out_channels, size, kernel, stride, padding, groups, dilation, bias, seed=0):
    rng = np.random.RandomState(seed)
    x = paddle.to_tensor(rng.randn(batch, channels, *size).astype("float32"), stop_gradient=False)
    weight = paddle.to_tensor(rng.randn(out_channels, channels // groups, kernel, kernel).astype("float32"),
                              stop_gradient=False)
    b = paddle.to_tensor(rng.randn(out_channels).astype("float32"), stop_gradient=False) if bias else None
    tensors = [x, weight] + ([b] if bias else [])
    what = f"kernel {kernel} stride {stride} padding {padding} groups {groups} dilation {dilation} bias {bias} " \
           f"input {[batch, channels, *size]}"
    expected = F.conv2d(x, weight, b, stride, padding, dilation, groups)
    actual = batched_conv2d(x, weight, b, stride, padding, dilation, groups)
    assert actual.shape == expected.shape, what
    _close(actual.numpy(), expected.numpy(), what)
    for name, got, want in zip(["input grad", "weight grad", "bias grad"], _grads(actual, tensors, seed),
                               _grads(expected, tensors, seed)):
        _close(got, want, f"{name}: {what}")


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
def test_forward_and_gradients_equal_paddles_conv2d(kernel):
    for stride, padding, groups, dilation, bias, size in itertools.product(
            [1, 2], PADDINGS, [1, 2, 4], [1, 2], [True, False], MAPS):
        if _fits(size, kernel, stride, padding, dilation):  # groups 4 on 4 channels: depthwise
            _check(3, 4, 8, size, kernel, stride, padding, groups, dilation, bias)


@pytest.mark.parametrize("size", [(9, 11), (13, 13)])
def test_maps_past_the_one_gemm_size_take_a_gemm_per_sample_and_equal_paddles_conv2d(size):
    # 99 to 225 output positions (MyNet's second conv is 13x13 -> 11x11): above ONE_GEMM_POSITIONS, so the
    # batched GEMM writes NCHW where batched_wins takes it; the maps above cover the one-GEMM path
    for kernel, padding, groups, bias in itertools.product([1, 3], [1, "same"], [1, 2], [True, False]):
        _check(3, 4, 6, size, kernel, 1, padding, groups, 1, bias)


@pytest.mark.parametrize("layer,size", [
    (lambda: paddle.nn.Conv2D(3, 64, 7, stride=2, padding=3), 32),  # the course ResNet18's stem: 256 positions
    (lambda: paddle.nn.Conv2D(3, 32, 3), 32),  # MyNet's first conv: 900 positions
    (lambda: paddle.nn.Conv2D(8, 4, 3, padding="SAME"), 15),  # 225 positions, padding by name
    (lambda: paddle.nn.Conv2D(3, 4, 3, padding=1, padding_mode="reflect"), 4),  # not switched: by hand below
], ids=["resnet-stem", "mynet-conv1", "same-15x15", "reflect-by-hand"])
def test_a_conv_left_to_paddles_kernel_adds_its_bias_with_paddles_results(layer, size):
    paddle.seed(0)
    conv = layer()
    x = paddle.to_tensor(np.random.RandomState(3).randn(2, conv.weight.shape[1], size, size).astype("float32"),
                         stop_gradient=False)
    tensors = [x, conv.weight, conv.bias]
    expected = conv(x)
    expected_grads = _grads(expected, tensors, 4)
    if use_cpu_conv(conv) == 0:  # a padding use_cpu_conv leaves alone, switched anyway: Paddle's forward runs
        conv.__class__ = BatchedConv2D
    assert not batched_wins(conv, x) or conv._padding_mode != "zeros"  # Paddle's conv2d computes it
    actual = conv(x)
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    for name, got, want in zip(["input", "weight", "bias"], _grads(actual, tensors, 4), expected_grads):
        _close(got, want, f"{name} gradient")


@pytest.mark.parametrize("batch", [1, 5])
def test_batch_of_one_and_odd_batches(batch):
    _check(batch, 6, 10, (3, 5), 3, 1, 1, 2, 1, True)
    _check(batch, 6, 6, (5, 3), 3, 2, "same", 6, 1, False)


def test_the_issues_layer4_conv_keeps_only_the_centre_tap_and_equals_paddle():
    # ResNet18's layer4 on 32x32 images: a 3x3 conv with padding 1 on a 1x1 map reads only its centre tap;
    # the other 8 taps multiply zero padding, and their weight gradients must come out as exactly 0, as Paddle's.
    _check(4, 64, 32, (1, 1), 3, 1, 1, 1, 1, False)
    _check(4, 32, 64, (2, 2), 3, 2, 1, 1, 1, True)  # layer4's first conv: 2x2 -> 1x1, stride 2, 4 taps live
    # every tap reads zero padding at some outputs and the input at none: outputs are the bias alone
    _check(2, 3, 5, (1, 1), 1, 2, 3, 1, 1, True)
    x = paddle.randn([2, 8, 1, 1])
    weight = paddle.randn([8, 8, 3, 3])
    weight.stop_gradient = False
    grad = paddle.grad([batched_conv2d(x, weight, padding=1).sum()], [weight])[0].numpy()
    assert np.all(grad[:, :, 1, 1] != 0) and np.all(np.delete(grad.reshape(8, 8, 9), 4, axis=2) == 0)


def test_a_kernel_that_does_not_fit_is_a_clear_error():
    with pytest.raises(ValueError, match="does not fit a 1x1 input"):
        batched_conv2d(paddle.ones([1, 1, 1, 1]), paddle.ones([1, 1, 3, 3]))


def _models():
    paddle.seed(0)
    yield "Model_ResNet18", Model_ResNet18(3, 10)
    paddle.seed(0)
    yield "resnet18", paddle.vision.models.resnet18(num_classes=10)


@pytest.mark.parametrize("name,model", list(_models()), ids=["Model_ResNet18", "resnet18"])
def test_a_switched_resnet18_keeps_its_parameters_outputs_and_gradients(name, model):
    images = paddle.to_tensor(np.random.RandomState(1).randn(4, 3, 32, 32).astype("float32"))
    labels = paddle.to_tensor(np.arange(4, dtype="int64"))
    keys = {key: value.name for key, value in model.state_dict().items()}

    def loss_and_grads():
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        grads = {param.name: param.grad.numpy() for param in model.parameters() if not param.stop_gradient}
        model.clear_gradients()
        return loss.item(), grads

    model.eval()  # batch norm from running statistics: both runs see the same state
    loss, grads = loss_and_grads()
    with paddle.no_grad():
        logits = model(images).numpy()
    count = use_cpu_conv(model)
    assert count == len([layer for layer in model.sublayers() if isinstance(layer, paddle.nn.Conv2D)]) == 20
    assert {key: value.name for key, value in model.state_dict().items()} == keys
    assert all(isinstance(layer, paddle.nn.Conv2D) for layer in model.sublayers() if type(layer) is BatchedConv2D)
    switched_loss, switched_grads = loss_and_grads()
    with paddle.no_grad():
        _close(model(images).numpy(), logits, f"{name} logits")
    assert abs(switched_loss - loss) <= 1e-5 * max(1.0, abs(loss))
    for key, grad in grads.items():
        _close(switched_grads[key], grad, f"{name} gradient of {key}")
    assert use_cpu_conv(model, enable=False) == count
    assert not any(type(layer) is BatchedConv2D for layer in model.sublayers())


@pytest.mark.parametrize("channels,size", [(3, 32), (128, 16)])
def test_large_feature_maps_keep_paddles_own_conv(channels, size):
    # 1,024 and 256 output positions per sample: Paddle's per-sample GEMMs are wide enough there (measured)
    layer = paddle.nn.Conv2D(channels, 8, 3, padding=1)
    x = paddle.randn([1, channels, size, size])
    expected = layer(x).numpy()
    use_cpu_conv(layer)
    np.testing.assert_array_equal(layer(x).numpy(), expected)  # bit for bit: the same kernel ran
    assert not batched_wins(layer, x) and batched_wins(layer, paddle.randn([1, channels, 4, 4]))


def _small_net():
    """Maps of 8x8 (one GEMM per sample), 2x2 and 1x1 (one GEMM over the batch, dead taps left out)."""
    paddle.seed(0)
    nn = paddle.nn
    return nn.Sequential(nn.Conv2D(3, 8, 3, padding=1), nn.BatchNorm2D(8), nn.ReLU(),
                         nn.Conv2D(8, 16, 3, stride=4, padding=1, groups=2), nn.ReLU(),
                         nn.Conv2D(16, 16, 3, stride=2, padding=1), nn.Conv2D(16, 16, 3, padding=1, bias_attr=False),
                         nn.Flatten(), nn.Linear(16, 10))


def test_a_switched_model_trains_under_to_static_with_paddles_gradients():
    images = paddle.to_tensor(np.random.RandomState(2).randn(3, 3, 8, 8).astype("float32"))
    labels = paddle.to_tensor([1, 2, 3])
    results = []
    for switched in (False, True):
        model = _small_net()
        if switched:
            assert use_cpu_conv(model) == 4
        static = paddle.jit.to_static(model)
        loss = F.cross_entropy(static(images), labels)
        loss.backward()
        results.append([loss.numpy()] + [p.grad.numpy() for p in model.parameters() if not p.stop_gradient])
    for index, (got, want) in enumerate(zip(*results)):
        _close(got, want, f"to_static result {index} (0: the loss, then the gradients)")


def test_global_cpu_conv_switches_training_and_dygraph_evaluation_but_never_an_export(data_dir, tmp_path):
    from paddle_cls.config import load_config
    from paddle_cls.deploy.trained import load_trained_model, trained_model
    from paddle_cls.engine.components import build_components

    def switched(model):
        return sum(isinstance(layer, BatchedConv2D) for layer in model.sublayers())

    def config(*extra):
        return load_config("configs/model_resnet18.yml", [f"Global.data_dir={data_dir}", "Global.device=cpu",
                                                          f"Global.output_dir={tmp_path}", *extra])

    paddle.set_device("cpu")
    assert switched(build_components(config()).model) == 20  # auto, on a CPU: every conv of the course's ResNet18
    assert switched(build_components(config("Global.cpu_conv=false")).model) == 0
    assert apply_cpu_conv(MODELS["resnet18"](num_classes=10), "auto", "gpu:0") == 0  # cuDNN's own on a GPU
    paddle.save(build_components(config()).model.state_dict(), str(tmp_path / "best_model.pdparams"))
    assert switched(trained_model(config(), "dygraph")) == 20  # tools/eval.py on the dygraph engine
    assert switched(load_trained_model(config())) == 0  # what export saves: plain conv2d ops


_MEMORY_KEPT = """
import os, sys
import numpy.random
import paddle
from paddle_cls.models import MODELS
from paddle_cls.models.cpu_conv import apply_cpu_conv
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
setting = {'auto': 'auto', 'false': False}[sys.argv[1]]
apply_cpu_conv(MODELS['MyNet'](num_classes=10), setting, sys.argv[2])
before, blocks = rss(), []
for _ in range(10):  # a step's tensors: 200 MB in blocks of 20 MB, written, then freed
    block = bytearray(20 * 2 ** 20)
    block[::4096] = bytes([1]) * len(range(0, len(block), 4096))
    blocks.append(block)
del blocks, block
print((rss() - before) / 2 ** 20)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
@pytest.mark.parametrize("setting,device,environment,kept", [
    ("auto", "cpu", {}, True), ("auto", "gpu:0", {}, False), ("false", "cpu", {}, False),
    ("auto", "cpu", {"MALLOC_TRIM_THRESHOLD_": "0"}, False)], ids=["cpu", "gpu", "off", "users-setting"])
def test_the_cpu_path_keeps_freed_memory_for_the_next_step_and_only_it_does(setting, device, environment, kept):
    # Without it glibc returns freed blocks to the kernel (mmapped ones at once, its heap's top beyond at most
    # 64 MB), and the next step's tensors page-fault afresh; a user's own malloc setting stands
    result = subprocess.run([sys.executable, "-c", _MEMORY_KEPT, setting, device], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            env={**os.environ, **environment})
    assert result.returncode == 0, result.stderr[-2000:]
    still_resident = float(result.stdout.split()[-1])
    assert (still_resident >= 190) if kept else (still_resident <= 70), still_resident
