"""Export the trained model for deployment: python tools/export.py -c CONFIG [-o Global.checkpoint=PATH]"""
import sys

from paddle_cls.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main())
