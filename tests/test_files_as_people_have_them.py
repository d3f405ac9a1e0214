"""Image and label files as people have them, not as the other tests write them: phone photos stored sideways
with an EXIF orientation, label files saved on Windows or by spreadsheets, PaddleClas's own config sections."""
import io
import json
import locale
import os

import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

from paddle_cls import RunnerV3
from paddle_cls.config import load_config
from paddle_cls.data.folder import ImageFolder, ImageNetDataset, read_image
from paddle_cls.data.loader import build_dataset, build_loader, check_batches, class_names, loader_settings
from paddle_cls.engine import train
from paddle_cls.errors import ConfigError, DataError
from paddle_cls.serving.uploads import decode_upload

ORIENTATION = 0x0112


def _quadrants(width, height):
    """An RGB image whose four quadrants are red, green, blue and white (top-left, top-right, bottom-left, ...)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:height // 2, :width // 2] = (255, 0, 0)
    pixels[:height // 2, width // 2:] = (0, 255, 0)
    pixels[height // 2:, :width // 2] = (0, 0, 255)
    pixels[height // 2:, width // 2:] = (255, 255, 255)
    return Image.fromarray(pixels)


def _stored(image, orientation, extension):
    """The bytes of `image` as a camera stores it, with an EXIF orientation tag."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF"}[extension],
               exif=exif.tobytes(), **({"quality": 95} if extension == "jpg" else {}))
    return buffer.getvalue()


def _corner_colours(image):
    """The colours at the four corners (top-left, top-right, bottom-left, bottom-right), rounded."""
    pixels = np.asarray(image.convert("RGB")).astype(int)
    height, width = pixels.shape[:2]
    return [tuple(int(round(v / 255)) for v in pixels[y, x]) for y, x in
            ((2, 2), (2, width - 3), (height - 3, 2), (height - 3, width - 3))]


RED, GREEN, BLUE, WHITE = (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)
# orientation -> what a viewer shows of a stored 64x32 (w x h) image: its size and corner colours
UPRIGHT = {
    1: ((64, 32), [RED, GREEN, BLUE, WHITE]),
    6: ((32, 64), [BLUE, RED, WHITE, GREEN]),    # a portrait phone photo: rotate 90 degrees clockwise to view
    8: ((32, 64), [GREEN, WHITE, RED, BLUE]),    # held the other way
    3: ((64, 32), [WHITE, BLUE, GREEN, RED]),    # upside down
    2: ((64, 32), [GREEN, RED, WHITE, BLUE]),    # mirrored (front cameras)
}


@pytest.mark.parametrize("orientation, extension", [(6, "jpg"), (8, "jpg"), (3, "png"), (2, "webp"), (6, "tif"),
                                                    (1, "jpg")])
def test_photos_are_read_as_viewers_show_them_from_files_and_uploads(tmp_path, orientation, extension):
    data = _stored(_quadrants(64, 32), orientation, extension)
    path = tmp_path / f"photo.{extension}"
    path.write_bytes(data)
    size, corners = UPRIGHT[orientation]
    for image in (read_image(str(path)), decode_upload(data, "photo", 3, 10_000_000)):
        assert image.size == size and image.mode == "RGB"
        assert _corner_colours(image) == corners
    grey = read_image(str(path), channels=1)
    assert grey.size == size and grey.mode == "L"


def test_a_12_megapixel_portrait_photo_is_read_upright_from_a_file_and_an_upload(tmp_path):
    """A phone's portrait photo at its real size: stored 4032 x 3024 with Orientation=6, a few MB."""
    data = _stored(_quadrants(4032, 3024), 6, "jpg")
    path = tmp_path / "IMG_0001.JPG"
    path.write_bytes(data)
    assert len(data) > 100_000
    for image in (read_image(str(path)), decode_upload(data, "IMG_0001.JPG", 3, 20_000_000)):
        assert image.size == (3024, 4032)
        assert _corner_colours(image) == UPRIGHT[6][1]


