"""Evaluate a saved model on the test split: python tools/eval.py -c CONFIG [-o Global.checkpoint=PATH]"""
import sys

from paddle_cls.cli import run
from paddle_cls.engine import evaluate

if __name__ == "__main__":
    sys.exit(run(evaluate, "Evaluate a saved model on the test split."))
