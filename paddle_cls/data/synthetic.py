"""Small CIFAR-10 and MNIST look-alikes in the exact format of the real files, for tests, notebooks and benchmarks.

The real batches were written by Python 2's cPickle: protocol 2, Python 2 byte strings (`U`/`T` opcodes)
for keys and raw image bytes, and numpy arrays pickled through `numpy.core.multiarray._reconstruct`.
Python 3's `pickle.dump` writes none of that, so this module emits the opcodes itself. MNIST comes as the
four gzipped idx files (big-endian magic number 2051 or 2049, count, rows, cols, then uint8 data).
"""
from __future__ import annotations

import gzip
import os
import struct
import tarfile
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .cifar10 import ARCHIVE_NAME, BATCH_FOLDER, CIFAR10_LABELS, SPLIT_FILES


def _py2_str(data):
    data = data.encode("latin1") if isinstance(data, str) else bytes(data)
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _py2_int(value):
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _py2_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _py2_items(items, end_opcode):
    # cPickle batches list and dict items in runs of 1000 between MARK and APPENDS/SETITEMS.
    out = b""
    for start in range(0, len(items), 1000):
        out += b"(" + b"".join(items[start:start + 1000]) + end_opcode
    return out


def _py2_uint8_array(array):
    dtype = (_py2_global("numpy", "dtype") + _py2_str("u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
             + b"(" + _py2_int(3) + _py2_str("|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _py2_int(0) + b"tb")
    shape = b"(" + b"".join(_py2_int(n) for n in array.shape) + b"t"
    return (_py2_global("numpy.core.multiarray", "_reconstruct") + _py2_global("numpy", "ndarray")
            + _py2_int(0) + b"\x85" + _py2_str("b") + b"\x87R"
            + b"(" + _py2_int(1) + shape + dtype + b"\x89" + _py2_str(np.ascontiguousarray(array).tobytes()) + b"tb")


def _py2_value(value):
    if isinstance(value, np.ndarray):
        return _py2_uint8_array(value)
    if isinstance(value, (str, bytes)):
        return _py2_str(value)
    if isinstance(value, (int, np.integer)):
        return _py2_int(int(value))
    if isinstance(value, list):
        return b"]" + _py2_items([_py2_value(v) for v in value], b"e")
    if isinstance(value, dict):
        return b"}" + _py2_items([_py2_str(k) + _py2_value(v) for k, v in value.items()], b"u")
    raise TypeError(f"no Python 2 pickle form for {type(value).__name__}")


def py2_pickle_bytes(obj: Any) -> bytes:
    """Pickle dicts, lists, str, ints and uint8 arrays the way Python 2's cPickle wrote the CIFAR batches."""
    return b"\x80\x02" + _py2_value(obj) + b"."


def make_learnable_images(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 CHW images whose class shows in their colour and in a bright quadrant, plus noise.

    Small models learn these in a few steps, so tests can assert accuracy well above chance.
    """
    rng = np.random.RandomState(seed)
    palette = np.random.RandomState(1234).randint(30, 226, size=(10, 3)).astype(np.float32)
    images = np.empty((len(labels), 3, 32, 32), dtype=np.float32)
    images[:] = palette[labels][:, :, None, None]
    for index, label in enumerate(labels):
        row, col = divmod(int(label) % 4, 2)
        images[index, :, row * 16:(row + 1) * 16, col * 16:(col + 1) * 16] += 60.0
    images += rng.normal(0.0, 12.0, size=images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def write_cifar10(root: str, images_per_batch: int = 100, seed: int = 0, archive: bool = False,
                  make_images: Callable[..., np.ndarray] = make_learnable_images,
                  archive_order: Optional[Sequence[str]] = None) -> str:
    """Write a small CIFAR-10 in the real on-disk format and return the path to read it from.

    Args:
        root: folder to write into; the batches go to `root/cifar-10-batches-py/`.
        images_per_batch: images in each of data_batch_1..5 and test_batch (the real files hold 10,000), or a
            dict giving each file's own count, e.g. `{"data_batch_1": 301, ..., "test_batch": 211}`.
        seed: seeds labels, images and noise.
        archive: also pack `root/cifar-10-python.tar.gz` as the official archive is laid out, and return its path.
        make_images: `make_images(labels, seed)` -> uint8 [N, 3, 32, 32]; by default images a small model learns fast.
        archive_order: the file names in the order the archive holds them (default: sorted), e.g. to pack
            data_batch_4 before data_batch_1 as a repacked copy may.
    """
    folder = os.path.join(root, BATCH_FOLDER)
    os.makedirs(folder, exist_ok=True)
    names = SPLIT_FILES["train"] + SPLIT_FILES["dev"] + SPLIT_FILES["test"]
    counts = images_per_batch if isinstance(images_per_batch, dict) else dict.fromkeys(names, images_per_batch)
    for number, name in enumerate(names):
        rng = np.random.RandomState(seed * 100 + number)
        labels = rng.randint(0, 10, size=counts[name])
        images = make_images(labels, seed=seed * 100 + number)
        batch_label = "testing batch 1 of 1" if name == "test_batch" else f"training batch {number + 1} of 5"
        batch = {
            "batch_label": batch_label,
            "labels": [int(label) for label in labels],
            "data": images.reshape(len(images), 3072),
            "filenames": [f"synthetic_{number}_{i:05d}.png" for i in range(counts[name])],
        }
        with open(os.path.join(folder, name), "wb") as file:
            file.write(py2_pickle_bytes(batch))
    meta = {"num_cases_per_batch": max(counts.values()), "label_names": list(CIFAR10_LABELS), "num_vis": 3072}
    with open(os.path.join(folder, "batches.meta"), "wb") as file:
        file.write(py2_pickle_bytes(meta))
    if not archive:
        return folder
    archive_path = os.path.join(root, ARCHIVE_NAME)
    with tarfile.open(archive_path, "w:gz") as tar:
        tar.add(folder, arcname=BATCH_FOLDER, recursive=False)
        for name in archive_order or sorted(os.listdir(folder)):
            tar.add(os.path.join(folder, name), arcname=f"{BATCH_FOLDER}/{name}")
    return archive_path


def write_mnist(folder: str, train_count: int = 200, test_count: int = 100, seed: int = 0) -> str:
    """Write the four MNIST `*-idx?-ubyte.gz` files, with a learnable bright block per digit, into `folder`."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        labels = rng.randint(0, 10, size=count).astype(np.uint8)
        images = rng.randint(0, 60, size=(count, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            row, col = divmod(int(label), 4)
            images[index, 2 + row * 8:8 + row * 8, 2 + col * 6:7 + col * 6] = 250
        with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "wb") as file:
            file.write(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
        with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as file:
            file.write(struct.pack(">II", 2049, count) + labels.tobytes())
    return folder
