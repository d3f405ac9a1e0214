"""Phone photos decoded at the size the model needs (`data.reduced_decode`): a 12 MP JPEG bound for a 224 px model
is decoded at 1/8 scale, upright whatever its EXIF orientation, and gives the model nearly the input a full decode
gives; PNGs, small JPEGs and transforms that crop before resizing are decoded in full, as before."""
import io
from pathlib import Path

import numpy as np
import pytest
from paddle.vision import transforms as T
from PIL import Image

from paddle_cls.config import load_config
from paddle_cls.data.folder import ImageFolder, read_image
from paddle_cls.data.preprocessing import build_preprocess, preprocessing_steps
from paddle_cls.data.reduced_decode import decode_size
from paddle_cls.data.transforms import build_transforms
from paddle_cls.serving.uploads import decode_upload

PHONE = (4032, 3024)  # a 12 MP phone photo, stored landscape
ORIENTATION = 0x0112
STD = np.array([0.229, 0.224, 0.225])[:, None, None]  # imagefolder.yml's Normalize: back to 0..255 levels


def _real_photo(index):
    from sklearn.datasets import load_sample_images

    return Image.fromarray(load_sample_images().images[index])  # 640 x 427: china.jpg, flower.jpg


def _jpeg(image, orientation=1, quality=92):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="session")
def phone_photo(tmp_path_factory):
    """scikit-learn's china.jpg (a real photograph) at a phone's 4032 x 3024 with sensor-like noise: ~4 MB."""
    pixels = np.asarray(_real_photo(0).resize(PHONE, Image.BICUBIC), dtype=np.int16)
    pixels = pixels + np.random.RandomState(0).randint(-12, 13, pixels.shape, dtype=np.int16)
    path = tmp_path_factory.mktemp("photos") / "IMG_0001.JPG"
    path.write_bytes(_jpeg(Image.fromarray(pixels.clip(0, 255).astype(np.uint8))))
    return str(path)


@pytest.fixture(scope="module")
def imagefolder_preprocess():
    info = preprocessing_steps(load_config("imagefolder", []))  # Resize 256, CenterCrop 224, ToTensor, Normalize
    return build_preprocess(info), info["steps"]


def _compose(*steps):
    return T.Compose(list(steps))


def test_the_decode_size_is_what_the_first_resize_keeps():
    assert decode_size(_compose(T.Resize(256), T.CenterCrop(224))) == (256, 256)  # short side 256
    assert decode_size(_compose(T.RandomHorizontalFlip(), T.Resize((224, 300)))) == (300, 224)  # (h, w) -> (w, h)
    # the smallest crop of RandomResizedCrop (8% of the area at aspect 3/4 or 4/3) must still hold 224 x 224
    assert decode_size(_compose(T.RandomResizedCrop(224), T.ColorJitter(0.2))) == (915, 915)
    assert decode_size(T.RandomResizedCrop(32, scale=(0.5, 1.0), ratio=(1.0, 1.0))) == (46, 46)
    # steps on the original pixels before any resize: a reduced decode would change them
    assert decode_size(_compose(T.CenterCrop(224), T.Resize(256))) is None
    assert decode_size(_compose(T.RandomRotation(10), T.Resize(256))) is None
    assert decode_size(_compose(T.ToTensor())) is None


def test_a_12mp_photo_gives_nearly_the_full_decodes_model_input(phone_photo, imagefolder_preprocess):
    preprocess, steps = imagefolder_preprocess
    size = decode_size(build_transforms(steps, "steps"))
    reduced = read_image(phone_photo, 3, size)
    assert reduced.size == (504, 378)  # 1/8: the short side 378 still above Resize's 256
    with open(phone_photo, "rb") as file:
        assert decode_upload(file.read(), "IMG_0001.JPG", 3, 8 << 20, size).size == (504, 378)
    levels = np.abs(preprocess(read_image(phone_photo)) - preprocess(reduced)) * STD * 255
    # measured: mean 0.94, max 13 levels of 255 (README, "Photos")
    assert levels.mean() < 1.5 and levels.max() < 24


def test_a_larger_resize_than_an_eighth_gives_gets_a_larger_scale(phone_photo):
    assert read_image(phone_photo, 3, (512, 512)).size == (1008, 756)  # 1/8 would leave 378 < 512: 1/4
    assert read_image(phone_photo, 3, (915, 915)).size == (2016, 1512)  # RandomResizedCrop 224: 1/2
    assert read_image(phone_photo, 3, (3024, 3024)).size == PHONE  # no reduced scale keeps it: a full decode


