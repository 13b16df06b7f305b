"""Secrets shown once and stored only as hashes: API tokens, links, backup codes.

No Django imports: pure functions with known answers, tested directly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX_LENGTH = 8
API_TOKEN_MARK = "sct"  # noqa: S105 - a visible marker, not a secret
# Crockford-like alphabet without look-alikes (0/O, 1/I/L) for codes read from paper.
BACKUP_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
BACKUP_CODE_LENGTH = 12  # 12 symbols of 31: about 59 bits each


def sha256_hex(value: str) -> str:
    """>>> sha256_hex("abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(value.encode()).hexdigest()


def new_link_token() -> tuple[str, str]:
    """A URL-safe token (256 bits) and the hash that is stored."""
    token = secrets.token_urlsafe(32)
    return token, sha256_hex(token)


def new_api_token() -> tuple[str, str, str]:
    """``(token, prefix, hash)``; the token reads ``sct_<prefix>_<secret>``."""
    prefix = secrets.token_hex(TOKEN_PREFIX_LENGTH // 2)
    token = f"{API_TOKEN_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    return token, prefix, sha256_hex(token)


def api_token_prefix(token: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_TOKEN_MARK or len(parts[1]) != TOKEN_PREFIX_LENGTH:
        return None
    if not parts[2] or len(token) > 128:
        return None
    return parts[1]


def hashes_match(stored_hex: str, presented: str) -> bool:
    return hmac.compare_digest(stored_hex, sha256_hex(presented))


def new_backup_codes(count: int) -> list[str]:
    """Codes formatted for reading: ``ABCD-EFGH-JKMN``."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, BACKUP_CODE_LENGTH, 4)))
    return codes


def normalise_backup_code(code: str) -> str:
    """>>> normalise_backup_code(" abcd-efgh jkmn ")
    'ABCDEFGHJKMN'
    """
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_salt() -> str:
    return secrets.token_hex(16)


def backup_code_hash(*, salt: str, code: str) -> str:
    """SHA-256 of a per-set salt and the normalised code.

    A code carries ~59 bits, so a salted fast hash is out of reach offline; a
    slow hash would make each sign-in try every stored code at Argon2 cost.
    """
    return sha256_hex(f"{salt}:{normalise_backup_code(code)}")
