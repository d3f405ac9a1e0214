"""Classify images with a saved model: python tools/predict.py -c CONFIG [IMAGES...] [--index N ...] [--topk K]"""
import sys

from paddle_cls.cli import predict_main

if __name__ == "__main__":
    sys.exit(predict_main())
