"""Whole-batch loading of `CIFAR10Dataset`: no Python work per sample.

A batch is one uint8 gather and one table lookup (the same table as `CIFAR10Dataset.__getitem__`, so the
values are identical). With `on_device`, the uint8 split (123 MB for the 40,000 training images) is copied
to the GPU once, and each epoch's order once an epoch; batching and normalising happen there, so the loader
never starves it and never makes the host wait for it.
The shuffle draws from NumPy exactly as Paddle's `RandomSampler` does, so a seeded run sees the same order
as with `paddle.io.DataLoader`.
"""
import numpy as np
import paddle

from .cifar10 import CIFAR10Dataset, normalize_cifar10
from .samples import base_dataset


class CIFAR10BatchLoader:
    """Iterate `(images float32 [B, 3, 32, 32], labels int64 [B])` batches of a CIFAR10Dataset (or a Subset).

    Args:
        dataset: a `CIFAR10Dataset`, possibly wrapped in `paddle.io.Subset`.
        batch_size, shuffle, drop_last: as for `paddle.io.DataLoader`.
        on_device: keep the split on the current Paddle device and build batches there.
    """

    def __init__(self, dataset, batch_size, shuffle=False, drop_last=False, on_device=False):
        base, to_base = base_dataset(dataset)
        if not isinstance(base, CIFAR10Dataset):
            raise TypeError(f"CIFAR10BatchLoader needs a CIFAR10Dataset, got {type(base).__name__}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.on_device = on_device
        if base is dataset:  # the whole split: no copy
            self._images, self._labels = base.imgs, base.labels
        else:
            indices = np.array([to_base(i) for i in range(len(dataset))], dtype=np.int64)
            self._images, self._labels = base.imgs[indices], base.labels[indices]
        if on_device:
            self._images = paddle.to_tensor(self._images)
            self._labels = paddle.to_tensor(self._labels)
            # normalize_cifar10's table: every uint8 value of each channel, as a [3, 256, 1] picture
            values = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None], (3, 256, 1))
            self._table = paddle.to_tensor(normalize_cifar10(values).reshape(-1))
            self._channel_offsets = paddle.to_tensor(np.arange(3, dtype=np.int64).reshape(1, 3, 1, 1) * 256)

    def __len__(self):
        count = len(self._labels)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def _device_batch(self, positions):
        images = paddle.gather(self._images, positions).astype("int64") + self._channel_offsets
        normalised = paddle.gather(self._table, images.reshape([-1])).reshape(images.shape)
        return normalised, paddle.gather(self._labels, positions)

    def __iter__(self):
        count = len(self._labels)
        order = np.random.choice(np.arange(count), count, replace=False) if self.shuffle else np.arange(count)
        if self.on_device:
            # one host-to-device copy an epoch: a copy per batch would make the host wait for the GPU every step
            order = paddle.to_tensor(order)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            positions = order[start:start + self.batch_size]
            if self.on_device:
                yield self._device_batch(positions)
            else:
                yield (paddle.to_tensor(normalize_cifar10(self._images[positions])),
                       paddle.to_tensor(self._labels[positions]))
