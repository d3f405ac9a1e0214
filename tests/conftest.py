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
