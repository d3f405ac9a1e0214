"""`python -m paddle_cls COMMAND ...`: the same as the `paddle-cls` command."""
import sys

from .cli import main

sys.exit(main())