def test_an_image_folder_trains_on_upright_photos(tmp_path):
    """The dataset (and so training, check-data, eval, predict and export's check images) sees 32x64."""
    for name in ("portrait", "landscape"):
        os.makedirs(tmp_path / name)
    (tmp_path / "portrait" / "phone.jpg").write_bytes(_stored(_quadrants(64, 32), 6, "jpg"))
    _quadrants(32, 64).save(tmp_path / "landscape" / "scan.png")
    dataset = ImageFolder(str(tmp_path))
    for index in range(2):
        image, _ = dataset[index]
        assert image.size == (32, 64)


# ---- label files as Windows and spreadsheets write them -------------------------------------------------------

def _list_folder(root, labels, list_text=None, encoding="utf-8"):
    """Images img_<i>.png under root/images and a file list 'images/img_<i>.png <label>' for `labels`."""
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    lines = []
    for index, label in enumerate(labels):
        Image.new("RGB", (12, 10), (index * 20 % 255, 0, 0)).save(os.path.join(root, "images", f"img_{index}.png"))
        lines.append(f"images/img_{index}.png {label}")
    with open(os.path.join(root, "list.txt"), "w", encoding=encoding, newline="") as file:
        file.write(list_text if list_text is not None else "\r\n".join(lines) + "\r\n")
    return os.path.join(root, "list.txt")


def _write(path, text, encoding, newline="\r\n"):
    with open(path, "w", encoding=encoding, newline=newline) as file:
        file.write(text)
    return str(path)


def test_a_class_map_and_a_file_list_saved_with_a_bom_and_crlf_are_read(tmp_path):
    list_path = _list_folder(str(tmp_path), [0, 1, 1, 0])
    _write(list_path, open(list_path, encoding="utf-8").read(), "utf-8-sig")  # Notepad's "UTF-8 with BOM"
    class_map = _write(tmp_path / "classes.txt", "0 rose\n1 tulip\n", "utf-8-sig")
    dataset = ImageNetDataset(str(tmp_path), list_path, class_id_map_file=class_map)
    assert dataset.classes == ["rose", "tulip"]
    assert [os.path.basename(path) for path, _ in dataset.samples] == [f"img_{i}.png" for i in range(4)]
    assert [label for _, label in dataset.samples] == [0, 1, 1, 0]
    tabbed = _write(tmp_path / "tabbed.txt", "0\tdaisy\n1\twild rose\n", "utf-8")  # a spreadsheet's export
    assert ImageNetDataset(str(tmp_path), list_path, class_id_map_file=tabbed).classes == ["daisy", "wild rose"]


def test_a_class_map_in_gbk_is_read_as_paddleclas_reads_it_or_refused_in_one_line(tmp_path, monkeypatch):
    list_path = _list_folder(str(tmp_path), [0, 1])
    class_map = _write(tmp_path / "classes.txt", "0 玫瑰\n1 郁金香\n", "gbk")  # Chinese names saved on Windows
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "UTF-8")
    with pytest.raises(DataError, match=r"classes.txt:1: the class map is not UTF-8 \(byte 0xb9; GBK.*iconv -f GBK"):
        ImageNetDataset(str(tmp_path), list_path, class_id_map_file=class_map)
    # on a Chinese Windows, whose own encoding is GBK, PaddleClas's open(path) reads it: so do we
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "cp936")
    assert ImageNetDataset(str(tmp_path), list_path, class_id_map_file=class_map).classes == ["玫瑰", "郁金香"]


def test_a_config_saved_in_gbk_or_with_a_bom_is_read_or_refused_in_one_line(tmp_path, monkeypatch):
    text = "# 训练配置\nGlobal:\n  epochs: 2\nArch: {name: MyNet}\nOptimizer: {name: Adam}\n" \
           "DataLoader:\n  Train:\n    dataset: {name: Cifar10}\n"
    assert load_config(_write(tmp_path / "bom.yml", text, "utf-8-sig"))["Global"]["epochs"] == 2
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "UTF-8")
    with pytest.raises(ConfigError, match=r"gbk.yml:1: the config file is not UTF-8"):
        load_config(_write(tmp_path / "gbk.yml", text, "gbk"))


