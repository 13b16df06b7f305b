"""What an event's ``extra`` may hold: small, canonical JSON, and no secrets.

The log must never hold message text, file content, passwords, OTP codes, tokens
or key material. Values cannot be inspected for that, so key names are: a key is
refused when any of its words names a secret (``password``, ``secret``...), or when
its last word says the value *is* one (``api_key``, ``reset_code``, ``body``).
Identifiers and counts of such things stay allowed (``token_id``, ``kek_version``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from audit.chain import ExtraError, canonical_json, check_json_value

# A word anywhere in the key name refuses it.
FORBIDDEN_WORDS = frozenset(
    {"password", "passwd", "passphrase", "pwd", "secret", "plaintext", "cleartext", "ciphertext"}
)
# The last word of the key name refuses it: it says what the value is.
FORBIDDEN_LAST_WORDS = frozenset(
    {
        "pass", "code", "codes", "otp", "totp", "hotp", "pin", "token", "tokens",
        "key", "keys", "seed", "salt", "nonce", "text", "content", "contents", "body",
        "message", "cookie", "credential", "credentials", "secrets",
    }
)  # fmt: skip

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


class ForbiddenExtraKeyError(ValueError):
    """``extra`` names a field that could carry a secret or content."""


def key_words(name: str) -> list[str]:
    """``newPassword`` -> [new, password]; ``api-key`` -> [api, key]."""
    spaced = _CAMEL_BOUNDARY.sub("_", name).lower()
    return [word for word in _NON_ALNUM.split(spaced) if word]


def key_forbidden(name: str) -> bool:
    words = key_words(name)
    if not words:
        return False
    joined = "".join(words)
    return (
        any(word in FORBIDDEN_WORDS for word in words)
        or words[-1] in FORBIDDEN_LAST_WORDS
        or any(joined.endswith(word) for word in ("password", "secret", "token", "apikey"))
    )


def _forbidden_keys(value: object, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}"
            if isinstance(key, str) and key_forbidden(key):
                found.append(where)
            found.extend(_forbidden_keys(item, where))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(_forbidden_keys(item, f"{path}[{index}]"))
    return found


def extra_clean(extra: Mapping[str, Any] | None, *, max_bytes: int) -> dict[str, Any]:
    """``extra`` as a plain dict after every check, or an exception saying why not.

    Raises TypeError when it is not a mapping, ExtraError (a ValueError) when it is
    not canonical JSON, ForbiddenExtraKeyError when a key could carry a secret and
    ValueError when its canonical form exceeds ``max_bytes``.
    """
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise TypeError(f"audit extra must be a mapping, not {type(extra).__name__}")
    cleaned = dict(extra)
    check_json_value(cleaned)
    forbidden = _forbidden_keys(cleaned, "extra")
    if forbidden:
        raise ForbiddenExtraKeyError(
            f"audit extra may not hold secrets or content; refused key(s): {', '.join(forbidden)}"
        )
    size = len(canonical_json(cleaned).encode("utf-8"))
    if size > max_bytes:
        raise ValueError(f"audit extra is {size} bytes serialised; the limit is {max_bytes}")
    return cleaned


__all__ = ["ExtraError", "ForbiddenExtraKeyError", "extra_clean", "key_forbidden"]
