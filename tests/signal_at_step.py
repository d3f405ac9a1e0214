"""`tools/train.py`, sending this process a signal as the model's training forward pass number N (counted from
0 in this process) starts: an interruption at a known step, whatever the machine's load.

    python tests/signal_at_step.py SIGNAL N -c CONFIG -o ...
"""
import os
import signal
import sys

from paddle_cls import cli
from paddle_cls.engine import components


def main():
    signal_name, step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    build_model = components.build_model
    calls = []

    def build_model_with_a_signal(config):
        model = build_model(config)

        def before_forward(layer, inputs):
            if layer.training:
                if len(calls) == step:
                    os.kill(os.getpid(), getattr(signal, signal_name))
                calls.append(step)

        model.register_forward_pre_hook(before_forward)
        return model

    components.build_model = build_model_with_a_signal
    sys.exit(cli.train_main(argv))


if __name__ == "__main__":
    main()
