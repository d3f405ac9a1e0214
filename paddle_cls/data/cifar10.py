"""CIFAR-10 read from the raw Python-pickle batches, as chapter 5.5 of the nndl course reads them.

Splits: `train` = data_batch_1..4 (40,000 images), `dev` = data_batch_5, `test` = test_batch.
The data may sit in the extracted `cifar-10-batches-py` folder, a folder holding it, the
`cifar-10-python.tar.gz` archive itself (read in place, never extracted) or a folder holding the archive.
"""
import hashlib
import os
import tarfile
from typing import Optional, Sequence, Tuple

import numpy as np
from paddle import io

from ..errors import DataError
from ..utils.distributed import one_process_at_a_time
from ..utils.logger import logger
from ..utils.safe_pickle import safe_load

CIFAR10_URL = "https://dataset.bj.bcebos.com/cifar/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_FOLDER = "cifar-10-batches-py"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
id2label = dict(enumerate(CIFAR10_LABELS))
SPLIT_FILES = {"train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4"), "dev": ("data_batch_5",),
               "test": ("test_batch",)}
IMAGE_SHAPE = (3, 32, 32)

# uint8 -> float32 tables that reproduce the course's arithmetic bit for bit: it divides by 255 in float64, casts
# to float32, then Normalize subtracts and divides in float32. A lookup gives them without float64 temporaries.
_SCALE_LUT = (np.arange(256) / 255.0).astype(np.float32)
_NORMALIZE_LUT = (_SCALE_LUT[None, :] - np.float32(CIFAR10_MEAN)[:, None]) / np.float32(CIFAR10_STD)[:, None]
_CHANNEL_INDEX = np.arange(3)[:, None, None]


def cifar10_cache_dir() -> str:
    """The folder where Paddle's own downloader keeps the CIFAR archive (`~/.cache/paddle/dataset/cifar`)."""
    return os.path.join(os.path.expanduser("~"), ".cache", "paddle", "dataset", "cifar")


def _is_batch_folder(path):
    return any(os.path.isfile(os.path.join(path, name)) for name in ("data_batch_1", "test_batch"))


def find_cifar10(data_dir: Optional[str] = None, download: bool = False) -> str:
    """Locate CIFAR-10 and return the batch folder or the archive to read it from.

    Args:
        data_dir: the `cifar-10-batches-py` folder, a folder holding it, `cifar-10-python.tar.gz`, or a
            folder holding the archive. None looks in Paddle's dataset cache.
        download: fetch the official archive into Paddle's dataset cache (md5 checked) when not found; one
            process at a time (the ranks of a launched run), the others waiting for its file.

    Raises:
        DataError: nothing found and download not allowed or failed; the message says where to put the file.
    """
    cache_archive = os.path.join(cifar10_cache_dir(), ARCHIVE_NAME)
    if data_dir is not None:
        data_dir = os.path.expanduser(str(data_dir))
        if os.path.isfile(data_dir):
            return data_dir
        if os.path.isdir(data_dir):
            if _is_batch_folder(data_dir):
                return data_dir
            if _is_batch_folder(os.path.join(data_dir, BATCH_FOLDER)):
                return os.path.join(data_dir, BATCH_FOLDER)
            if os.path.isfile(os.path.join(data_dir, ARCHIVE_NAME)):
                return os.path.join(data_dir, ARCHIVE_NAME)
        where = data_dir
    else:
        if os.path.isfile(cache_archive) and not download:
            return cache_archive
        where = cifar10_cache_dir()
    if download:
        # all ranks of a launch come here at once, and Paddle writes in place: one fetches, the others wait
        with one_process_at_a_time(cache_archive + ".lock", f"the CIFAR-10 download into {cifar10_cache_dir()}"):
            if data_dir is None and os.path.isfile(cache_archive):
                return cache_archive
            return _download_cifar10(where)
    raise DataError(
        f"CIFAR-10 not found at {where}: expected {ARCHIVE_NAME} (md5 {CIFAR10_MD5}, from {CIFAR10_URL}) "
        f"or its extracted {BATCH_FOLDER} folder there. Put it there, point Global.data_dir at it, "
        "or allow the download (Global.download: true)."
    )


