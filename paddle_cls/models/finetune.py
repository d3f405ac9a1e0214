"""Fine-tuning: starting from pretrained weights, and training the backbone less (or not at all) than the head.

```yaml
Global:
  pretrained_model: path/to/weights.pdparams   # PaddleClas's key: a Paddle weights file or one of our checkpoints
Arch:
  name: resnet18
  pretrained: true           # or Paddle's ImageNet weights, from its weights cache
  freeze_backbone: false     # true: train the classifier head only
  backbone_lr_mult: 1.0      # the backbone's learning rate, as a fraction of Optimizer.learning_rate
```
Every weight whose name and shape match is loaded. The classifier head (the network's last `Linear` layer) is
left freshly initialised when its shape differs, as it does from 1000 ImageNet classes to your own; any other
difference is an error, never a half-loaded model.
"""
import importlib
import os

import paddle

from ..errors import CheckpointError, ConfigError
from ..utils.weights import load_state_dict
from ..utils.logger import logger

FINETUNE_KEYS = ("pretrained", "freeze_backbone", "backbone_lr_mult")

# Arch.name -> (paddle.vision.models module, key of its model_urls) of the zoo models with ImageNet weights
PADDLE_WEIGHTS = {
    "resnet18": ("resnet", "resnet18"), "resnet34": ("resnet", "resnet34"), "resnet50": ("resnet", "resnet50"),
    "resnet101": ("resnet", "resnet101"), "vgg16": ("vgg", "vgg16"), "alexnet": ("alexnet", "alexnet"),
    "mobilenet_v1": ("mobilenetv1", "mobilenetv1_1.0"), "mobilenet_v2": ("mobilenetv2", "mobilenetv2_1.0"),
}


def classifier_head(model: paddle.nn.Layer) -> str:
    """The name of the network's classifier head: its last `Linear` layer (`fc` of Paddle's ResNets)."""
    names = [name for name, layer in model.named_sublayers() if isinstance(layer, paddle.nn.Linear)]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no Linear classifier head to fine-tune")
    return names[-1]


def _in_head(key, head):
    return key.startswith(head + ".")


def _listed(keys):
    return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


