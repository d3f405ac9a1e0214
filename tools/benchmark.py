"""Measure training and data-loading speed and print a table: python tools/benchmark.py [--quick] [--json PATH]"""
import sys

from paddle_cls.benchmarks import main

if __name__ == "__main__":
    sys.exit(main())