def _download_cifar10(where):
    from paddle.dataset.common import download, md5file

    try:
        path = download(CIFAR10_URL, "cifar", CIFAR10_MD5)
    except Exception as exc:  # the downloader raises bare RuntimeErrors and network errors alike
        raise DataError(
            f"CIFAR-10 not found at {where} and the download from {CIFAR10_URL} failed ({exc}). "
            f"Fetch {ARCHIVE_NAME} (md5 {CIFAR10_MD5}) by hand and put it in "
            f"{' or '.join(dict.fromkeys([where, cifar10_cache_dir()]))}, or point Global.data_dir at it."
        ) from None
    if md5file(path) != CIFAR10_MD5:
        raise DataError(f"{path}: md5 does not match the official {CIFAR10_MD5}; delete it and download again")
    return path


def _refuse_unsafe_members(location, members):
    """The archive is read in place, never extracted; still, one with members that would land outside its
    folder, or that are links or devices, is not the official archive and is refused whole."""
    for member in members:
        parts = member.name.replace("\\", "/").split("/")
        plain = member.isfile() or member.isdir()
        if member.name.startswith("/") or ".." in parts or not plain:
            kind = ("link" if member.issym() or member.islnk() else "path outside the archive's folder" if plain
                    else "device or special file")
            raise DataError(f"{location}: refused: member {member.name!r} is a {kind}; the official "
                            f"{ARCHIVE_NAME} holds only plain files under {BATCH_FOLDER}/")


_checked_archives = {}


def _check_archive_md5(location):
    """A local archive that differs from the official one is read, with a one-line notice (users repack)."""
    stat = os.stat(location)
    key = (os.path.abspath(location), stat.st_size, stat.st_mtime)
    if key in _checked_archives:
        return
    digest = hashlib.md5()
    with open(location, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    _checked_archives[key] = digest.hexdigest()
    if _checked_archives[key] != CIFAR10_MD5:
        logger.info(f"Note: {location} is not the official {ARCHIVE_NAME} (md5 {_checked_archives[key]}, "
                    f"official {CIFAR10_MD5}); reading it anyway")


def _iter_batches(location, names):
    """Yield `(name, batch_dict)` for each of `names`, read from a batch folder or the archive.

    From the archive the members come in the archive's own order, so the gzip stream is read once.
    """
    if os.path.isdir(location):
        for name in names:
            path = os.path.join(location, name)
            if not os.path.isfile(path):
                raise DataError(
                    f"{path} is missing: a CIFAR-10 folder holds data_batch_1..5 and test_batch; "
                    f"extract {ARCHIVE_NAME} again or point Global.data_dir at the archive"
                )
            with open(path, "rb") as file:
                yield name, safe_load(file, path)
        return
    _check_archive_md5(location)
    try:
        with tarfile.open(location, "r:gz") as archive:
            all_members = archive.getmembers()
            _refuse_unsafe_members(location, all_members)
            members = {
                os.path.basename(m.name): m
                for m in all_members
                if m.isfile() and os.path.dirname(m.name).strip("./") == BATCH_FOLDER
            }
            missing = [name for name in names if name not in members]
            if missing:
                raise DataError(f"{location}: {', '.join(missing)} not found under {BATCH_FOLDER}/ in the archive")
            for member in sorted((members[name] for name in names), key=lambda m: m.offset):
                source = f"{location}:{member.name}"
                yield os.path.basename(member.name), safe_load(archive.extractfile(member), source)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{location}: not a readable {ARCHIVE_NAME} ({exc}); download it again") from None


def _batch_arrays(batch, source):
    """Check one unpickled batch and return `(uint8 images [N, 3, 32, 32], int64 labels [N])`."""
    if not isinstance(batch, dict):
        raise DataError(f"{source}: expected a dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{source}: expected keys 'data' and 'labels', found {sorted(batch)}")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{source}: 'data' must be a uint8 array of shape [N, 3072], found {found}")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{source}: {len(data)} images but {labels.size} labels")
    if len(labels) and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{source}: labels must be ints in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape((-1,) + IMAGE_SHAPE), labels.astype(np.int64)


