"""`paddle.vision.datasets.Cifar10` and `MNIST` as the tutorials use them, reading local files safely.

Both subclass Paddle's own classes, so images, transforms, backends and labels behave exactly as Paddle's
do; only the file reading is replaced. Cifar10 reads the batches through the restricted unpickler (Paddle's
uses `pickle.load`), from any location `find_cifar10` accepts. MNIST checks the idx files' magic numbers
and sizes and parses them with NumPy instead of per-image `struct` calls; it reads them gzipped or not, under
the names people's copies have.
"""
from __future__ import annotations

from typing import Optional, Tuple

import gzip
import os
import zlib
from contextlib import nullcontext

import numpy as np
from paddle.vision import datasets as vision_datasets

from ..errors import DataError
from ..utils.distributed import one_process_at_a_time
from .cifar10 import CIFAR10_LABELS, find_cifar10, read_cifar10_batches
from .transforms import build_transforms

# paddle.vision.datasets.Cifar10's splits: all five training batches, and the test batch.
VISION_CIFAR10_FILES = {
    "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
    "test": ("test_batch",),
}


def _check_mode(mode, valid):
    if mode not in valid:
        raise DataError(f"unknown mode {mode!r}: expected one of {', '.join(valid)}")


class Cifar10(vision_datasets.Cifar10):
    """Paddle's `Cifar10` (50,000 training and 10,000 test images, HWC images handed to `transform`).

    Args:
        folder_path: any CIFAR-10 location `find_cifar10` accepts; None means Paddle's cache.
        mode: 'train' or 'test'.
        transforms: a list of transform specs (see `build_transforms`), or None.
        download: fetch the official archive when nothing is found.
        backend: 'cv2' (NumPy images) or 'pil', as in Paddle; None uses Paddle's current image backend.
    """

    label_names = CIFAR10_LABELS
    own_images = False
    whole_batches = False
    steps = None  # its transforms are the config's

    def __init__(self, folder_path=None, mode="train", transforms=None, download=False, backend=None):
        _check_mode(mode, VISION_CIFAR10_FILES)
        location = find_cifar10(folder_path, download=download)
        transform = transforms if callable(transforms) else build_transforms(transforms, "dataset.transforms")
        super().__init__(data_file=location, mode=mode, transform=transform, download=False, backend=backend)

    def _load_data(self):
        images, labels = read_cifar10_batches(self.data_file, VISION_CIFAR10_FILES[self.mode])
        self.data = list(zip(images.reshape(len(images), -1), labels))


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049
_GZIP_MAGIC = b"\x1f\x8b"


def mnist_cache_dir() -> str:
    """Where Paddle's own downloader keeps MNIST (`~/.cache/paddle/dataset/mnist`)."""
    return os.path.join(os.path.expanduser("~"), ".cache", "paddle", "dataset", "mnist")


def mnist_file_names(name: str) -> Tuple[str, str, str, str]:
    """The names one MNIST file goes by: LeCun's gzipped original (`train-images-idx3-ubyte.gz`), uncompressed,
    and Kaggle's and several packages' dotted form (`train-images.idx3-ubyte`), each with or without `.gz`."""
    stem = name[:-len(".gz")]
    dotted = stem.replace("-idx", ".idx")
    return (name, stem, dotted, dotted + ".gz")


