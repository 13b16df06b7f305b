"""The audit signing key: Ed25519, loaded from the environment, never from the database.

``SAFECHAT_AUDIT_SIGNING_KEY`` holds the base64 of the raw 32-byte private seed;
otherwise ``SAFECHAT_AUDIT_SIGNING_KEY_FILE`` names a file holding it. In
development a missing file is generated once (mode 0600); in production it must
exist. Whoever can read this key can forge checkpoints: keep it off the database
host and out of backups of the database.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.chain import key_id_for, public_key_parse, public_key_raw
from safechat.crypto.errors import ConfigError
from safechat.crypto.providers.local import read_private_file
from safechat.environment import write_private_file


def _seed_parse(text: str, *, source: str) -> Ed25519PrivateKey:
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{source} is not base64") from None
    if len(seed) != 32:
        raise ImproperlyConfigured(f"{source} must be the base64 of a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def seed_encode(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode("ascii")


@functools.lru_cache(maxsize=4)
def _load(inline: str, path: str, generate: bool) -> Ed25519PrivateKey:
    if inline:
        return _seed_parse(inline, source="SAFECHAT_AUDIT_SIGNING_KEY")
    if not path:
        raise ImproperlyConfigured(
            "no audit signing key: set SAFECHAT_AUDIT_SIGNING_KEY "
            "or SAFECHAT_AUDIT_SIGNING_KEY_FILE"
        )
    key_file = Path(path)
    if not key_file.exists() and generate:
        # Two processes may race to create it; write_private_file lets one win.
        with contextlib.suppress(FileExistsError):
            write_private_file(key_file, seed_encode(Ed25519PrivateKey.generate()) + "\n")
    if not key_file.exists():
        raise ImproperlyConfigured(f"the audit signing key file {path} does not exist")
    try:
        raw = read_private_file(key_file, what="the audit signing key file")
    except ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    return _seed_parse(raw.decode("ascii", errors="replace"), source=str(path))


def signing_key() -> Ed25519PrivateKey:
    """The configured private key (cached per configuration)."""
    return _load(
        settings.SAFECHAT_AUDIT_SIGNING_KEY,
        settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE,
        not settings.IS_PRODUCTION,
    )


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def public_key_base64(key: Ed25519PublicKey | None = None) -> str:
    return base64.b64encode(public_key_raw(key or public_key())).decode("ascii")


def trusted_public_keys() -> Mapping[str, Ed25519PublicKey]:
    """key_id -> public key: the current key and every configured retired key."""
    keys = {key_id_for(public_key()): public_key()}
    for text in settings.SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS:
        try:
            old = public_key_parse(text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS: {exc}") from None
        keys[key_id_for(old)] = old
    return keys


def cache_clear() -> None:
    """Forget loaded keys (tests that switch keys)."""
    _load.cache_clear()
