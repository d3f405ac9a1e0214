"""Real images for the own-images tests: scikit-learn's handwritten digits written as image files, in class
folders whose sorted names are not in numeric order, in many modes, sizes and formats."""
import os

import numpy as np
import yaml
from PIL import Image

from paddle_cls.config import load_config

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")  # sorted: eight, five, ...
# (format, mode) pairs, used in turn: grey and colour, palette, alpha, 16-bit, CMYK
KINDS = (("png", "L"), ("jpg", "RGB"), ("png", "P"), ("png", "RGBA"), ("jpeg", "L"), ("PNG", "I;16"),
         ("jpg", "CMYK"), ("bmp", "RGB"), ("webp", "RGB"), ("tif", "RGB"))


def digit_image(pixels, index):
    """One 8x8 digit (values 0..16) as a PIL image of the kind and size chosen by `index`."""
    extension, mode = KINDS[index % len(KINDS)]
    grey = (pixels * 15.9375).astype(np.uint8)
    width, height = 16 + 8 * (index % 4), 16 + 8 * ((index // 4) % 3)  # 16..40 wide, 16..32 high
    image = Image.fromarray(grey).resize((width, height), Image.BILINEAR)
    if mode == "I;16":
        return extension, Image.fromarray(np.asarray(image, dtype=np.uint16) * 257)
    if mode == "P":
        return extension, image.convert("RGB").convert("P", palette=Image.ADAPTIVE)
    return extension, image.convert(mode)


def write_digits(root, indices, images, labels, prefix=""):
    """Write `images[indices]` under `root/<class name>/` (every fifth one a level deeper); returns the paths."""
    paths = []
    for index in indices:
        extension, image = digit_image(images[index], index)
        folder = os.path.join(root, NAMES[labels[index]], "more" if index % 5 == 0 else "")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{prefix}{index:04d}.{extension}")
        image.save(path)
        paths.append(path)
    return paths


def digits_folders(root):
    """`root/train/<class>/...` (1,500 digits) and `root/test/<class>/...` (the other 297), plus hidden files
    that must be ignored. Returns (train folder, test folder, test labels in the folder's class order)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.RandomState(0).permutation(len(digits.target))
    train, test = os.path.join(root, "train"), os.path.join(root, "test")
    write_digits(train, order[:1500], digits.images, digits.target)
    write_digits(test, order[1500:], digits.images, digits.target)
    open(os.path.join(train, "zero", ".DS_Store"), "wb").write(b"\0\1")
    open(os.path.join(train, "one", "._0001.png"), "wb").write(b"not an image")  # macOS resource fork
    os.makedirs(os.path.join(train, ".ipynb_checkpoints"), exist_ok=True)
    return train, test


TO_INPUT = [{"name": "Resize", "size": [32, 32]}, {"name": "ToTensor"},
            {"name": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}]


def digits_config(tmp_path, digits, *overrides, epochs=3, **sections):
    """A config training MyNet on the digits folders under `digits`, loaded with `overrides` (-o style); each
    keyword updates that config section."""
    config = {
        "Global": {"device": "cpu", "seed": 100, "epochs": epochs, "output_dir": str(tmp_path / "out"),
                   "data_dir": digits, "log_steps": 0, "eval_per_epoch": True, "progress": False},
        "Arch": {"name": "MyNet"},
        "Optimizer": {"name": "Adam", "learning_rate": 0.002},
        "DataLoader": {
            "Train": {"dataset": {"name": "ImageFolder", "root": "train", "split": "train", "val_fraction": 0.2,
                                  "transforms": TO_INPUT}, "batch_size": 32, "shuffle": True},
            "Eval": {"dataset": {"name": "ImageFolder", "root": "train", "split": "val", "val_fraction": 0.2,
                                 "transforms": TO_INPUT}, "batch_size": 64},
            "Test": {"dataset": {"name": "ImageFolder", "root": "test", "transforms": TO_INPUT}, "batch_size": 64},
        },
    }
    for section, values in sections.items():
        config[section].update(values)
    path = tmp_path / "digits.yml"
    path.write_text(yaml.safe_dump(config))
    return load_config(str(path), list(overrides))
