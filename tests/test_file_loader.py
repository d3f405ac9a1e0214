"""The image-file loader's workers read a bounded number of batches ahead of the run, in the sampler's order, so
that a loader faster than the training step does not hold an epoch of batches in memory."""
import os
import time

import numpy as np
import paddle

from paddle_cls.data.file_loader import ImageFilesLoader


class _Marked(paddle.io.Dataset):
    """Sample i is its index; reading it leaves a file named i in `folder` (workers are processes)."""

    def __init__(self, folder, count):
        super().__init__()
        self.folder, self.count = folder, count

    def __getitem__(self, index):
        open(os.path.join(self.folder, str(index)), "w").close()
        return np.float32(index), np.int64(index)

    def __len__(self):
        return self.count


def test_workers_read_at_most_prefetch_batches_ahead_in_order(tmp_path):
    loader = ImageFilesLoader(_Marked(str(tmp_path), 40), paddle.io.BatchSampler(range(40), batch_size=2),
                              num_workers=2)
    assert loader.prefetch == 4
    batches = iter(loader)
    first = next(batches)
    time.sleep(1.0)  # unbounded, both workers would have read all 40 samples by now
    assert len(os.listdir(tmp_path)) <= 2 * (1 + loader.prefetch)  # the batch in use and 4 ahead
    rest = [batch[1].numpy().tolist() for batch in batches]
    assert [first[1].numpy().tolist()] + rest == [[i, i + 1] for i in range(0, 40, 2)]
    assert len(os.listdir(tmp_path)) == 40
