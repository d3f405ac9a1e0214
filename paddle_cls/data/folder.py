"""Your own images: a folder per class (`ImageFolder`) or a file list (`ImageNetDataset`, PaddleClas's format).

Both index their files when built and check them cheaply (an empty folder, a class without images, a list line
that does not parse, a missing file, a label outside the classes): each is one `DataError` naming the file or
folder, before any training starts. An image that cannot be decoded later stops the run with its path; nothing
is ever replaced by another image. Images of any size and mode (L, P, RGBA, CMYK, 16-bit) are read as RGB, or
as one channel with `channels: 1`.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import paddle
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from ..utils.text import read_text
from .reduced_decode import EXIF_ORIENTATION, decode_size, draft

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def resolve(path: str, data_dir: Optional[str]) -> str:
    """`path` with `~` expanded, relative to `data_dir` (`Global.data_dir`) when that is set."""
    path = os.path.expanduser(str(path))
    if data_dir and not os.path.isabs(path):
        path = os.path.join(os.path.expanduser(str(data_dir)), path)
    return path


def in_model_mode(image: Image.Image, channels: int = 3) -> Image.Image:
    """A decoded image of any mode (L, P, RGBA, CMYK, 16-bit, ...) as RGB, or grey with `channels=1`, turned
    upright as its EXIF orientation says (every portrait phone photo is stored sideways), as viewers show it.

    Every image the toolkit decodes, from a file or an upload, comes through here.
    """
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:  # transposing copies the image: only when needed
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: keep the top 8 bits, as viewers show it
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8))
    return image.convert("L" if channels == 1 else "RGB")


def read_image(path: str, channels: int = 3, size: Optional[Tuple[int, int]] = None) -> Image.Image:
    """Decode `path` as an RGB (or, with `channels=1`, grey) PIL image, whatever its mode; with `size` (width,
    height, upright), a JPEG is decoded at the smallest reduced scale still at least that size
    (`reduced_decode.draft`; `reduced_decode.decode_size` gives the size a model's transforms need).

    Raises:
        DataError: naming the file, when it is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            draft(image, size)
            image.load()
            return in_model_mode(image, channels)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot be decoded as an image ({exc})") from None


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _folder_images(folder: str) -> List[str]:
    """Image files under `folder`, sub-folders and linked folders included, hidden ones skipped, sorted."""
    found = []
    for current, subfolders, names in os.walk(folder, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found.extend(os.path.join(current, name) for name in sorted(names) if _is_image(name))
    return found


def _holdout(samples: Sequence[Tuple[str, int]], split: Optional[str], val_fraction: Optional[float], seed: int,
             where: str):
    """The `split` part ('train' or 'val') of a seeded per-class hold-out of `val_fraction` of each class."""
    if split is None and val_fraction is None:
        return list(samples)
    if split not in ("train", "val") or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise DataError(f"{where}: a hold-out needs split: train or val and 0 < val_fraction < 1, "
                        f"got split: {split!r}, val_fraction: {val_fraction!r}")
    rng = np.random.RandomState(seed)
    chosen = []
    labels = np.array([label for _, label in samples])
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = rng.permutation(members)
        held = max(1, int(round(len(members) * val_fraction))) if len(members) > 1 else 0
        chosen.extend(order[:held] if split == "val" else order[held:])
    return [samples[i] for i in sorted(chosen)]


class ImageFiles(paddle.io.Dataset):
    """Image files with labels; `classes` holds the class names in label order. JPEGs are decoded at the reduced
    scale their transforms allow (`decode_size`: `Resize 256` decodes a 12 MP photo at 1/8)."""

    label_names = None  # each dataset's own (its `classes`), known once its files are indexed
    own_images = True
    whole_batches = False
    steps = None  # its transforms are the config's

    def __init__(self, samples, classes, transforms, channels, where):
        super().__init__()
        if channels not in (1, 3):
            raise DataError(f"{where}: channels must be 1 or 3, got {channels!r}")
        self.samples = samples
        self.classes = list(classes)
        self.label_names = tuple(self.classes)
        self.transform = transforms
        self.channels = channels
        self.decode_size = decode_size(transforms) if transforms is not None else None
        if not samples:
            raise DataError(f"{where}: no images to use")

    def __getitem__(self, index):
        path, label = self.samples[index]
        try:
            image = read_image(path, self.channels, self.decode_size)
        except DataError as exc:
            raise DataError(f"{exc}; remove or replace it (tools/check_data.py lists every such file)") from None
        if self.transform is not None:
            image = self.transform(image)
        return image, np.int64(label)

    def __len__(self):
        return len(self.samples)


class ImageFolder(ImageFiles):
    """A folder holding one sub-folder of images per class; class index = sorted folder names (as
    `paddle.vision.datasets.DatasetFolder` orders them).

    Args:
        root: the folder; relative to `Global.data_dir` when that is set (`folder_path`).
        transforms: transform specs or a callable, applied to each PIL image.
        split, val_fraction, seed: with `val_fraction`, a seeded hold-out of that fraction of every class;
            `split: train` takes the rest, `split: val` the held-out images (never overlapping).
        channels: 3 (RGB) or 1 (grey).
        folder_path: `Global.data_dir`, given by the toolkit.
        download: unused (your own images are never downloaded); given by the toolkit.
    """

    def __init__(self, root, transforms=None, split=None, val_fraction=None, seed=0, channels=3, folder_path=None,
                 download=False):
        root = resolve(root, folder_path)
        where = f"ImageFolder {root}"
        if not os.path.isdir(root):
            raise DataError(f"{where}: no such folder; point root (or Global.data_dir) at a folder holding one "
                            "sub-folder of images per class")
        classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
        if not classes:
            raise DataError(f"{where}: holds no class folders; put each class's images in a sub-folder "
                            "named after the class (root/cat/1.jpg, root/dog/2.jpg, ...)")
        samples = []
        for label, name in enumerate(classes):
            images = _folder_images(os.path.join(root, name))
            if not images:
                raise DataError(f"{where}: class folder {name}/ holds no images (extensions "
                                f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
            samples.extend((path, label) for path in images)
        self.root = root
        super().__init__(_holdout(samples, split, val_fraction, seed, where), classes, transforms, channels, where)


def _read_class_map(path):
    names = {}
    for number, line in enumerate(read_text(path, DataError, "class map").split("\n"), 1):
        if not line.strip():
            continue
        index, name = (line.split(None, 1) + [""])[:2]  # after a space or a tab (spreadsheets)
        if not index.isdigit() or not name.strip():
            raise DataError(f"{path}:{number}: expected 'index name' (e.g. '0 daisy'), got {line.strip()!r}")
        names[int(index)] = name.strip()
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: class indices must be 0..{len(names) - 1}, each once")
    return [names[index] for index in range(len(names))]


def _numbered_classes(samples, relabel):
    """Classes named by their label numbers, for a list without a class map: 0..(largest label), or, with
    `relabel`, the sorted labels renumbered 0..K-1 as PaddleClas's relabel does. Returns (samples, classes,
    the labels of 0..largest that no sample has)."""
    labels = sorted({label for _, label in samples})
    if relabel:
        new = {label: index for index, label in enumerate(labels)}
        return [(path, new[label]) for path, label in samples], [str(label) for label in labels], []
    unused = sorted(set(range(labels[-1] + 1)) - set(labels))
    return samples, [str(label) for label in range(labels[-1] + 1)], unused


def check_every_class_has_images(dataset: Any) -> None:
    """DataError when a training file list numbers its labels so that some class has no image (labels from 1,
    or skipped numbers): the model would learn empty classes. An evaluation list may lack a class."""
    unused = getattr(dataset, "unused_labels", [])
    if unused:
        labels = sorted({label for _, label in dataset.samples})
        shown = ", ".join(map(str, unused[:8])) + (f" and {len(unused) - 8} more" if len(unused) > 8 else "")
        start = "do not start at 0" if labels[0] > 0 else "skip numbers"
        raise DataError(f"{dataset.list_path}: its labels {start} (no image is labelled {shown}; labels run "
                        f"{labels[0]}..{labels[-1]}), which would train empty classes: number them "
                        f"0..{len(labels) - 1}, add relabel: true to the dataset to renumber them, or name the "
                        "classes with class_id_map_file")


class ImageNetDataset(ImageFiles):
    """PaddleClas's file-list dataset: `cls_label_path` holds lines `relative/path label`, relative to
    `image_root`.

    Args:
        image_root: the folder the listed paths are relative to.
        cls_label_path: the list file. Both resolve against `Global.data_dir` when relative and it is set.
        delimiter: between path and label; default: whitespace, the label being the last field, so that
            paths may hold spaces.
        class_id_map_file: optional lines `0 name` naming the classes (PaddleClas's format); without it the
            classes are 0..(largest label) by number, each of which must have images in a training list
            (`check_every_class_has_images`).
        relabel: renumber the labels found to 0..K-1 in sorted order (PaddleClas's key, for labels that do not
            start at 0 or skip numbers); the class names are then the original labels.
        transforms, split, val_fraction, seed, channels, folder_path, download: as for `ImageFolder`.
    """

    def __init__(self, image_root, cls_label_path, delimiter=None, class_id_map_file=None, relabel=False,
                 transforms=None, split=None, val_fraction=None, seed=0, channels=3, folder_path=None, download=False):
        image_root, list_path = resolve(image_root, folder_path), resolve(cls_label_path, folder_path)
        if not os.path.isfile(list_path):
            raise DataError(f"ImageNetDataset: no list file {list_path} (cls_label_path): lines 'relative/path label'")
        if relabel and class_id_map_file:
            raise DataError(f"ImageNetDataset {list_path}: relabel: true renumbers the labels, while class_id_map_file "
                            "names them as the list has them: give one of the two")
        classes = _read_class_map(resolve(class_id_map_file, folder_path)) if class_id_map_file else None
        samples = []
        for number, line in enumerate(read_text(list_path, DataError, "file list").split("\n"), 1):
            fields = line.rsplit(delimiter, 1) if delimiter else line.strip().rsplit(None, 1)
            if not line.strip():
                continue
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip().isdigit():
                raise DataError(f"{list_path}:{number}: expected 'relative/path label' (label an integer >= 0), "
                                f"got {line.strip()!r}")
            path, label = os.path.join(image_root, fields[0].strip()), int(fields[1])
            if classes is not None and label >= len(classes):
                raise DataError(f"{list_path}:{number}: label {label} is outside 0..{len(classes) - 1}, the "
                                f"{len(classes)} classes of {class_id_map_file}")
            if not os.path.isfile(path):
                raise DataError(f"{list_path}:{number}: {path} does not exist")
            samples.append((path, label))
        if not samples:
            raise DataError(f"{list_path}: lists no images")
        self.list_path, self.unused_labels = list_path, []
        if classes is None:
            samples, classes, self.unused_labels = _numbered_classes(samples, relabel)
        where = f"ImageNetDataset {list_path}"
        super().__init__(_holdout(samples, split, val_fraction, seed, where), classes, transforms, channels, where)
