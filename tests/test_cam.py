"""Grad-CAM (`paddle-cls predict --cam`): on a task where the answer is known, images whose class is the colour
of a small patch at a random place, the map's peak falls inside the patch; the default layer of every kind of
shipped model; `--cam-layer` by name, and its errors; the overlay files, on the picture as the user sees it."""
import os

import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

from paddle_cls.cli import predict_main
from paddle_cls.config import load_config
from paddle_cls.deploy.cam import GradCAM, ImageExplainer, feature_maps
from paddle_cls.deploy.overlay import MAX_OVERLAY_SIDE, input_box, overlay
from paddle_cls.deploy.trained import load_trained_model
from paddle_cls.engine import train
from paddle_cls.errors import ConfigError
from paddle_cls.models import MODELS

COLOURS = {"blue": (40, 60, 230), "green": (30, 200, 30), "red": (230, 30, 30)}  # sorted: ImageFolder's order
SIDE, PATCH = 32, 6


def patch_images(count, seed):
    """uint8 [N, 32, 32, 3] grey noise, each with a 6x6 patch of its class's colour at a random place; returns
    the images, the labels (indices into COLOURS) and each patch's (top, left)."""
    rng = np.random.RandomState(seed)
    grey = rng.randint(40, 216, (count, SIDE, SIDE, 1)).astype(np.uint8)
    images = np.repeat(grey, 3, axis=3)
    labels = rng.randint(len(COLOURS), size=count)
    places = rng.randint(0, SIDE - PATCH + 1, (count, 2))
    for image, label, (top, left) in zip(images, labels, places):
        image[top:top + PATCH, left:left + PATCH] = list(COLOURS.values())[label]
    return images, labels, places


