"""`paddle-cls serve`: a real server process on a free loopback port, driven by a real HTTP client: answers equal
`tools/predict.py`'s, every bad upload gets a 4xx and the next request is served, and hundreds of concurrent
requests are batched without an error."""
import base64
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from browser import chromium
from own_images import digits_config
from paddle_cls.cli import predict_main
from paddle_cls.deploy.export import export
from paddle_cls.engine import train
from paddle_cls.serving.uploads import UploadError, base64_images

requests = pytest.importorskip("requests", reason="the [test] extra (requests) is not installed")
pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(digits, tmp_path_factory):
    """`(base URL, config path, output of the server)` of a server over an exported digits model."""
    tmp = tmp_path_factory.mktemp("serve")
    config = digits_config(tmp, digits, epochs=2)
    train(config)
    export(config)
    port, log = _free_port(), open(tmp / "server.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "paddle_cls", "serve", "-c", str(tmp / "digits.yml"),
                                "--port", str(port), "--max-upload-mb", "1"], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # generous: a loaded CI machine starts Paddle slowly
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
        if process.poll() is not None:
            break
    else:
        process.kill()
    assert process.poll() is None, open(tmp / "server.log").read()
    yield url, str(tmp / "digits.yml"), tmp / "server.log"
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


def _digit_files(digits, names=("seven", "two", "zero"), per_class=2):
    files = []
    for name in names:
        folder = os.path.join(digits, "test", name)
        files += [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if "." in f][:per_class]
    return files