@pytest.mark.parametrize("labels, relabelled, message", [
    ([1, 2, 3, 1, 2, 3], [0, 1, 2, 0, 1, 2], r"do not start at 0 \(no image is labelled 0; labels run 1..3\)"),
    ([0, 2, 5, 0, 2, 5], [0, 1, 2, 0, 1, 2], r"skip numbers \(no image is labelled 1, 3, 4; labels run 0..5\)"),
])
def test_training_labels_that_leave_empty_classes_are_refused_or_relabelled(tmp_path, labels, relabelled, message):
    list_path = _list_folder(str(tmp_path), labels)
    dataset = {"name": "ImageNetDataset", "image_root": str(tmp_path), "cls_label_path": list_path,
               "transforms": [{"name": "Resize", "size": [8, 8]}, {"name": "ToTensor"}]}
    config = {"Global": {"device": "cpu", "image_shape": [3, 8, 8], "output_dir": str(tmp_path / "out")},
              "Arch": {"name": "MyNet"}, "Optimizer": {"name": "Adam"},
              "DataLoader": {"Train": {"dataset": dataset}, "Test": {"dataset": dataset}}}
    (tmp_path / "list.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(DataError, match=r"list.txt: its labels " + message + r".*add relabel: true"):
        class_names(load_config(str(tmp_path / "list.yml")))
    relabel = load_config(str(tmp_path / "list.yml"), ["DataLoader.Train.dataset.relabel=true",
                                                       "DataLoader.Test.dataset.relabel=true"])
    assert class_names(relabel) == tuple(str(label) for label in sorted(set(labels)))
    samples = ImageNetDataset(str(tmp_path), list_path, relabel=True).samples  # PaddleClas's key
    assert [label for _, label in samples] == relabelled


def test_an_evaluation_list_may_lack_a_class(tmp_path):
    train = _list_folder(str(tmp_path / "train"), [0, 1, 2, 3])
    test = _list_folder(str(tmp_path / "test"), [0, 1, 3])  # no image of class 2 in this small test list
    dataset = {"name": "ImageNetDataset", "transforms": [{"name": "Resize", "size": [8, 8]}, {"name": "ToTensor"}]}
    config = {"Global": {"device": "cpu", "image_shape": [3, 8, 8], "output_dir": str(tmp_path / "out")},
              "Arch": {"name": "MyNet"}, "Optimizer": {"name": "Adam"},
              "DataLoader": {
                  "Train": {"dataset": dict(dataset, image_root=str(tmp_path / "train"), cls_label_path=train)},
                  "Test": {"dataset": dict(dataset, image_root=str(tmp_path / "test"), cls_label_path=test)}}}
    (tmp_path / "lists.yml").write_text(yaml.safe_dump(config))
    assert class_names(load_config(str(tmp_path / "lists.yml"))) == ("0", "1", "2", "3")


# ---- PaddleClas sections as PaddleClas publishes them --------------------------------------------------------

# DataLoader sections copied unchanged from PaddleClas's published configs (release 2.5/2.6)
RESNET50_VD_QUICK_START = """
  Train:
    dataset:
      name: ImageNetDataset
      image_root: ./dataset/flowers102/
      cls_label_path: ./dataset/flowers102/train_list.txt
      transform_ops:
        - DecodeImage:
            to_rgb: True
            channel_first: False
        - RandCropImage:
            size: 224
        - RandFlipImage:
            flip_code: 1
        - NormalizeImage:
            scale: 1.0/255.0
            mean: [0.485, 0.456, 0.406]
            std: [0.229, 0.224, 0.225]
            order: ''

    sampler:
      name: DistributedBatchSampler
      batch_size: 32
      drop_last: False
      shuffle: True
    loader:
      num_workers: 4
      use_shared_memory: True

  Eval:
    dataset: 
      name: ImageNetDataset
      image_root: ./dataset/flowers102/
      cls_label_path: ./dataset/flowers102/val_list.txt
      transform_ops:
        - DecodeImage:
            to_rgb: True
            channel_first: False
        - ResizeImage:
            resize_short: 256
        - CropImage:
            size: 224
        - NormalizeImage:
            scale: 1.0/255.0
            mean: [0.485, 0.456, 0.406]
            std: [0.229, 0.224, 0.225]
            order: ''
    sampler:
      name: DistributedBatchSampler
      batch_size: 64
      drop_last: False
      shuffle: False
    loader:
      num_workers: 4
      use_shared_memory: True
"""  # noqa: W291 (the trailing space after `dataset:` is PaddleClas's)
# ppcls/configs/quick_start/new_user/ShuffleNetV2_x0_25.yaml differs in its batch size; the retrieval configs
# add relabel (GeneralRecognition: labels of products that do not start at 0)
SHUFFLENET_NEW_USER_TRAIN_SAMPLER = """
    sampler:
      name: DistributedBatchSampler
      batch_size: 256
      drop_last: False
      shuffle: True
"""


def _flowers(root, per_class=3, first_label=0):
    """PaddleClas's flowers102 layout, small: jpg/ images of three classes, train_list.txt and val_list.txt."""
    folder = os.path.join(root, "dataset", "flowers102")
    os.makedirs(os.path.join(folder, "jpg"))
    for split in ("train", "val"):
        lines = []
        for label in range(3):
            for index in range(per_class):
                name = f"jpg/{split}_{label}_{index}.jpg"
                pixels = np.full((300 + 20 * index, 260, 3), 60 * label + 30, np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, name))
                lines.append(f"{name} {label + first_label}")
        with open(os.path.join(folder, f"{split}_list.txt"), "w") as file:
            file.write("\n".join(lines) + "\n")
    return root


