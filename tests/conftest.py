import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for course_reference

from paddle_cls.data.synthetic import write_cifar10  # noqa: E402

IMAGES_PER_BATCH = 64


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """A folder holding a small CIFAR-10 in the real format: the extracted batches and the archive."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(str(root), IMAGES_PER_BATCH, archive=True)
    return root


@pytest.fixture(scope="session")
def cifar_folder(cifar_root):
    return str(cifar_root / "cifar-10-batches-py")


@pytest.fixture(scope="session")
def cifar_archive(cifar_root):
    return str(cifar_root / "cifar-10-python.tar.gz")


@pytest.fixture(autouse=True)
def _cpu():
    import paddle

    paddle.set_device("cpu")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One folder holding the CIFAR-10 archive and the four MNIST files, as PADDLE_CLS_DATA_DIR would."""
    from paddle_cls.data.synthetic import write_mnist

    root = tmp_path_factory.mktemp("data")
    archive = write_cifar10(str(root / "build"), IMAGES_PER_BATCH, archive=True)
    os.replace(archive, root / "cifar-10-python.tar.gz")
    write_mnist(str(root), train_count=200, test_count=100)
    return str(root)