def load_pretrained(model: paddle.nn.Layer, path: str, arch_name: str) -> dict:
    """Load the weights of `path` that fit `model`, leaving a classifier head of another shape initialised.

    `path` is a `.pdparams` file or a checkpoint folder of ours (holding `model.pdparams`).

    Returns:
        `{"loaded": [...], "head": [...]}`: the keys loaded and the head keys left initialised.

    Raises:
        CheckpointError: the file is of another architecture, or keys other than the head's are missing,
            unexpected or of another shape.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "model.pdparams")
    state = load_state_dict(path)
    expected = model.state_dict()
    head = classifier_head(model)
    shape = {key: list(value.shape) for key, value in expected.items()}
    fitting = [key for key in expected if key in state and list(state[key].shape) == shape[key]]
    if len(fitting) < len(expected) / 2:
        raise CheckpointError(f"{path} is not a {arch_name} model file: only {len(fitting)} of its weights fit the "
                              f"{len(expected)} of Arch.name {arch_name}; give weights saved from a {arch_name}")
    reshaped = [key for key in expected if key in state and key not in fitting]
    left_initial = [key for key in reshaped if _in_head(key, head)]
    problems = []
    for label, keys in (("missing", [key for key in expected if key not in state]),
                        ("unexpected", [key for key in state if key not in expected]),
                        ("shape mismatch", [f"{key} (file {list(state[key].shape)}, model {shape[key]})"
                                            for key in reshaped if not _in_head(key, head)])):
        if keys:
            problems.append(f"{label}: {_listed(keys)}")
    if problems:
        raise CheckpointError(f"{path} does not fit {arch_name} beyond its classifier head {head}: "
                              + "; ".join(problems))
    model.set_state_dict({**expected, **{key: state[key] for key in fitting}})  # the head keeps its own init
    message = f"Loaded {len(fitting)} of {len(expected)} weights from {path}"
    if left_initial:
        shapes = ", ".join(f"{key} {list(state[key].shape)} -> {shape[key]}" for key in left_initial)
        message += f"; the classifier head is new for this data ({shapes}), freshly initialised"
    logger.info(message)
    return {"loaded": fitting, "head": left_initial}


def paddle_weights_file(arch_name: str) -> str:
    """The path of Paddle's ImageNet weights for `arch_name`, from its weights cache or downloaded into it.

    A file already in the cache folder is used as it is (copied there from a machine with internet).

    Raises:
        ConfigError: the model has no Paddle weights, or they are not cached and cannot be downloaded;
            the message names the file Paddle wants, where to fetch it and the folder to put it in.
    """
    if arch_name not in PADDLE_WEIGHTS:
        raise ConfigError(f"Arch.pretrained: Paddle has ImageNet weights for {', '.join(PADDLE_WEIGHTS)}, not "
                          f"{arch_name}; give a weights file with Global.pretrained_model instead")
    module, key = PADDLE_WEIGHTS[arch_name]
    url, md5 = importlib.import_module(f"paddle.vision.models.{module}").model_urls[key]
    download = importlib.import_module("paddle.utils.download")
    cached = os.path.join(download.WEIGHTS_HOME, os.path.basename(url))
    if os.path.isfile(cached):
        return cached
    try:
        return download.get_weights_path_from_url(url, md5)
    except Exception as exc:  # Paddle's download raises RuntimeError, OSError or requests' errors by version
        raise ConfigError(f"Arch.pretrained: cannot fetch Paddle's {arch_name} weights ({exc}). On a machine "
                          f"with internet download {url} and copy it to {cached} (folder {download.WEIGHTS_HOME}), "
                          "or give the file with Global.pretrained_model") from None


# Paddle's public batch-norm layers (the 1D/2D/3D and sync ones share a private base class)
_BATCH_NORMS = (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D, paddle.nn.SyncBatchNorm,
                paddle.nn.BatchNorm)


def _use_running_statistics(layer, inputs):
    layer.training = False


def prepare_finetune(model: paddle.nn.Layer, config: dict) -> None:
    """Apply the fine-tuning settings of `Global.pretrained_model` and `Arch` to a freshly built model."""
    arch = config["Arch"]
    pretrained_model = config["Global"].get("pretrained_model")
    if arch.get("pretrained") and pretrained_model:
        raise ConfigError("give either Arch.pretrained: true (Paddle's ImageNet weights) or "
                          "Global.pretrained_model: PATH, not both")
    if arch.get("pretrained"):
        pretrained_model = paddle_weights_file(arch["name"])
    if pretrained_model:
        load_pretrained(model, pretrained_model, arch["name"])
    freeze, multiplier = arch.get("freeze_backbone", False), arch.get("backbone_lr_mult", 1.0)
    if not isinstance(freeze, bool):
        raise ConfigError(f"Arch.freeze_backbone must be true or false, got {freeze!r}")
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or multiplier < 0:
        raise ConfigError(f"Arch.backbone_lr_mult must be a number >= 0, got {multiplier!r}")
    if not freeze and multiplier == 1.0:
        return
    head = classifier_head(model)
    backbone = [param for name, param in model.named_parameters() if not _in_head(name, head)]
    for param in backbone:
        if freeze:
            param.stop_gradient = True
        else:
            param.optimize_attr["learning_rate"] = float(multiplier)
    if freeze:  # a frozen backbone's batch norms keep their statistics too, or its features would still drift
        for name, layer in model.named_sublayers():
            if isinstance(layer, _BATCH_NORMS) and not _in_head(name, head):
                layer.register_forward_pre_hook(_use_running_statistics)
    what = "frozen" if freeze else f"trained at {multiplier} x the learning rate"
    logger.info(f"Backbone ({len(backbone)} tensors) {what}; classifier head {head} trained in full")