def find_mnist_file(folder: str, name: str) -> Optional[str]:
    """The path of MNIST file `name` (one of `MNIST_FILES`) in `folder` under any of its names, or None."""
    for candidate in mnist_file_names(name):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _read_idx(path, magic, item_shape):
    # Gzipped or not is told by the gzip magic bytes, not the name: renamed and re-saved copies are common.
    with open(path, "rb") as file:
        raw = file.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc}); download it again") from None
    header = 8 + 4 * len(item_shape)
    if len(raw) < header:
        raise DataError(f"{path}: too short for an MNIST idx header")
    fields = np.frombuffer(raw[:header], dtype=">u4")
    if fields[0] != magic:
        raise DataError(f"{path}: magic number {fields[0]}, expected {magic}: not an MNIST "
                        f"{'image' if magic == _IMAGE_MAGIC else 'label'} file (are images and labels swapped?)")
    count = int(fields[1])
    if tuple(int(v) for v in fields[2:]) != item_shape:
        raise DataError(f"{path}: items of shape {tuple(fields[2:])}, expected {item_shape}")
    expected = header + count * int(np.prod(item_shape, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(f"{path}: header says {count} items ({expected} bytes) but the file holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape((count,) + item_shape)


class MNIST(vision_datasets.MNIST):
    """Paddle's `MNIST` from a local folder holding the four MNIST idx files, or Paddle's download.

    Each file may be gzipped or not (told by its first bytes, whatever its name) and named as LeCun's site
    (`train-images-idx3-ubyte.gz`), uncompressed (`train-images-idx3-ubyte`) or as Kaggle's copy
    (`train-images.idx3-ubyte`); see `mnist_file_names`.

    Args:
        folder_path: the folder with `train-images-idx3-ubyte.gz` and the other three files; None means
            Paddle's cache.
        mode: 'train' (60,000 images) or 'test' (10,000).
        transforms: a list of transform specs (see `build_transforms`), or None.
        download: let Paddle fetch the files (md5 checked) when they are not in `folder_path`; one process at a
            time (the ranks of a launched run), the others waiting for its files.
        backend: 'pil' or 'cv2', as in Paddle.

    Raises:
        DataError: a file is missing (naming every name it is accepted under) and `download` is false, or a
            file is not an MNIST idx file of the right kind and size.
    """

    label_names = tuple(str(digit) for digit in range(10))
    own_images = False
    whole_batches = False
    steps = None

    def __init__(self, folder_path=None, mode="train", transforms=None, download=False, backend=None):
        _check_mode(mode, MNIST_FILES)
        folder = os.path.expanduser(str(folder_path)) if folder_path is not None else mnist_cache_dir()
        paths = [find_mnist_file(folder, name) for name in MNIST_FILES[mode]]
        missing = [name for name, path in zip(MNIST_FILES[mode], paths) if path is None]
        if missing and not download:
            names = "; ".join(f"{name} missing (also accepted: {', '.join(mnist_file_names(name)[1:])})"
                              for name in missing)
            raise DataError(f"MNIST not found in {folder}: {names}. Put the four MNIST files (gzipped or not) "
                            f"there, point Global.data_dir at them, or allow the download (Global.download: true).")
        transform = transforms if callable(transforms) else build_transforms(transforms, "dataset.transforms")
        # Paddle downloads the missing files into its cache in place: one process at a time (the ranks of a
        # launched run), the others then find the complete files there.
        fetching = one_process_at_a_time(os.path.join(mnist_cache_dir(), "download.lock"),
                                         f"the MNIST download into {mnist_cache_dir()}") if missing else nullcontext()
        try:
            with fetching:
                super().__init__(image_path=None if missing else paths[0], label_path=None if missing else paths[1],
                                 mode=mode, transform=transform, download=True, backend=backend)
        except DataError:
            raise
        except Exception as exc:  # Paddle's downloader raises bare RuntimeErrors and network errors alike
            raise DataError(f"MNIST not found in {folder} and the download failed ({exc}). Put the four "
                            f"MNIST files (gzipped or not) in {folder} or point Global.data_dir at them.") from None

    def _parse_dataset(self, buffer_size=100):
        images = _read_idx(self.image_path, _IMAGE_MAGIC, (28, 28))
        labels = _read_idx(self.label_path, _LABEL_MAGIC, ())
        if len(images) != len(labels):
            raise DataError(f"{self.image_path} holds {len(images)} images but {self.label_path} "
                            f"holds {len(labels)} labels")
        if len(labels) and labels.max() > 9:
            raise DataError(f"{self.label_path}: labels must be 0..9, found {labels.max()}")
        self.images = images.reshape(len(images), 28 * 28)
        self.labels = labels.astype(np.int64).reshape(-1, 1)
