"""`tools/train.py` with process 0 taking 3 s to write best_model.pdparams (as a 47 MB file on a slow disk may),
and each process printing the fingerprint of the weights it loads for the final test: under the launcher, what
every process tested.

    python -m paddle.distributed.launch --nproc_per_node 2 tests/slow_best_writer.py -c CONFIG -o ...
"""
import os
import sys
import time

from paddle_cls import cli
from paddle_cls.engine import training
from paddle_cls.utils import weights
from paddle_cls.utils.distributed import rank


def main():
    save_atomic, load_model_file = weights.save_atomic, training.load_model_file

    def slow_save(obj, path):
        if os.path.basename(path) == training.BEST_MODEL:
            time.sleep(3)
        save_atomic(obj, path)

    def reporting_load(model, path):
        load_model_file(model, path)
        print(f"process {rank()} tested {os.path.basename(path)}: {training.weights_fingerprint(model):.12e}",
              flush=True)

    weights.save_atomic = slow_save
    training.load_model_file = reporting_load
    sys.exit(cli.train_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
