"""Losses. `LOSSES` maps the names a config may use in `Loss.name`."""
from paddle import nn

LOSSES = {"CrossEntropyLoss": nn.CrossEntropyLoss}
