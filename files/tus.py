"""The tus resumable-upload protocol, v1.0.0 (tus.io/protocols/resumable-upload), as far as
the vault speaks it: core (HEAD, PATCH), creation, termination, expiration.

Parsing only, no Django: each function takes header values and returns a typed value or
raises ``TusHeaderError`` with a sentence for the client. Metadata (``Upload-Metadata``)
is ``key base64(value)`` pairs separated by commas; keys are ASCII without spaces or
commas and unique.
"""

from __future__ import annotations

import base64
import binascii
import re

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_BYTES = 4096

_DIGITS = re.compile(r"[0-9]{1,19}")
_KEY = re.compile(r"[!-+\--~]{1,64}")  # visible ASCII but the comma


class TusHeaderError(ValueError):
    """A tus header is missing or malformed; ``str()`` says which and how."""


class TusVersionError(TusHeaderError):
    """``Tus-Resumable`` is missing or names a version the server does not speak (412)."""


class TusContentTypeError(TusHeaderError):
    """A PATCH whose ``Content-Type`` is not ``application/offset+octet-stream`` (415)."""


def require_offset_content_type(value: str | None) -> None:
    """A PATCH body is ``application/offset+octet-stream`` (tus 1.0.0, core protocol)."""
    if (value or "").split(";", 1)[0].strip().lower() != OFFSET_CONTENT_TYPE:
        raise TusContentTypeError(f"PATCH needs {OFFSET_CONTENT_TYPE}")


def require_version(value: str | None) -> None:
    if value is None:
        raise TusVersionError("the Tus-Resumable header is required (1.0.0)")
    if value.strip() != TUS_VERSION:
        raise TusVersionError(f"unsupported Tus-Resumable {value[:20]!r}; this server speaks 1.0.0")


def parse_length(value: str | None, header: str) -> int:
    """A non-negative decimal integer header (``Upload-Length``, ``Upload-Offset``)."""
    if value is None:
        raise TusHeaderError(f"the {header} header is required")
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        raise TusHeaderError(f"{header} must be a non-negative whole number of bytes")
    return int(value)


def parse_metadata(value: str | None) -> dict[str, str]:
    """``Upload-Metadata`` as a dict of text values (empty if absent)."""
    if value is None or not value.strip():
        return {}
    if len(value) > MAX_METADATA_BYTES:
        raise TusHeaderError("Upload-Metadata is too long")
    result: dict[str, str] = {}
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        if len(parts) not in (1, 2) or not _KEY.fullmatch(parts[0]):
            raise TusHeaderError("Upload-Metadata must be 'key base64value' pairs, comma-separated")
        key = parts[0]
        if key in result:
            raise TusHeaderError(f"Upload-Metadata repeats the key {key!r}")
        raw = b""
        if len(parts) == 2:
            try:
                raw = base64.b64decode(parts[1], validate=True)
            except (binascii.Error, ValueError):
                raise TusHeaderError(f"Upload-Metadata {key!r} is not valid base64") from None
        try:
            result[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TusHeaderError(f"Upload-Metadata {key!r} is not UTF-8 text") from None
    return result


def metadata_encode(values: dict[str, str]) -> str:
    """The inverse of ``parse_metadata`` (for clients and tests)."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8')).decode('ascii')}"
        for key, value in values.items()
    )
