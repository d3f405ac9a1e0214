import os
import sys

import numpy as np
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


def photo_patches(labels, seed=0):
    """uint8 [N, 3, 32, 32] patches of real photographs (matplotlib's sample photos), at random places and scales:
    images with the statistics of real pictures, not ones shaped to the code under test."""
    import matplotlib
    from PIL import Image

    folder = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")
    photos = [Image.open(os.path.join(folder, name)).convert("RGB")
              for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")]
    rng = np.random.RandomState(seed)
    patches = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    for index in range(len(labels)):
        photo = photos[rng.randint(len(photos))]
        side = rng.randint(32, min(photo.size) + 1)
        left, top = rng.randint(photo.size[0] - side + 1), rng.randint(photo.size[1] - side + 1)
        patch = photo.crop((left, top, left + side, top + side)).resize((32, 32), Image.BILINEAR)
        patches[index] = np.asarray(patch).transpose(2, 0, 1)
    return patches


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """Real images in class folders: scikit-learn's digits as files of many kinds (see own_images.py)."""
    from own_images import digits_folders

    root = tmp_path_factory.mktemp("digits")
    digits_folders(str(root))
    return str(root)