@pytest.mark.parametrize("orientation, upright", [(6, (378, 504)), (8, (378, 504)), (3, (504, 378))])
def test_sideways_and_upside_down_photos_stay_upright_at_a_reduced_scale(orientation, upright):
    pixels = np.zeros((PHONE[1], PHONE[0], 3), np.uint8)  # quadrants red, green / blue, white, as stored
    pixels[:PHONE[1] // 2, :PHONE[0] // 2] = (255, 0, 0)
    pixels[:PHONE[1] // 2, PHONE[0] // 2:] = (0, 255, 0)
    pixels[PHONE[1] // 2:, :PHONE[0] // 2] = (0, 0, 255)
    pixels[PHONE[1] // 2:, PHONE[0] // 2:] = (255, 255, 255)
    data = _jpeg(Image.fromarray(pixels), orientation)
    full = np.asarray(decode_upload(data, "photo", 3, 8 << 20))
    reduced = decode_upload(data, "photo", 3, 8 << 20, (256, 256))
    assert reduced.size == upright
    corners = [(8, 8), (8, -8), (-8, 8), (-8, -8)]
    seen = np.asarray(reduced)
    assert [tuple(seen[y, x] // 128) for y, x in corners] == [tuple(full[y, x] // 128) for y, x in corners]


def test_a_sideways_photo_is_asked_for_its_size_turned():
    """Resize to 224 high x 448 wide of a portrait stored 4032 x 3024 with orientation 6 (3024 x 4032 upright):
    asked unturned, the draft would decode 1/8 (378 wide upright, too narrow for 448); turned, 1/4."""
    data = _jpeg(Image.new("RGB", PHONE, (90, 120, 30)), 6)
    image = decode_upload(data, "portrait", 3, 8 << 20, decode_size(T.Resize((224, 448))))
    assert image.size == (756, 1008) and image.size[0] >= 448


def test_pngs_and_small_jpegs_are_decoded_in_full(tmp_path, imagefolder_preprocess):
    preprocess, steps = imagefolder_preprocess
    size = decode_size(build_transforms(steps, "steps"))
    photo = _real_photo(1)  # 640 x 427: 427 // 256 leaves no reduced scale
    photo.save(tmp_path / "flower.jpg", quality=92)
    photo.resize((1600, 1200)).save(tmp_path / "flower.png", compress_level=1)  # no reduced decoding, however large
    for name in ("flower.jpg", "flower.png"):
        path = str(tmp_path / name)
        reduced, full = read_image(path, 3, size), read_image(path)
        assert reduced.size == full.size and np.array_equal(np.asarray(reduced), np.asarray(full))
    assert np.array_equal(preprocess(read_image(str(tmp_path / "flower.jpg"), 3, size)),
                          preprocess(read_image(str(tmp_path / "flower.jpg"))))


def test_an_image_folder_decodes_at_what_its_transforms_need(tmp_path, phone_photo):
    (tmp_path / "cat").mkdir()
    with open(phone_photo, "rb") as source:
        (tmp_path / "cat" / "IMG_0001.JPG").write_bytes(source.read())
    resized = ImageFolder(str(tmp_path), transforms=T.Resize(64))
    cropped = ImageFolder(str(tmp_path), transforms=T.CenterCrop(64))
    assert resized.decode_size == (64, 64) and cropped.decode_size is None
    from_reduced = np.asarray(T.Resize(64)(read_image(phone_photo, 3, (64, 64))))
    assert np.array_equal(np.asarray(resized[0][0]), from_reduced)
    assert not np.array_equal(from_reduced, np.asarray(T.Resize(64)(read_image(phone_photo))))
    assert np.array_equal(np.asarray(cropped[0][0]), np.asarray(T.CenterCrop(64)(read_image(phone_photo))))


@pytest.mark.slow
def test_a_trained_model_gives_the_same_top1_on_photos_decoded_at_a_reduced_scale(digits, tmp_path):
    """The digits MyNet (32 px, Resize [32, 32]) on 30 test digits blown up to 1600 x 1200 JPEG photos: its
    Predictor decodes them at 1/8 (200 x 150) and must rank them as from a full decode."""
    from own_images import NAMES, digits_config
    from paddle_cls.deploy.export import export
    from paddle_cls.deploy.predictor import Predictor
    from paddle_cls.engine import train

    digits = Path(digits)
    config = digits_config(tmp_path, str(digits), epochs=2)
    train(config)
    predictor = Predictor(export(config))
    assert predictor.decode_size == (32, 32)
    photos, names = [], []
    for name in NAMES:
        folder = tmp_path / "digits-test" / name
        for file in sorted(p for p in (digits / "test" / name).iterdir() if p.is_file())[:3]:
            folder.mkdir(parents=True, exist_ok=True)
            photo = read_image(str(file)).resize((1600, 1200), Image.BICUBIC)
            photos.append(str(folder / f"{file.stem}.jpg"))
            photo.save(photos[-1], quality=92)
            names.append(name)
    reduced = [ranked[0][0] for ranked in predictor(photos)]
    predictor.decode_size = None
    full = [ranked[0][0] for ranked in predictor(photos)]
    assert reduced == full
    assert np.mean(np.array(full) == np.array(names)) >= 0.7


@pytest.mark.slow
def test_the_predictor_table_times_predictor_beside_its_model_and_the_old_way():
    from paddle_cls.benchmarks.inference import predictor_table

    row, = predictor_table(photos=4, batch=2, repeats=1)
    assert row["batch"] == 2 and row["engine"] in ("onnxruntime", "inference")
    assert row["model only"] > 0 and row["Predictor"] > 0 and row["before (full decode, 1 thread)"] > 0
    assert row["Predictor / model only"] == round(row["Predictor"] / row["model only"], 2)
