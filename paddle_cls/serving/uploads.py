"""Images sent by clients, decoded in memory with limits: never written to disk, never opened by a name the
client gives. Each refusal is an `UploadError` carrying the HTTP status and a one-line reason."""
from __future__ import annotations

from typing import Any, Iterator, List, Optional, Tuple

import base64
import binascii
import email.message
import email.parser
import email.policy
import io
import warnings

from PIL import Image, UnidentifiedImageError

from ..data.folder import in_model_mode
from ..data.reduced_decode import draft

MAX_PIXELS = 40_000_000  # about 6,300 x 6,300: larger is refused before decoding (decompression bombs)


class UploadError(Exception):
    """A request the server refuses: `status` (400, 413, 415, 422) and a one-line reason."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def decode_upload(data: bytes, name: str, channels: int, max_bytes: int,
                  size: Optional[Tuple[int, int]] = None) -> Image.Image:
    """The bytes of one uploaded image as a PIL image in the model's mode; with `size` (width, height, upright), a
    JPEG is decoded at the smallest reduced scale still at least that size (`reduced_decode.draft`).

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
            draft(image, size)
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


def multipart_fields(content_type: str, body: bytes) -> List[Tuple[str, Optional[str], bytes]]:
    """`(field name, file name or None, bytes)` of each part of a `multipart/form-data` body (RFC 7578), parsed in
    memory: the body is searched for its boundary in place, each part's data sliced out once, and only each
    part's few header lines go through the `email` parser. (The `email` parser on a whole body takes ~120 ms of
    pure Python, holding the GIL, for a 4 MB photo; Starlette's own form parsing would spool such an upload to
    disk.)

    A part sent with `Content-Transfer-Encoding: base64` or `quoted-printable` is decoded.

    Raises:
        UploadError: 400 for a body without the boundary its content type names, a part without headers, or a
            base64 part that is not base64.
    """
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise UploadError(400, "malformed multipart body: the content type names no boundary")
    fields = []
    for head, start, end in _parts(body, boundary.encode("latin-1")):
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head.lstrip(b" \t\r\n"))
        name = headers.get_param("name", header="content-disposition")
        encoding = str(headers.get("content-transfer-encoding", "")).strip().lower()
        data = body[start:end]  # the part's one copy
        if encoding == "base64":  # RFC 7578 forbids it; old clients still send it, as `email` decoded it
            try:
                data = base64.b64decode(data)
            except binascii.Error:
                raise UploadError(400, "malformed multipart body: a base64 part that is not base64") from None
        elif encoding == "quoted-printable":
            data = binascii.a2b_qp(data)
        fields.append((name if isinstance(name, str) else "", headers.get_filename(), data))
    return fields


def _parts(body: bytes, boundary: bytes) -> Iterator[Tuple[bytes, int, int]]:
    """Each part of a multipart body as (its header bytes, where its data starts, where it ends), found by
    searching the body in place: a 4 MB photo is not copied to be split (each copy of a fresh 4 MB buffer
    page-faults it in, on the server's event loop)."""
    delimiter = b"\r\n--" + boundary
    if body.startswith(delimiter[2:]):  # no preamble
        position = len(delimiter) - 2
    else:
        found = body.find(delimiter)
        position = found + len(delimiter) if found >= 0 else len(body)
    parts = 0
    while not body.startswith(b"--", position):
        following = body.find(delimiter, position)
        if following < 0:
            break
        head_end = body.find(b"\r\n\r\n", position, following)
        if head_end < 0:
            raise UploadError(400, "malformed multipart body: a part without headers")
        yield body[position:head_end], head_end + 4, following
        parts, position = parts + 1, following + len(delimiter)
    if not parts or not body.startswith(b"--", position):
        raise UploadError(400, "malformed multipart body: no closing boundary")
