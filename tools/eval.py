"""Evaluate a saved model on the test split: python tools/eval.py -c CONFIG [-o Global.checkpoint=PATH]"""
import sys

from paddle_cls.cli import eval_main

if __name__ == "__main__":
    sys.exit(eval_main())
