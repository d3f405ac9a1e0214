"""Train from a config: python tools/train.py -c configs/resnet18.yml [-o Global.epochs=5 ...]"""
import sys

from paddle_cls.cli import run
from paddle_cls.engine import train

if __name__ == "__main__":
    sys.exit(run(train, "Train a model from a config, then test the best model."))
