import gzip
import os
import struct

import numpy as np
import paddle
import pytest
from paddle.vision import datasets as vision_datasets

from paddle_cls.config import load_config
from paddle_cls.data import MNIST, Cifar10
from paddle_cls.data.synthetic import write_mnist
from paddle_cls.data.loader import build_dataset
from paddle_cls.errors import ConfigError, DataError


def test_cifar10_equals_paddles_own_reading_of_the_archive(data_dir):
    archive = os.path.join(data_dir, "cifar-10-python.tar.gz")
    for mode, size in (("train", 5 * 64), ("test", 64)):
        ref = vision_datasets.Cifar10(archive, mode, download=False, backend="cv2")
        ours = Cifar10(data_dir, mode, backend="cv2")
        assert len(ours) == len(ref) == size
        for index in (0, 1, size - 1):
            np.testing.assert_array_equal(ours[index][0], ref[index][0])
            assert ours[index][1] == ref[index][1]


def test_cifar10_transforms_give_float_chw(data_dir):
    to_tensor = Cifar10(data_dir, "test", [{"name": "ToTensor"}])
    image, label = to_tensor[0]
    assert list(image.shape) == [3, 32, 32] and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    transposed = Cifar10(data_dir, "test", [{"name": "Transpose"}, {"name": "Normalize", "mean": [127.5] * 3,
                                                                    "std": [127.5] * 3}], backend="cv2")
    image, _ = transposed[0]
    assert image.dtype == np.float32 and image.shape == (3, 32, 32) and -1.0 <= image.min() and image.max() <= 1.0
    raw = np.reshape(transposed.data[0][0], (3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(image, (raw - 127.5) / 127.5, rtol=1e-6)


def test_mnist_equals_paddles_own_parser(data_dir):
    ours = MNIST(data_dir, "train", [{"name": "ToTensor"}])
    ref = vision_datasets.MNIST(os.path.join(data_dir, "train-images-idx3-ubyte.gz"),
                                os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), "train",
                                transform=paddle.vision.transforms.ToTensor(), download=False)
    assert len(ours) == len(ref) == 200
    for index in (0, 77, 199):
        np.testing.assert_array_equal(np.asarray(ours[index][0]), ref[index][0].numpy())
        assert ours[index][1].tolist() == ref[index][1].tolist() and ours[index][1].shape == (1,)
    normalised, _ = MNIST(data_dir, "test", [{"name": "ToTensor"}, {"name": "Normalize", "mean": [0.5],
                                                                       "std": [0.5]}])[0]
    assert float(normalised.min()) >= -1.0 and float(normalised.max()) <= 1.0


def test_mnist_bad_files_are_named(tmp_path):
    folder = write_mnist(str(tmp_path), 10, 10)
    images, labels = (os.path.join(folder, name) for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))
    os.replace(images, images + ".keep")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz missing \(also accepted: t10k-images-idx3-ubyte, "
                                        r"t10k-images.idx3-ubyte, t10k-images.idx3-ubyte.gz\)\. Put"):
        MNIST(folder, "test")
    os.replace(images + ".keep", images)
    with gzip.open(labels, "wb") as file:
        file.write(struct.pack(">II", 2051, 10) + bytes(10))
    with pytest.raises(DataError, match="magic number 2051, expected 2049"):
        MNIST(folder, "test")
    with gzip.open(labels, "wb") as file:
        file.write(struct.pack(">II", 2049, 12) + bytes(10))
    with pytest.raises(DataError, match="header says 12 items"):
        MNIST(folder, "test")
    open(images, "wb").write(gzip.compress(struct.pack(">IIII", 2051, 10, 28, 28) + bytes(7840))[:-20])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: not a readable gzip file"):
        MNIST(folder, "test")
    open(images, "wb").write(b"not gzip at all, " * 4)  # read as an uncompressed idx file, whose magic number is wrong
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: magic number 1852797984, expected 2051"):
        MNIST(folder, "test")


def _copy_mnist(source, folder, names):
    """Copy the four files of `source` into `folder` as {original name: (new name, gzip or not)}."""
    os.makedirs(folder)
    for original, (name, compressed) in names.items():
        with gzip.open(os.path.join(source, original), "rb") as file:
            raw = file.read()
        open(os.path.join(folder, name), "wb").write(gzip.compress(raw) if compressed else raw)
    return str(folder)


def test_mnist_reads_the_files_gzipped_or_not_under_either_name(tmp_path):
    source = write_mnist(str(tmp_path / "gz"), 30, 20)
    originals = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz")
    layouts = {
        # as the issue shows: the four files uncompressed, under LeCun's names and under Kaggle's dotted ones
        "uncompressed": {name: (name[:-3], False) for name in originals},
        "kaggle": {name: (name[:-3].replace("-idx", ".idx"), False) for name in originals},
        # a mix of both, and names that lie: a .gz name holding raw bytes and a bare name holding gzip
        "mixed": dict(zip(originals, (("train-images.idx3-ubyte.gz", True), ("train-labels-idx1-ubyte", False),
                                      ("t10k-images-idx3-ubyte.gz", False), ("t10k-labels.idx1-ubyte", True)))),
    }
    for mode, count in (("train", 30), ("test", 20)):
        expected = MNIST(source, mode)
        assert len(expected) == count
        for layout, names in layouts.items():
            ours = MNIST(_copy_mnist(source, tmp_path / f"{layout}-{mode}", names), mode)
            np.testing.assert_array_equal(ours.images, expected.images, err_msg=layout)
            np.testing.assert_array_equal(ours.labels, expected.labels, err_msg=layout)
            assert ours[count - 1][1].tolist() == expected[count - 1][1].tolist()


def test_subsets_are_disjoint_and_fixed_by_the_seed(data_dir):
    overrides = [f"Global.data_dir={data_dir}", "DataLoader.Train.subset=[0, 200]",
                 "DataLoader.Eval.subset=[200, 260]"]
    config = load_config("configs/simplecnn_cifar10.yml", overrides)
    train, dev = build_dataset(config, "Train"), build_dataset(config, "Eval")
    assert (len(train), len(dev)) == (200, 60) and not set(train.indices) & set(dev.indices)
    again = build_dataset(load_config("configs/simplecnn_cifar10.yml", overrides), "Train")
    assert again.indices == train.indices
    reseeded = build_dataset(load_config("configs/simplecnn_cifar10.yml", overrides + ["Global.seed=7"]), "Train")
    assert reseeded.indices != train.indices
    with pytest.raises(ConfigError, match=r"subset: \[0, 999\] but the dataset holds 320"):
        build_dataset(load_config("configs/simplecnn_cifar10.yml", overrides + ["DataLoader.Train.subset=[0, 999]"]),
                      "Train")


def test_unknown_transform_is_named(data_dir):
    config = load_config("configs/cnn_mnist.yml", [f"Global.data_dir={data_dir}",
                                                   "DataLoader.Train.dataset.transforms=[{name: ToTensr}]"])
    with pytest.raises(ConfigError,
                       match=r"DataLoader.Train.dataset.transforms.0.name: unknown name 'ToTensr'.*ToTensor"):
        build_dataset(config, "Train")
