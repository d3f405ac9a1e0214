import io
import os
import pickle
import shutil
import tarfile
import tracemalloc

import numpy as np
import pytest

import course_reference as course
from conftest import photo_patches
from paddle_cls import Cifar10, CIFAR10Dataset, load_cifar10_batch
from paddle_cls.data import cifar10, find_cifar10
from paddle_cls.data.cifar10 import read_cifar10_batches
from paddle_cls.data.synthetic import py2_pickle_bytes, write_cifar10
from paddle_cls.errors import DataError

N = 64  # images per batch file in the session fixture


def test_fixture_has_the_python2_byte_format(cifar_folder):
    raw = open(os.path.join(cifar_folder, "data_batch_1"), "rb").read()
    assert raw.startswith(b"\x80\x02}")
    assert b"U\x04data" in raw and b"X\x04\x00\x00\x00data" not in raw  # Python 2 str, not unicode
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    as_bytes = pickle.loads(raw, encoding="bytes")
    assert sorted(as_bytes) == [b"batch_label", b"data", b"filenames", b"labels"]
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (N, 3072)
    as_str = pickle.loads(raw, encoding="latin1")
    assert sorted(as_str) == ["batch_label", "data", "filenames", "labels"]
    assert all(isinstance(label, int) and 0 <= label <= 9 for label in as_str["labels"])
    meta = pickle.load(open(os.path.join(cifar_folder, "batches.meta"), "rb"), encoding="latin1")
    assert meta["label_names"][9] == "truck"


def test_archive_is_laid_out_like_the_official_one(cifar_archive):
    with tarfile.open(cifar_archive) as tar:
        names = set(tar.getnames())
    assert {"cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch",
            "cifar-10-batches-py/batches.meta"} <= names


def test_load_cifar10_batch_matches_the_course(cifar_folder):
    images, labels = load_cifar10_batch(cifar_folder, batch_id=3)
    ref_images, ref_labels = course.load_cifar10_batch(cifar_folder, batch_id=3)
    assert images.dtype == np.float32 and images.shape == (N, 3, 32, 32)
    np.testing.assert_array_equal(images, ref_images)
    np.testing.assert_array_equal(labels, ref_labels)
    test_images, _ = load_cifar10_batch(cifar_folder, mode="test")
    np.testing.assert_array_equal(test_images, course.load_cifar10_batch(cifar_folder, mode="test")[0])


@pytest.mark.parametrize("mode,size", [("train", 4 * N), ("dev", N), ("test", N)])
def test_dataset_values_equal_the_course_dataset(cifar_folder, mode, size):
    ours, ref = CIFAR10Dataset(cifar_folder, mode), course.CIFAR10Dataset(cifar_folder, mode)
    assert len(ours) == len(ref) == size
    for index in range(0, size, 7):
        image, label = ours[index]
        ref_image, ref_label = ref[index]
        assert image.dtype == np.float32 and image.shape == (3, 32, 32)
        np.testing.assert_allclose(image, ref_image, rtol=0, atol=1e-6)
        assert label == ref_label and label.dtype == np.int64


def test_every_location_form_is_accepted(cifar_root, cifar_folder, cifar_archive, tmp_path):
    only_archive = tmp_path / "data9154"
    only_archive.mkdir()
    shutil.copy(cifar_archive, only_archive)
    reference = CIFAR10Dataset(cifar_folder, "dev")
    for location in (cifar_folder, str(cifar_root), cifar_archive, str(only_archive)):
        dataset = CIFAR10Dataset(location, "dev")
        np.testing.assert_array_equal(dataset.imgs, reference.imgs)
        np.testing.assert_array_equal(dataset.labels, reference.labels)
    assert find_cifar10(str(only_archive)).endswith("cifar-10-python.tar.gz")


def test_missing_data_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*c58f30108f718f92721af3b95e74349a"):
        CIFAR10Dataset(str(tmp_path), "train")


def test_missing_batch_file_is_named(tmp_path):
    folder = write_cifar10(str(tmp_path), 4)
    os.remove(os.path.join(folder, "data_batch_3"))
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        CIFAR10Dataset(folder, "train")


