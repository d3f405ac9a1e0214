"""Data-loading speed: building CIFAR-10's training split (ours against the course's method), and a folder of
your own photos (12 MP JPEGs, as phones take them) through the image-file loader."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from typing import List, Sequence

import numpy as np
from PIL import Image

from .training import images_per_second

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


PHONE_SIZE = (4032, 3024)


def phone_photos(count: int = 8, seed: int = 0) -> List[bytes]:
    """`count` 12 MP JPEGs (4032 x 3024, quality 92, 3-5 MB) as phones take them: random crops of real
    photographs (scikit-learn's sample images and matplotlib's grace_hopper.jpg) at the phone's size, with
    sensor-like noise (without it a blown-up photo compresses to a fraction of a real one's size)."""
    import matplotlib
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(pixels) for pixels in load_sample_images().images]
    sources.append(Image.open(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data",
                                           "grace_hopper.jpg")).convert("RGB"))
    rng = np.random.RandomState(seed)
    photos = []
    for index in range(count):
        source = sources[index % len(sources)]
        width, height = source.size
        left, top = rng.randint(width // 5), rng.randint(height // 5)
        crop = source.crop((left, top, left + 4 * width // 5, top + 4 * height // 5)).resize(PHONE_SIZE, Image.BICUBIC)
        pixels = np.asarray(crop, np.int16) + rng.randint(-12, 13, (PHONE_SIZE[1], PHONE_SIZE[0], 3), np.int16)
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
        photos.append(buffer.getvalue())
    return photos


def _peak_rss_child(code):
    """Run `code` in a fresh Python; return (its peak RSS over the RSS after `import paddle` in MB, seconds to
    build the split, seconds to read it). `code` sets `built = time.perf_counter()` once the split is built.

    The peak is VmHWM, this process's own high-water mark: ru_maxrss would carry the parent's over fork+exec.
    """
    # numpy.random before paddle: Paddle 2.6 with NumPy 2 crashes or hangs the other way round
    script = ("import os, time\nimport numpy.random\nimport paddle\n"
              "def rss(field):\n"
              "    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(field))\n"
              "base = rss('VmRSS:')\n"
              "start = time.perf_counter()\n" + code +
              "\nprint((rss('VmHWM:') - base) / 1024, built - start, time.perf_counter() - built)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout
    return tuple(float(value) for value in out.split()[-3:])


def loader_table(images_per_batch: int = 10000) -> List[dict]:
    """Building the 40,000-image training split: ours against the course's method (same files)."""
    from paddle_cls.data.synthetic import write_cifar10

    root = tempfile.mkdtemp(prefix="cifar-bench-")
    # Batches of unequal length, packed with data_batch_4 first: the archive is read in one pass and its
    # blocks put in order in place.
    sizes = {f"data_batch_{i}": images_per_batch + offset for i, offset in zip(range(1, 5), (-120, 340, -300, 80))}
    sizes.update(data_batch_5=images_per_batch, test_batch=images_per_batch)
    archive = write_cifar10(tempfile.mkdtemp(prefix="cifar-bench-uneven-"), sizes, archive=True,
                            archive_order=("data_batch_4", "data_batch_3", "data_batch_2", "data_batch_1",
                                           "data_batch_5", "test_batch", "batches.meta"))
    folder = write_cifar10(root, images_per_batch)
    # The course's method (float64 scaling, repeated concatenation, per-sample Normalize); only pickle.load is
    # swapped for the restricted unpickler, which reads the same arrays.
    course = (
        "import numpy as np, os\n"
        "from paddle_cls.utils.safe_pickle import safe_load\n"
        "from paddle.vision.transforms import Normalize\n"
        "def load(batch_id):\n"
        f"    with open(os.path.join({folder!r}, 'data_batch_%d' % batch_id), 'rb') as f:\n"
        "        batch = safe_load(f, 'batch', encoding='latin1')\n"
        "    return np.array(batch['data'].reshape((len(batch['data']), 3, 32, 32)) / 255., dtype='float32'), np.array(batch['labels'])\n"  # noqa: E501 (the course's line)
        "imgs, labels = load(1)\n"
        "for i in range(2, 5):\n"
        "    b, l = load(i); imgs, labels = np.concatenate([imgs, b]), np.concatenate([labels, l])\n"
        "t = Normalize(mean=[0.4914, 0.4822, 0.4465], std=[0.2023, 0.1994, 0.2010], data_format='CHW')\n"
        "class Course(paddle.io.Dataset):\n"
        "    def __getitem__(self, i):\n        return t(imgs[i]), labels[i]\n"
        "    def __len__(self):\n        return len(imgs)\n"
        "built = time.perf_counter()\n"
        "for batch in paddle.io.DataLoader(Course(), batch_size=64, shuffle=True):\n    pass\n"
    )
    ours = (
        "from paddle_cls import CIFAR10Dataset\n"
        f"d = CIFAR10Dataset({folder!r}, 'train')\n"
        "built = time.perf_counter()\n"
        "for batch in paddle.io.DataLoader(d, batch_size=64, shuffle=True):\n    pass\n"
    )
    uneven = (
        "from paddle_cls import CIFAR10Dataset\n"
        f"d = CIFAR10Dataset({archive!r}, 'train')\n"
        "built = time.perf_counter()\n"
        "for batch in paddle.io.DataLoader(d, batch_size=64, shuffle=True):\n    pass\n"
    )
    batched = (
        "from paddle_cls import CIFAR10Dataset\n"
        "from paddle_cls.data.batched import CIFAR10BatchLoader\n"
        f"d = CIFAR10Dataset({folder!r}, 'train')\n"
        "built = time.perf_counter()\n"
        "for images, labels in CIFAR10BatchLoader(d, 64, shuffle=True):\n    pass\n"
    )
    rows = []
    for label, code in (("course", course), ("paddle_cls", ours), ("paddle_cls batched", batched),
                        ("paddle_cls, uneven batches in an archive out of order", uneven)):
        peak, build_seconds, read_seconds = _peak_rss_child(code)
        rows.append({"method": label, "peak_mb": round(peak), "build_s": round(build_seconds, 2),
                     "read_images_per_s": round(4 * images_per_batch / read_seconds)})
    return rows


def folder_loader_table(images: int = 160, batch_size: int = 32, workers: Sequence[int] = (0, 2), model_steps: int = 2,
                        model_batch: int = 16) -> List[dict]:
    """Your own photos: 12 MP JPEGs (`phone_photos`) through configs/imagefolder.yml's training loader (decode at
    the scale RandomResizedCrop 224 allows, crop, flip, colour jitter, normalise) with 0 and 2 workers; beside
    them the same loader decoding every photo in full (as before reduced-scale decoding) and resnet18's training
    speed at 224 px, to show which is the bottleneck."""
    from ..config import load_config
    from ..data.loader import build_loader
    from ..data.samples import base_dataset

    root = tempfile.mkdtemp(prefix="folder-bench-")
    photos = phone_photos(min(images, 8))
    for index in range(images):
        folder = os.path.join(root, "train", f"class{index % 4}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"IMG_{index:04d}.jpg"), "wb") as file:
            file.write(photos[index % len(photos)])
    rows = []
    for count, full in [(count, False) for count in workers] + [(max(workers), True)]:
        config = load_config("imagefolder", [f"Global.data_dir={root}", f"DataLoader.Train.num_workers={count}",
                                           f"DataLoader.Train.batch_size={batch_size}"])
        loader = build_loader(config, "Train")
        if full:
            base_dataset(loader.dataset)[0].decode_size = None
        start, seen = time.perf_counter(), 0
        for batch_images, _ in loader:
            seen += batch_images.shape[0]
        rows.append({"loader": f"{count} workers" + (", full decode (before)" if full else ""),
                     "images_per_s": round(seen / (time.perf_counter() - start), 1)})
    model_speed = images_per_second("resnet18", "bare loop", model_steps, model_batch, warmup=1, repeats=1,
                                    shape=[3, 224, 224])
    rows.append({"loader": "resnet18 training at 224 px", "images_per_s": round(model_speed, 1)})
    return rows