def _paddleclas_config(tmp_path, loader_text, *overrides):
    data = yaml.safe_load(loader_text)
    config = {"Global": {"device": "cpu", "epochs": 1, "output_dir": str(tmp_path / "out"), "log_steps": 0,
                         "image_shape": [3, 224, 224], "eval_per_epoch": True, "progress": False,
                         "data_dir": str(tmp_path)},
              "Arch": {"name": "resnet18", "num_classes": 3},
              "Optimizer": {"name": "Momentum", "learning_rate": 0.01},
              "DataLoader": data}
    path = tmp_path / "paddleclas.yml"
    path.write_text(yaml.safe_dump(config))
    return load_config(str(path), list(overrides))


def test_a_paddleclas_dataloader_pastes_in_unchanged_and_gives_chw_batches(tmp_path):
    _flowers(str(tmp_path))
    config = _paddleclas_config(tmp_path, RESNET50_VD_QUICK_START)
    train_settings, eval_settings = loader_settings(config, "Train"), loader_settings(config, "Eval")
    assert (train_settings["batch_size"], train_settings["shuffle"], train_settings["drop_last"]) == (32, True, False)
    assert (eval_settings["batch_size"], eval_settings["shuffle"]) == (64, False)
    assert config["DataLoader"]["Train"]["num_workers"] == 4
    for split in ("Train", "Eval"):
        images, labels = next(iter(build_loader(config, split)))
        assert images.shape == [9, 3, 224, 224] and images.dtype == paddle.float32, split
    # the same section with PaddleClas's ToCHWImage written out is transposed once, not twice
    explicit = yaml.safe_load(RESNET50_VD_QUICK_START)
    explicit["Eval"]["dataset"]["transform_ops"].append({"ToCHWImage": None})
    config["DataLoader"]["Eval"]["dataset"] = explicit["Eval"]["dataset"]
    assert build_dataset(config, "Eval")[0][0].shape == (3, 224, 224)


def test_paddleclas_samplers_and_relabel_paste_in_or_are_refused_in_one_line(tmp_path):
    _flowers(str(tmp_path), first_label=1)  # a product list numbered from 1
    section = yaml.safe_load(RESNET50_VD_QUICK_START)
    section["Train"]["sampler"] = yaml.safe_load(SHUFFLENET_NEW_USER_TRAIN_SAMPLER)["sampler"]
    for split in ("Train", "Eval"):
        section[split]["dataset"]["relabel"] = True
    config = _paddleclas_config(tmp_path, yaml.safe_dump(section))
    assert loader_settings(config, "Train")["batch_size"] == 256
    dataset = build_dataset(config, "Train")
    assert dataset.classes == ["1", "2", "3"] and {label for _, label in dataset.samples} == {0, 1, 2}
    section["Train"]["sampler"]["name"] = "PKSampler"
    with pytest.raises(ConfigError, match=r"DataLoader.Train.sampler.name: PKSampler is not supported"):
        _paddleclas_config(tmp_path, yaml.safe_dump(section))
    section["Train"]["sampler"]["name"] = "DistributedBatchSampler"
    section["Train"]["batch_size"] = 16
    with pytest.raises(ConfigError, match=r"DataLoader.Train.batch_size: 16 and DataLoader.Train.sampler.batch_size: "
                                          r"256 differ"):
        _paddleclas_config(tmp_path, yaml.safe_dump(section))