def test_download_uses_paddles_downloader_and_checks_md5(monkeypatch, tmp_path, cifar_archive):
    import paddle.dataset.common as common

    calls = []

    def fake_download(url, module_name, md5sum, save_name=None):
        calls.append((url, module_name, md5sum))
        return cifar_archive

    monkeypatch.setattr(common, "download", fake_download)
    monkeypatch.setattr(common, "md5file", lambda path: cifar10.CIFAR10_MD5)
    assert find_cifar10(str(tmp_path / "nothing"), download=True) == cifar_archive
    assert calls == [(cifar10.CIFAR10_URL, "cifar", "c58f30108f718f92721af3b95e74349a")]

    monkeypatch.setattr(common, "md5file", lambda path: "0" * 32)
    with pytest.raises(DataError, match="md5"):
        find_cifar10(str(tmp_path / "nothing"), download=True)


def test_failed_download_is_one_clear_error(monkeypatch, tmp_path):
    import paddle.dataset.common as common

    def offline(*args, **kwargs):
        raise RuntimeError("Cannot download within retry limit 3")

    monkeypatch.setattr(common, "download", offline)
    with pytest.raises(DataError, match="download .* failed.*put it in"):
        CIFAR10Dataset(str(tmp_path), "dev", download=True)


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    folder = write_cifar10(str(tmp_path), 4)
    marker = tmp_path / "pwned"
    crafted = (b"\x80\x02cos\nsystem\n" + b"U" + bytes([len(f"touch {marker}")]) + f"touch {marker}".encode()
               + b"\x85R.")
    with open(os.path.join(folder, "data_batch_5"), "wb") as file:
        file.write(crafted)
    with pytest.raises(DataError, match=r"data_batch_5.*refused to load 'os.system'"):
        CIFAR10Dataset(folder, "dev")
    assert not marker.exists()


def test_bad_batch_contents_are_reported(tmp_path):
    folder = write_cifar10(str(tmp_path), 4)
    path = os.path.join(folder, "test_batch")
    bad_label = {"data": np.zeros((2, 3072), np.uint8), "labels": [1, 12]}
    open(path, "wb").write(py2_pickle_bytes(bad_label))
    with pytest.raises(DataError, match="labels must be ints in 0..9"):
        CIFAR10Dataset(folder, "test")
    open(path, "wb").write(py2_pickle_bytes({"data": np.zeros((2, 3000), np.uint8), "labels": [1, 2]}))
    with pytest.raises(DataError, match=r"uint8 array of shape \[N, 3072\]"):
        CIFAR10Dataset(folder, "test")
    open(path, "wb").write(py2_pickle_bytes({"data": np.zeros((2, 3072), np.uint8), "labels": [1]}))
    with pytest.raises(DataError, match="2 images but 1 labels"):
        CIFAR10Dataset(folder, "test")
    open(path, "wb").write(py2_pickle_bytes(bad_label)[:40])
    with pytest.raises(DataError, match="truncated or corrupt"):
        CIFAR10Dataset(folder, "test")


def _peak_bytes(build):
    tracemalloc.start()
    try:
        dataset = build()
        return tracemalloc.get_traced_memory()[1], dataset
    finally:
        tracemalloc.stop()


def test_train_split_peak_memory_is_under_a_third_of_the_course(tmp_path):
    folder = write_cifar10(str(tmp_path), 1000)  # numpy reports its buffers to tracemalloc
    ours_peak, ours = _peak_bytes(lambda: CIFAR10Dataset(folder, "train"))
    course_peak, ref = _peak_bytes(lambda: course.CIFAR10Dataset(folder, "train"))
    assert len(ours) == len(ref) == 4000
    assert ours_peak * 3 <= course_peak, (ours_peak, course_peak)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "device"])
def test_crafted_archives_are_refused(tmp_path, kind):
    folder = write_cifar10(str(tmp_path / "src"), 4)
    archive = str(tmp_path / "cifar-10-python.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        info = tarfile.TarInfo({"dotdot": "cifar-10-batches-py/../../evil", "absolute": "/tmp/evil"}.get(
            kind, "cifar-10-batches-py/x"))
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "device":
            info.type = tarfile.CHRTYPE
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(DataError, match=r"refused: member .* is a"):
        CIFAR10Dataset(archive, "dev")
    assert not os.path.exists(tmp_path / "evil") and not os.path.exists("/tmp/evil")