def test_predictions_equal_tools_predict_for_the_same_files(server, digits, capsys):
    url, config, _ = server
    files = _digit_files(digits)
    answer = requests.post(f"{url}/predict", files=[("file", open(path, "rb")) for path in files]).json()
    assert predict_main(["-c", config, *files, "--topk", "3"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(tuple(files))]
    served = [f"{path}: " + ", ".join(f"{t['label']} {t['probability']:.4f}" for t in item["topk"])
              for path, item in zip(files, answer["predictions"])]
    assert served == printed
    as_json = requests.post(f"{url}/predict", json={"images": [base64.b64encode(open(files[0], "rb").read())
                                                               .decode()], "topk": 2}).json()
    assert as_json["predictions"][0]["topk"] == answer["predictions"][0]["topk"][:2]
    # Python's encodebytes (and the `base64` command, Java's MIME encoder) break lines every 76 characters
    as_mime = requests.post(f"{url}/predict", json={"images": [base64.encodebytes(open(path, "rb").read()).decode()
                                                               for path in files]})
    assert as_mime.status_code == 200, as_mime.text
    assert as_mime.json()["predictions"] == answer["predictions"]
    info = requests.get(f"{url}/info").json()
    assert info["classes"][:3] == ["eight", "five", "four"] and info["input_shape"] == [3, 32, 32]
    assert info["engine"] in ("inference", "onnxruntime") and "paddle" in info["versions"]
    top = answer["predictions"][0]["topk"][0]
    assert info["classes"][top["index"]] == top["label"]


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_phone_sized_photo_gets_the_same_answer_from_the_server_and_tools_predict(server, digits, capsys,
                                                                                    tmp_path, suffix):
    # both decode a JPEG at the reduced scale the steps allow (tools/predict.py decoded it in full before); a
    # PNG, which has no reduced decoding, is decoded in full by both
    url, config, _ = server
    photo = str(tmp_path / f"IMG_0001{suffix}")
    Image.open(_digit_files(digits, per_class=1)[0]).convert("RGB").resize((2400, 1800), Image.BICUBIC).save(photo)
    answer = requests.post(f"{url}/predict", files={"file": open(photo, "rb")}).json()
    assert predict_main(["-c", config, photo, "--topk", "3"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(photo)]
    assert printed == [f"{photo}: " + ", ".join(f"{t['label']} {t['probability']:.4f}"
                                               for t in answer["predictions"][0]["topk"])]


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_bad_uploads_get_a_4xx_and_the_server_goes_on(server, digits):
    url, _, log = server
    good = open(_digit_files(digits, ("seven",), 1)[0], "rb").read()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, "JPEG")
    bad = {
        "not an image": (dict(files={"file": ("notes.png", b"hello, not an image")}), 415, "notes.png: not an image"),
        "empty": (dict(files={"file": ("empty.png", b"")}), 400, "empty.png: empty upload"),
        "truncated JPEG": (dict(files={"file": ("cut.jpg", buffer.getvalue()[:300])}), 400,
                           "cut.jpg: the image cannot be decoded"),
        "bomb": (dict(files={"file": ("bomb.png", _png(20000, 20000))}), 413, "over the limit of 40,000,000 pixels"),
        "large": (dict(files={"file": ("large.png", _png(8000, 6000))}), 413, "8000 x 6000 pixels, over the limit"),
        "too big": (dict(files={"file": ("big.bin", os.urandom(2 << 20))}), 413, "over the limit of 1,048,576"),
        "wrong field": (dict(files={"image": ("a.png", good)}), 422,
                        "multipart field named 'file' (fields sent: image)"),
        "malformed JSON": (dict(data=b"{not json", headers={"Content-Type": "application/json"}), 400,
                           "malformed JSON"),
        "bad base64": (dict(json={"images": ["@@@"]}), 422, "images[0]: not valid base64"),
        "text, not base64": (dict(json={"images": [base64.b64encode(good).decode(), "not base64!!"]}), 422,
                             "images[1]: not valid base64"),
        "JSON of another shape": (dict(json={"image": "x"}), 422, 'expected a JSON body {"images"'),
        "plain text": (dict(data=b"x", headers={"Content-Type": "text/plain"}), 415, "content type text/plain"),
        "bad topk": (dict(files={"file": ("a.png", good)}, data={"topk": "11"}), 422, "topk: expected 1..10, got 11"),
    }
    for case, (arguments, status, reason) in bad.items():
        response = requests.post(f"{url}/predict", **arguments)
        assert response.status_code == status, (case, response.text)
        assert reason in response.json()["error"], (case, response.json())
        assert requests.post(f"{url}/predict", files={"file": ("ok.png", good)}).status_code == 200, case
        # a request refused while its images were decoding no longer holds the batches waiting for it
        assert requests.get(f"{url}/info").json()["images_being_prepared"] == 0, case
    assert "-> 413: bomb.png: over the limit of 40,000,000 pixels" in open(log).read()


def test_cam_1_adds_the_grad_cam_of_each_image_and_the_answer_is_otherwise_the_same(server, digits):
    url, _, _ = server
    files = _digit_files(digits, ("seven", "two"), 1)
    plain = requests.post(f"{url}/predict", files=[("file", open(path, "rb")) for path in files]).json()
    with_cam = requests.post(f"{url}/predict?cam=1", files=[("file", open(path, "rb")) for path in files]).json()
    assert all("cam" not in item for item in plain["predictions"]) and requests.get(f"{url}/info").json()["cam"]
    for path, item, before in zip(files, with_cam["predictions"], plain["predictions"]):
        assert item["topk"] == before["topk"]
        header, data = item["cam"].split(",", 1)
        assert header == "data:image/png;base64"
        drawn = Image.open(io.BytesIO(base64.b64decode(data)))
        assert drawn.format == "PNG" and drawn.mode == "RGB" and drawn.size == Image.open(path).size
    answer = requests.post(f"{url}/predict?cam=maybe", files={"file": open(files[0], "rb")})
    assert answer.status_code == 422 and answer.json()["error"] == "cam: expected 1 or 0, got 'maybe'"


def test_base64_is_read_as_standard_encoders_write_it():
    data = bytes(range(256)) * 3 + b"pn"  # every base64 character, standard and URL-safe; 770 bytes need "="
    mime = base64.encodebytes(data).decode()
    assert "\n" in mime[:-1] and "=" in mime and "+" in mime and "/" in mime
    url_safe = base64.urlsafe_b64encode(data).decode()
    written = {
        "MIME lines (encodebytes, base64, Java)": mime,
        "CRLF lines": mime.replace("\n", "\r\n"),
        "URL-safe": url_safe,
        "URL-safe, no padding": url_safe.rstrip("="),
        "no padding": base64.b64encode(data).decode().rstrip("="),
        "surrounding whitespace": f" \t{base64.b64encode(data).decode()}\n\n",
        "data URL of MIME lines": "data:image/png;base64," + mime,
    }
    for case, text in written.items():
        assert base64_images({"images": [text]}) == [data], case
    for garbage in ("not base64!!", "@@@", "héllo wörld", "QUJD\x00RA==", "PD4_Pz8+",
                    "QUJDR"):  # outside both alphabets, mixed alphabets, a length no encoder writes
        with pytest.raises(UploadError, match=r"images\[0\]: not valid base64") as refused:
            base64_images({"images": [garbage]})
        assert refused.value.status == 422, garbage


def test_hundreds_of_concurrent_requests_are_batched_and_all_correct(server, digits):
    url, _, _ = server
    files = _digit_files(digits, per_class=4)
    expected = {path: requests.post(f"{url}/predict", files={"file": open(path, "rb")}).json() for path in files}

    def ask(path):
        return path, requests.post(f"{url}/predict", files={"file": open(path, "rb")}, timeout=120).json()

    before = requests.get(f"{url}/info").json()
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, files * 25))  # 300 requests
    assert len(answers) == 300 and all(answer == expected[path] for path, answer in answers)
    after = requests.get(f"{url}/info").json()
    assert after["images_run"] - before["images_run"] == 300
    assert after["batches_run"] - before["batches_run"] < 300  # requests were run together


def test_serving_without_an_export_is_a_one_line_error(tmp_path):
    config = digits_config(tmp_path, str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "paddle_cls", "serve", "-c", str(tmp_path / "digits.yml")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and re.search(r"error: no export of .*best_model.pdparams in .*inference: run "
                                                r"`paddle-cls export -c .*digits.yml`", result.stderr)
    assert config["Global"]["output_dir"] == str(tmp_path / "out")


@pytest.mark.browser
def test_the_web_page_shows_the_label_of_an_uploaded_digit(server, digits):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = server
    path = _digit_files(digits, ("seven",), 1)[0]
    expected = requests.post(f"{url}/predict", files={"file": open(path, "rb")}).json()["predictions"][0]["topk"]
    browser = chromium()
    try:
        browser.get(f"{url}/")
        WebDriverWait(browser, 30).until(lambda b: "classes" in b.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "file").send_keys(path)
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".prediction .label"))
        labels = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".prediction .label")]
        assert labels == [item["label"] for item in expected] and labels[0] == "seven"
        assert browser.find_element(By.ID, "preview").get_attribute("hidden") is None
    finally:
        browser.quit()
