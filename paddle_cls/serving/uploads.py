"""Images sent by clients, decoded in memory with limits: never written to disk, never opened by a name the
client gives. Each refusal is an `UploadError` carrying the HTTP status and a one-line reason."""
from __future__ import annotations

from typing import Any

import base64
import binascii
import io
import warnings

from PIL import Image, UnidentifiedImageError

from ..data.folder import in_model_mode

MAX_PIXELS = 40_000_000  # about 6,300 x 6,300: larger is refused before decoding (decompression bombs)


class UploadError(Exception):
    """A request the server refuses: `status` (400, 413, 415, 422) and a one-line reason."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def decode_upload(data: bytes, name: str, channels: int, max_bytes: int) -> Image.Image:
    """The bytes of one uploaded image as a PIL image in the model's mode.

    Raises:
        UploadError: 400 empty or truncated, 413 over `max_bytes` or `MAX_PIXELS`, 415 not an image.
    """
    if not data:
        raise UploadError(400, f"{name}: empty upload")
    if len(data) > max_bytes:
        raise UploadError(413, f"{name}: {len(data):,} bytes, over the limit of {max_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UploadError(413, f"{name}: {width} x {height} pixels, over the limit of {MAX_PIXELS:,} pixels")
            image.load()
            image = in_model_mode(image, channels)
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(413, f"{name}: over the limit of {MAX_PIXELS:,} pixels (PIL: {exc})") from None
    except UnidentifiedImageError:
        raise UploadError(415, f"{name}: not an image (PNG, JPEG, BMP, WebP, TIFF, ...)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UploadError(400, f"{name}: the image cannot be decoded ({exc})") from None
    return image


_URL_SAFE = str.maketrans("-_", "+/")


def _decode_base64(text):
    """Bytes of `text` as any standard encoder writes it: line breaks (LF or CRLF, as MIME encoders put them every
    76 characters) and surrounding whitespace, the URL-safe alphabet (`-_`, RFC 4648 section 5), no `=` padding.

    Raises:
        ValueError: characters outside both alphabets, the two alphabets mixed, or a length no encoder writes.
    """
    text = "".join(text.split())
    if any(c in text for c in "-_"):
        if any(c in text for c in "+/"):
            raise ValueError("standard and URL-safe alphabets mixed")
        text = text.translate(_URL_SAFE)
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def base64_images(payload: Any) -> list:
    """The images of a JSON body `{"images": ["<base64>", ...]}` as bytes.

    Each item is base64 as any standard encoder writes it (see `_decode_base64`), or a data URL holding it.

    Raises:
        UploadError: 422 when the body has another shape or an item is not base64.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("images"), list) or not payload["images"]:
        raise UploadError(422, 'expected a JSON body {"images": ["<base64>", ...]} with at least one image')
    images = []
    for index, text in enumerate(payload["images"]):
        if not isinstance(text, str):
            raise UploadError(422, f"images[{index}]: expected a base64 string")
        if text.lstrip().startswith("data:") and "," in text:  # a data URL, as browsers write them
            text = text.split(",", 1)[1]
        try:
            images.append(_decode_base64(text))
        except (binascii.Error, ValueError):
            raise UploadError(422, f"images[{index}]: not valid base64") from None
    return images
