"""Check a config's data before training: python tools/check_data.py -c CONFIG [-o Global.data_dir=PATH]"""
import sys

from paddle_cls.cli import check_data_main

if __name__ == "__main__":
    sys.exit(check_data_main())