@pytest.mark.slow
def test_a_paddleclas_quick_start_section_trains_at_224_px(tmp_path):
    _flowers(str(tmp_path), per_class=2)
    results = train(_paddleclas_config(tmp_path, RESNET50_VD_QUICK_START, "Global.eval_per_epoch=false",
                                       "DataLoader.Train.num_workers=0", "DataLoader.Eval.num_workers=0"))
    assert results["best_dev_score"] is None and os.path.isfile(tmp_path / "out" / "last_model.pdparams")
    assert json.load(open(tmp_path / "out" / "classes.json")) == ["0", "1", "2"]


# ---- splits too small for a batch ------------------------------------------------------------------------------

def _three_per_class(root):
    for name in ("cat", "dog"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for index in range(3):
            Image.new("RGB", (40, 30), (index * 60, 0, 0)).save(os.path.join(root, name, f"{index}.jpg"))
    return root


def _small_config(tmp_path, *overrides, engine="runner"):
    folder = _three_per_class(str(tmp_path / "pets"))
    to_input = [{"name": "Resize", "size": [32, 32]}, {"name": "ToTensor"}]
    config = {"Global": {"device": "cpu", "epochs": 1, "output_dir": str(tmp_path / "out"), "log_steps": 0,
                         "progress": False, "engine": engine},
              "Arch": {"name": "MyNet"}, "Optimizer": {"name": "Adam"},
              "DataLoader": {"Train": {"dataset": {"name": "ImageFolder", "root": folder, "transforms": to_input},
                                       "batch_size": 32, "drop_last": True},
                             "Test": {"dataset": {"name": "ImageFolder", "root": folder, "transforms": to_input},
                                      "batch_size": 4}}}
    path = tmp_path / "small.yml"
    path.write_text(yaml.safe_dump(config))
    return load_config(str(path), list(overrides))


@pytest.mark.parametrize("engine", ["runner", "hapi"])
def test_a_split_that_gives_no_batch_stops_before_training_in_one_line(tmp_path, engine):
    config = _small_config(tmp_path, engine=engine)
    with pytest.raises(ConfigError, match=r"DataLoader.Train: 6 samples make no batch of batch_size 32 with "
                                          r"drop_last: true; set batch_size to at most 6, or drop_last: false"):
        train(config)
    assert not os.path.exists(tmp_path / "out")  # nothing written
    test_only = _small_config(tmp_path, "DataLoader.Train.drop_last=false", "DataLoader.Test.drop_last=true",
                              "DataLoader.Test.batch_size=8", engine=engine)
    with pytest.raises(ConfigError, match=r"DataLoader.Test: 6 samples make no batch of batch_size 8"):
        train(test_only)


def test_data_parallel_splits_too_small_for_the_processes_stop_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "8")
    with pytest.raises(ConfigError, match=r"DataLoader.Train: 6 samples for 8 data-parallel processes"):
        check_batches(_small_config(tmp_path, "DataLoader.Train.drop_last=false"))
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    with pytest.raises(ConfigError, match=r"DataLoader.Train: 6 samples \(3 per process of 2\) make no batch of "
                                          r"batch_size 4"):
        check_batches(_small_config(tmp_path, "DataLoader.Train.batch_size=4"))
    check_batches(_small_config(tmp_path, "DataLoader.Train.batch_size=3"))


def test_the_course_runner_refuses_a_loader_without_batches(tmp_path):
    loader = paddle.io.DataLoader(paddle.io.TensorDataset([paddle.zeros([3, 4]), paddle.zeros([3, 1], "int64")]),
                                  batch_size=8, drop_last=True)
    model = paddle.nn.Linear(4, 2)
    runner = RunnerV3(model, paddle.optimizer.SGD(parameters=model.parameters()), paddle.nn.CrossEntropyLoss(), None)
    with pytest.raises(ConfigError, match=r"train_loader gives no batch"):
        runner.train(loader, num_epochs=1)