class PatchCNN(paddle.nn.Layer):
    """A small all-convolutional network: three 3x3 convolutions (one 2x2 max-pool), global average pooling."""

    def __init__(self, num_classes=3):
        super().__init__()
        relu = paddle.nn.ReLU
        self.features = paddle.nn.Sequential(
            paddle.nn.Conv2D(3, 16, 3, padding=1), relu(), paddle.nn.Conv2D(16, 32, 3, padding=1), relu(),
            paddle.nn.MaxPool2D(2), paddle.nn.Conv2D(32, 32, 3, padding=1), relu())
        self.pool = paddle.nn.AdaptiveAvgPool2D(1)
        self.fc = paddle.nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(paddle.flatten(self.pool(self.features(x)), 1))


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory):
    """`(config path, config, test images, labels, places)` of PatchCNN trained on the patch task (PatchCNN is
    added to the models by name meanwhile, as a user's own network would be)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(MODELS, "PatchCNN", PatchCNN)
        yield _patch_run(tmp_path_factory.mktemp("patches"))


def _patch_run(root):
    for split, count, seed in (("train", 600, 0), ("test", 90, 1)):
        images, labels, places = patch_images(count, seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / list(COLOURS)[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:03d}.png")
        if split == "test":
            test = (images, labels, places)
    steps = [{"name": "Resize", "size": [SIDE, SIDE]}, {"name": "ToTensor"},
             {"name": "Normalize", "mean": 0.5, "std": 0.5}]
    config = {"Global": {"device": "cpu", "seed": 0, "epochs": 4, "output_dir": str(root / "out"),
                         "data_dir": str(root), "log_steps": 0, "progress": False},
              "Arch": {"name": "PatchCNN"}, "Optimizer": {"name": "Adam", "learning_rate": 0.005},
              "DataLoader": {"Train": {"dataset": {"name": "ImageFolder", "root": "train", "transforms": steps},
                                       "batch_size": 32, "shuffle": True},
                             "Test": {"dataset": {"name": "ImageFolder", "root": "test", "transforms": steps},
                                      "batch_size": 90}}}
    path = root / "patches.yml"
    path.write_text(yaml.safe_dump(config))
    config = load_config(str(path), [])
    train(config)
    return str(path), config, *test


@pytest.mark.slow  # trains the patch task (CI's Paddle 2.6 pass runs the rest)
def test_the_cam_peak_falls_inside_the_patch(patch_run):
    _, config, images, labels, places = patch_run
    model = load_trained_model(config)
    cam = GradCAM(model, [3, SIDE, SIDE])
    maps, logits = cam((images.transpose(0, 3, 1, 2).astype(np.float32) / 255 - 0.5) / 0.5)
    assert (logits.argmax(axis=1) == labels).mean() > 0.9  # the task is learnt
    peaks = [np.unravel_index(np.argmax(heat), heat.shape) for heat in maps]
    inside = [top <= y < top + PATCH and left <= x < left + PATCH for (y, x), (top, left) in zip(peaks, places)]
    share = float(np.mean(inside))
    print(f"Grad-CAM peak inside the patch for {share:.0%} of {len(images)} test images (layer {cam.layer})")
    assert share >= 0.8


@pytest.mark.slow  # trains the patch task (CI's Paddle 2.6 pass runs the rest)
def test_predict_cam_writes_an_overlay_of_each_picture_as_the_user_sees_it(patch_run, tmp_path):
    path, config, images, _, _ = patch_run
    upright = tmp_path / "sideways.jpg"  # stored 24 wide and 40 high, shown turned: 40 wide and 24 high
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(images[0]).resize((24, 40)).save(upright, exif=exif)
    plain = tmp_path / "plain.png"
    Image.fromarray(images[1]).save(plain)
    assert predict_main(["-c", path, str(upright), str(plain), "--index", "2", "--cam"]) == 0
    folder = os.path.join(config["Global"]["output_dir"], "cam")
    assert sorted(os.listdir(folder)) == ["plain.png", "sideways.png", "test_2.png"]
    assert Image.open(os.path.join(folder, "sideways.png")).size == (40, 24)
    drawn = np.asarray(Image.open(os.path.join(folder, "plain.png")))
    assert drawn.shape == (SIDE, SIDE, 3) and np.abs(drawn.astype(int) - images[1]).mean() > 10


@pytest.mark.slow  # trains the patch task (CI's Paddle 2.6 pass runs the rest)
def test_predict_cam_draws_a_phone_photo_at_the_long_side_limit(patch_run, tmp_path):
    path, config, images, _, _ = patch_run
    photo = tmp_path / "IMG_0001.jpg"
    Image.fromarray(images[0]).resize((3000, 2000), Image.NEAREST).save(photo)
    assert predict_main(["-c", path, str(photo), "--cam"]) == 0
    drawn = Image.open(os.path.join(config["Global"]["output_dir"], "cam", "IMG_0001.png"))
    assert drawn.size == (MAX_OVERLAY_SIDE, 683)  # as served; it was drawn at 3000 x 2000


@pytest.mark.slow  # trains the patch task (CI's Paddle 2.6 pass runs the rest)
def test_predict_cam_places_a_centre_crops_map_on_the_full_photo(patch_run, tmp_path):
    # steps that crop first see the photo's own pixels (no reduced decode): the map covers the central 32 x 32
    # of the 4000 x 3000 photo, 8 of the overlay's 1,024 columns (a half-scale decode put it over 16)
    path, config, _, _, _ = patch_run
    cropping = yaml.safe_load(open(path))
    cropping["DataLoader"]["Test"]["dataset"]["transforms"] = [
        {"name": "CenterCrop", "size": SIDE}, {"name": "ToTensor"}, {"name": "Normalize", "mean": 0.5, "std": 0.5}]
    cropped = tmp_path / "crop_first.yml"
    cropped.write_text(yaml.safe_dump(cropping))
    photo = tmp_path / "IMG_0002.jpg"
    Image.new("RGB", (4000, 3000), (128, 128, 128)).save(photo, quality=95)
    assert predict_main(["-c", str(cropped), str(photo), "--cam"]) == 0
    drawn = np.asarray(Image.open(os.path.join(config["Global"]["output_dir"], "cam", "IMG_0002.png"))).astype(int)
    changed = np.flatnonzero((np.abs(drawn[drawn.shape[0] // 2] - 128) > 8).any(axis=1))
    assert drawn.shape[:2] == (768, MAX_OVERLAY_SIDE) and 6 <= len(changed) <= 10, changed


@pytest.mark.slow  # trains the patch task (CI's Paddle 2.6 pass runs the rest)
def test_cam_layer_errors_are_one_line_listing_the_valid_layers(patch_run, capsys):
    path, config, _, _, _ = patch_run
    image = os.path.join(config["Global"]["data_dir"], "test", "red", os.listdir(
        os.path.join(config["Global"]["data_dir"], "test", "red"))[0])
    for layer in ("conv9", "fc"):  # no such layer; a layer without a feature map
        assert predict_main(["-c", path, image, "--cam-layer", layer]) == 2
        error = capsys.readouterr().err.strip()
        assert error == f"error: --cam-layer {layer}: PatchCNN has no such layer making a 4-D feature map; " \
                        "valid: features.0, features.1, features.2, features.3, features.4, features.5, features.6, " \
                        "features"
    with pytest.raises(ConfigError, match=r"--cam-layer fc1: LeNet has no such .*; valid: conv1, max_pool1, conv2, "
                                          r"max_pool2, conv3$"):
        GradCAM(MODELS["LeNet"](), [1, 28, 28], "fc1")
    assert predict_main(["-c", path, image, "--cam", "--engine", "inference"]) == 2
    assert "--cam needs the trained dygraph weights" in capsys.readouterr().err
    assert predict_main(["-c", path, image, "--cam-layer", "features.2"]) == 0


@pytest.mark.parametrize("name,shape,layer", [
    ("Model_ResNet18", [3, 64, 64], "net.4"),  # the last stage, 2x2 here
    ("Model_ResNet18", [3, 32, 32], "net.3"),  # its last stage is 1x1 at 32 px: the one before
    ("LeNet", [1, 28, 28], "max_pool2"),  # conv3 makes 1x1 maps
    ("MyNet", [3, 32, 32], "conv3"),
    ("SimpleCNN", [3, 32, 32], "pool"),
    ("CNN", [1, 28, 28], "relu"),  # its shared ReLU, at its second call
    ("resnet18", [3, 64, 64], "layer4"),
    ("vgg11", [3, 64, 64], "features"),  # the Sequential, whose output is its last ReLU's
    ("mobilenet_v3_small", [3, 64, 64], "lastconv"),
    ("densenet121", [3, 64, 64], "batch_norm"),
    ("googlenet", [3, 96, 96], "_ince5b"),
    ("googlenet", [3, 64, 64], "_ince4e"),  # its last inception block is 1x1 at 64 px
    ("squeezenet1_1", [3, 64, 64], "_conv9"),
    ("shufflenet_v2_x0_25", [3, 64, 64], "_last_conv"),
    # at CIFAR's 32 px the last map larger than 1x1 is inside a block: the block is taken, not a conv or branch in it
    ("mobilenet_v2", [3, 32, 32], "features.13"),
    ("shufflenet_v2_x0_25", [3, 32, 32], "3_8"),
    ("mobilenet_v3_small", [3, 32, 32], "blocks.7"),
    ("densenet121", [3, 32, 32], "db_conv_4"),
])
def test_the_default_layer_is_the_last_convolutional_block(name, shape, layer):
    model = MODELS[name](num_classes=3)
    cam = GradCAM(model, shape)
    assert cam.layer == layer and len(cam.map_shape) == 4 and cam.map_shape[2] * cam.map_shape[3] > 1
    maps, logits = cam(np.random.RandomState(0).rand(2, *shape).astype(np.float32))
    assert maps.shape == (2, *shape[1:]) and logits.shape == (2, 3) and 0 <= maps.min() and maps.max() <= 1


def test_a_layer_called_twice_is_taken_at_its_last_feature_map():
    calls = [(name, call) for name, call, _ in feature_maps(MODELS["CNN"](), [1, 28, 28]) if name == "relu"]
    assert calls == [("relu", 0), ("relu", 1)]  # its third call, on the Linear's output, makes no feature map
    assert GradCAM(MODELS["CNN"](), [1, 28, 28], "relu").call == 1


def test_the_map_is_placed_where_resize_and_center_crop_took_the_input():
    steps = {"steps": [{"name": "Resize", "size": 36}, {"name": "CenterCrop", "size": 32}, {"name": "ToTensor"}]}
    # a 72x48 picture: resized to 54x36 (x 0.75), its centre 32x32 cropped from (11, 2)
    np.testing.assert_allclose(input_box(steps, (72, 48)), (11 / 0.75, 2 / 0.75, 43 / 0.75, 34 / 0.75), atol=0.05)
    np.testing.assert_allclose(input_box({"steps": [{"name": "Resize", "size": [32, 32]}]}, (90, 20)),
                               (0, 0, 90, 20), atol=0.05)
    cam = np.zeros((32, 32), np.float32)
    drawn = overlay(np.full((48, 72, 3), 128, np.uint8), cam, input_box(steps, (72, 48)))
    assert (drawn[:, :14] == 128).all() and (drawn[:, 58:] == 128).all()  # cropped away: left as it was
    assert (drawn[5:40, 16:56] != 128).any(axis=2).all()  # under the map: coloured


@pytest.mark.slow  # trains the patch task (CI's Paddle 2.6 pass runs the rest)
def test_a_served_overlay_of_a_large_photo_is_shrunk_to_its_long_side_limit(patch_run):
    _, config, images, labels, _ = patch_run
    explainer = ImageExplainer(config)
    photo = Image.fromarray(images[0]).resize((3000, 2000), Image.NEAREST)  # a phone photo's size, the test picture
    drawn, index = explainer(photo)
    assert drawn.shape == (683, MAX_OVERLAY_SIDE, 3) and index == labels[0]
    small, _ = explainer(Image.fromarray(images[0]))
    assert small.shape == (*images[0].shape[:2], 3)  # a picture under the limit keeps its size
