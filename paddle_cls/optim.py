"""Optimizers. `OPTIMIZERS` maps the names a config may use in `Optimizer.name`."""
import paddle

from .build import build

OPTIMIZERS = {
    "Adam": paddle.optimizer.Adam,
    "AdamW": paddle.optimizer.AdamW,
    "Momentum": paddle.optimizer.Momentum,
    "SGD": paddle.optimizer.SGD,
}


def build_optimizer(spec, parameters):
    """The optimizer of the `Optimizer` section over `parameters`.

    A float `weight_decay` is Paddle's L2 regularisation coefficient, as in the course's
    `Adam(learning_rate=0.001, weight_decay=0.005)`.
    """
    return build(OPTIMIZERS, spec, "Optimizer", parameters=parameters)
