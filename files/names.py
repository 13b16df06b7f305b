"""What a file may be called, and what it may say it is.

A name arrives from the client (tus ``Upload-Metadata``) and is shown to other members
and used as the download's file name, so it must not deceive or escape:

* no path separators (``/``, ``\\``), no ``.`` or ``..``: it is a name, never a path;
* no control characters (Unicode category Cc) and no bidirectional controls (U+202A..E,
  U+2066..9, U+200E/F, U+061C: a right-to-left override turns ``cod.exe`` into what reads
  as ``exe.doc``), nor other format characters (Cf) such as zero-width joiners;
* not made only of invisible characters (spaces, format characters, combining marks);
* at most 255 characters and 255 bytes of UTF-8; normalised to NFC.

A content type is a plain ``type/subtype`` token (RFC 6838); anything else is stored as
``application/octet-stream``.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 255
MAX_NAME_BYTES = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf", "Mn", "Me", "Cc"})
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")


class FileNameError(ValueError):
    """The name is not acceptable; ``str()`` says why, in words a person can act on."""


def file_name_clean(name: str) -> str:
    """The name, NFC-normalised, or raise ``FileNameError`` saying what is wrong with it."""
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise FileNameError("a file needs a name")
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise FileNameError("the file name is too long (at most 255 characters)")
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise FileNameError("the file name must not contain a path (/ or \\)")
    for char in name:
        category = unicodedata.category(char)
        if category == "Cs":
            raise FileNameError("the file name is not valid text")
        if category == "Cc":
            raise FileNameError("the file name must not contain control characters")
        if char in _BIDI_CONTROLS:
            raise FileNameError("the file name must not contain text-direction controls")
        if category == "Cf":
            raise FileNameError("the file name must not contain invisible format characters")
    if all(unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in name):
        raise FileNameError("the file name must contain visible characters")
    return name


def content_type_clean(content_type: str) -> str:
    """A lower-case ``type/subtype`` (parameters dropped), or the octet-stream default."""
    value = content_type.split(";", 1)[0].strip().lower()
    return value if _CONTENT_TYPE.fullmatch(value) else DEFAULT_CONTENT_TYPE