def test_repacked_archive_is_read_with_a_notice(cifar_archive, tmp_path, capsys):
    dataset = CIFAR10Dataset(shutil.copy(cifar_archive, tmp_path), "dev")
    assert len(dataset) == N
    assert "is not the official cifar-10-python.tar.gz" in capsys.readouterr().out


def test_empty_batch_is_reported(tmp_path):
    folder = write_cifar10(str(tmp_path), 4)
    open(os.path.join(folder, "data_batch_5"), "wb").write(
        py2_pickle_bytes({"data": np.zeros((0, 3072), np.uint8), "labels": []}))
    with pytest.raises(DataError, match="data_batch_5 holds no images"):
        CIFAR10Dataset(folder, "dev")


UNEVEN = {"data_batch_1": 301, "data_batch_2": 97, "data_batch_3": 355, "data_batch_4": 260, "data_batch_5": 123,
          "test_batch": 211}


@pytest.fixture(scope="module")
def uneven_copy(tmp_path_factory):
    """Photographs in the real format with batches of unequal length, extracted and as an archive whose
    members are not in name order."""
    root = str(tmp_path_factory.mktemp("uneven"))
    order = ("data_batch_4", "test_batch", "data_batch_3", "batches.meta", "data_batch_2", "data_batch_5",
             "data_batch_1")
    archive = write_cifar10(root, UNEVEN, seed=3, archive=True, make_images=photo_patches, archive_order=order)
    return os.path.join(root, "cifar-10-batches-py"), archive


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_batches_of_unequal_length_load_as_the_course_loads_them(uneven_copy, form):
    folder, archive = uneven_copy
    location = folder if form == "folder" else archive
    for mode, size in (("train", 301 + 97 + 355 + 260), ("dev", 123), ("test", 211)):
        ours, ref = CIFAR10Dataset(location, mode), course.CIFAR10Dataset(folder, mode)
        assert len(ours) == len(ref) == size
        np.testing.assert_array_equal(ours.labels, ref.labels)
        for index in range(size):
            np.testing.assert_array_equal(ours[index][0], ref[index][0])
    # Paddle's Cifar10 split: all five training batches, in order.
    images, labels = read_cifar10_batches(folder, [f"data_batch_{i}" for i in range(1, 6)])
    vision = Cifar10(location, "train", backend="cv2")
    assert len(vision) == sum(UNEVEN[f"data_batch_{i}"] for i in range(1, 6)) == len(images)
    for index in (0, 300, 301, 397, 1012, 1013, len(vision) - 1):
        image, label = vision[index]
        np.testing.assert_array_equal(image, images[index].transpose(1, 2, 0))
        assert int(label) == labels[index]


def test_uneven_train_split_stays_within_the_memory_of_one_split_and_one_batch(tmp_path):
    sizes = {"data_batch_1": 700, "data_batch_2": 1300, "data_batch_3": 400, "data_batch_4": 1100,
             "data_batch_5": 10, "test_batch": 10}
    order = ("data_batch_4", "data_batch_3", "data_batch_2", "data_batch_1", "data_batch_5", "test_batch",
             "batches.meta")
    archive = write_cifar10(str(tmp_path), sizes, archive=True, archive_order=order)
    peak, dataset = _peak_bytes(lambda: CIFAR10Dataset(archive, "train"))
    split_bytes = 3500 * 3072
    assert len(dataset) == 3500
    # the split itself, the largest batch as unpickled (raw bytes and array) and the in-place reordering buffer
    assert peak < split_bytes + 4 * 1300 * 3072, (peak, split_bytes)
    reference = course.CIFAR10Dataset(str(tmp_path / "cifar-10-batches-py"), "train")
    np.testing.assert_array_equal(dataset.labels, reference.labels)
    np.testing.assert_array_equal(cifar10.normalize_cifar10(dataset.imgs[::97]),
                                  np.stack([reference[i][0] for i in range(0, 3500, 97)]))
