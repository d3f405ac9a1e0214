"""Text files as people save them: label lists, class maps and configs written on Windows or by spreadsheets."""
from __future__ import annotations

from typing import Type

import locale


def read_text(path: str, error: Type[Exception], what: str) -> str:
    """The text of `path` with Unix line ends, decoded as UTF-8 with or without a byte-order mark (Notepad and
    Excel's "CSV UTF-8" write one); else in this machine's own encoding, as PaddleClas's `open(path)` reads it
    (GBK on a Chinese Windows).

    Args:
        error: the exception class to raise; what: the kind of file, for the message ("class map").

    Raises:
        error: the file is in neither encoding; the message names the file, the line of the first byte that
            does not decode, and how to save it as UTF-8.
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        own = locale.getpreferredencoding(False)
        try:
            text = data.decode(own)
        except (UnicodeDecodeError, LookupError):
            line = data[:exc.start].count(b"\n") + 1
            raise error(f"{path}:{line}: the {what} is not UTF-8 (byte 0x{data[exc.start]:02x}; GBK, as Chinese "
                        f"Windows saves it, is one such encoding): save it as UTF-8 (Notepad: Save as, Encoding "
                        f"UTF-8), or convert it: iconv -f GBK -t UTF-8 OLD > NEW") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