def read_cifar10_split(location: str, mode: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read the course's `train`, `dev` or `test` split: see `read_cifar10_batches`."""
    if mode not in SPLIT_FILES:
        raise DataError(f"unknown CIFAR-10 split {mode!r}: expected one of {sorted(SPLIT_FILES)}")
    return read_cifar10_batches(location, SPLIT_FILES[mode])


def read_cifar10_batches(location: str, names: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Read the batch files `names` as one `(uint8 images [N, 3, 32, 32], int64 labels [N])`, in the order of
    `names`, each batch as long as it is (batches of unequal length load as the course loads them).

    The images stay uint8 (123 MB for the 40,000 training images, not 490 MB as float32); each batch is copied
    into one array grown in place and freed before the next is read (no float64 temporaries, no concatenation),
    and blocks that the archive hands over in another order are put in the order of `names` in place.
    """
    images = np.empty((0,) + IMAGE_SHAPE, dtype=np.uint8)
    arrived, labels, filled = [], {}, 0
    for name, batch in _iter_batches(location, names):
        source = f"{location}:{name}"
        batch_images, labels[name] = _batch_arrays(batch, source)
        del batch  # free each batch before the next is read: peak memory is the split plus one batch
        count = len(batch_images)
        if count == 0:
            raise DataError(f"{source} holds no images: a CIFAR-10 batch cannot be empty")
        if filled + count > len(images):  # room for this batch and, at its size, for the ones still to come
            still_to_come = len(names) - len(arrived) - 1
            images.resize((filled + count * (1 + still_to_come),) + IMAGE_SHAPE, refcheck=False)
        images[filled:filled + count] = batch_images
        filled += count
        arrived.append((name, count))
        del batch_images
    images.resize((filled,) + IMAGE_SHAPE, refcheck=False)
    _order_blocks(images, arrived, names)
    return images, np.concatenate([labels[name] for name in names])


def _order_blocks(array, blocks, names):
    """Reorder `array`, made of `blocks` `[(name, length), ...]` laid end to end, into the order of `names`,
    in place: each block is moved to the front of the unordered part and the blocks before it slide back, in
    steps no longer than the block, so no step copies more than one block's worth."""
    position, pending = 0, list(blocks)
    for name in names:
        index = next(i for i, (block, _) in enumerate(pending) if block == name)
        length = pending[index][1]
        start = position + sum(size for _, size in pending[:index])
        if start != position:
            moving = array[start:start + length].copy()
            end = start
            while end > position:
                begin = max(position, end - length)
                array[begin + length:end + length] = array[begin:end]  # never overlapping: end - begin <= length
                end = begin
            array[position:position + length] = moving
        position += length
        del pending[index]


def load_cifar10_batch(folder_path: Optional[str], batch_id: int = 1,
                       mode: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """Load one batch file as the course does: `(images, labels)`, float32 [N, 3, 32, 32] in [0, 1] and int64 [N].

    `folder_path` is any location `find_cifar10` accepts; `mode: 'test'` reads `test_batch`, anything else
    `data_batch_{batch_id}` (1..5).
    """
    name = "test_batch" if mode == "test" else f"data_batch_{batch_id}"
    location = find_cifar10(folder_path)
    (_, batch), = _iter_batches(location, [name])
    images, labels = _batch_arrays(batch, f"{location}:{name}")
    return _SCALE_LUT[images], labels


def normalize_cifar10(images: np.ndarray) -> np.ndarray:
    """uint8 images [..., 3, H, W] -> float32, scaled to [0, 1] then normalised with the course's mean and std."""
    return _NORMALIZE_LUT[_CHANNEL_INDEX, images]


class CIFAR10Dataset(io.Dataset):
    """The course's CIFAR-10 dataset: normalised float32 CHW images and int64 labels.

    Args:
        folder_path: any location `find_cifar10` accepts (the batch folder, a folder holding it, the archive,
            or a folder holding the archive); None means Paddle's dataset cache.
        mode: 'train' (data_batch_1..4), 'dev' (data_batch_5) or 'test' (test_batch).
        download: fetch the official archive when nothing is found.

    `imgs` holds the images as uint8 [N, 3, 32, 32]; `__getitem__` returns the same float32 values as the
    course's float64 scaling plus `Normalize(mean=[0.4914, 0.4822, 0.4465], std=[0.2023, 0.1994, 0.2010])`: `steps`.

    >>> train_dataset = CIFAR10Dataset('/home/aistudio/data/data9154', mode='train')  # doctest: +SKIP
    """

    label_names = CIFAR10_LABELS
    own_images = False
    whole_batches = True  # its uint8 `imgs` are read a batch at a time (data.batched.CIFAR10BatchLoader)
    steps = ({"name": "ToTensor"}, {"name": "Normalize", "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)})

    def __init__(self, folder_path: Optional[str] = None, mode: str = "train", download: bool = False) -> None:
        super().__init__()
        if mode not in SPLIT_FILES:
            raise DataError(f"unknown CIFAR-10 mode {mode!r}: expected one of {sorted(SPLIT_FILES)}")
        self.mode = mode
        self.location = find_cifar10(folder_path, download=download)
        self.imgs, self.labels = read_cifar10_split(self.location, mode)

    def __getitem__(self, idx):
        return normalize_cifar10(self.imgs[idx]), self.labels[idx]

    def __len__(self):
        return len(self.imgs)
