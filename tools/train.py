"""Train from a config: python tools/train.py -c configs/resnet18.yml [-o Global.epochs=5 ...] [--summary]"""
import sys

from paddle_cls.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
