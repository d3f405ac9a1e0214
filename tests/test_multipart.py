"""Multipart uploads cut at their boundary in memory (`serving.uploads.multipart_fields`): the parts a client
library sends, byte for byte, whatever bytes a photo holds; malformed bodies refused with a 400."""
import base64

import pytest
import requests

from paddle_cls.serving.uploads import UploadError, multipart_fields


def _encoded(files, data=None):
    request = requests.Request("POST", "http://localhost/predict", files=files, data=data).prepare()
    return request.headers["Content-Type"], request.body


def test_every_part_comes_back_byte_for_byte():
    photo = bytes(range(256)) * 4000 + b"\r\n--\r\n\r\n"  # line breaks and dashes, as in any JPEG
    content_type, body = _encoded({"file": ("IMG 0001 \u00e9.jpg", photo), "other": ("b.png", b"")}, {"topk": "3"})
    assert multipart_fields(content_type, body) == [("topk", None, b"3"), ("file", "IMG 0001 \u00e9.jpg", photo),
                                                    ("other", "b.png", b"")]


def test_transfer_encoded_parts_are_decoded_as_the_email_parser_did():
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"\xff\xd8photo") + b"\r\n--XX--\r\n")
    assert multipart_fields("multipart/form-data; boundary=XX", body) == [("file", "a.jpg", b"\xff\xd8photo")]


def test_a_preamble_and_an_epilogue_around_the_parts_are_left_out():
    body = (b"This is a preamble.\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
            b"\r\n\xff\xd8--XX\r\n\r\n--XX--\r\nan epilogue --XX\r\n")
    assert multipart_fields("multipart/form-data; boundary=XX", body) == [("file", "a.jpg", b"\xff\xd8--XX\r\n")]


@pytest.mark.parametrize("content_type, body, reason", [
    ("multipart/form-data; boundary=XX", b"--XX--\r\n", "no closing boundary"),  # no part at all
    ("multipart/form-data", b"--XX\r\n\r\nx\r\n--XX--\r\n", "names no boundary"),
    ("multipart/form-data; boundary=XX", b"--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx",
     "no closing boundary"),
    ("multipart/form-data; boundary=YY", b"--XX\r\n\r\nx\r\n--XX--\r\n", "no closing boundary"),
    ("multipart/form-data; boundary=XX", b"--XX\r\nno blank line after the headers\r\n--XX--\r\n",
     "a part without headers"),
])
def test_malformed_bodies_get_a_400_naming_what_is_wrong(content_type, body, reason):
    with pytest.raises(UploadError, match=reason) as caught:
        multipart_fields(content_type, body)
    assert caught.value.status == 400
