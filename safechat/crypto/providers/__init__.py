"""Master-key (KEK) providers behind one interface, :class:`KeyProvider`.

``provider_from_env`` builds the configured one from an environment mapping (``os.environ`` or
settings), so Django settings need no knowledge of the providers' internals::

    SAFECHAT_KEY_PROVIDER        local (default) | pkcs11
    SAFECHAT_MASTER_KEYS         local: "1:<base64>,2:<base64>"           (or ...)
    SAFECHAT_MASTER_KEY_FILE     local: path to a 0600 JSON key file
    SAFECHAT_PKCS11_LIBRARY      pkcs11: path to the module (.so)
    SAFECHAT_PKCS11_TOKEN_LABEL  pkcs11: token label
    SAFECHAT_PKCS11_PIN          pkcs11: user PIN (or SAFECHAT_PKCS11_PIN_FILE)
    SAFECHAT_PKCS11_KEY_LABEL_PREFIX  pkcs11: optional, default "safechat-kek-v"

The PKCS#11 module is imported lazily so that deployments without python-pkcs11 still work.
"""

from __future__ import annotations

from collections.abc import Mapping

from safechat.crypto.errors import ConfigError
from safechat.crypto.providers.base import (
    ChainedKeyProvider,
    KeyProvider,
    ProviderKind,
    WrappedKey,
    needs_rewrap,
    rewrap,
)
from safechat.crypto.providers.local import (
    LocalKeyProvider,
    format_env_keys,
    key_file_add_version,
    key_file_create,
    parse_env_keys,
    read_key_file,
    read_private_file,
)

__all__ = [
    "ChainedKeyProvider",
    "KeyProvider",
    "LocalKeyProvider",
    "ProviderKind",
    "WrappedKey",
    "format_env_keys",
    "key_file_add_version",
    "key_file_create",
    "needs_rewrap",
    "parse_env_keys",
    "provider_from_env",
    "read_key_file",
    "read_private_file",
    "rewrap",
]


def provider_kind(env: Mapping[str, str]) -> str:
    """``SAFECHAT_KEY_PROVIDER`` as every reader compares it: trimmed, lower case, ``local``
    when unset (``PKCS11`` means ``pkcs11``)."""
    return env.get("SAFECHAT_KEY_PROVIDER", "").strip().lower() or "local"


def provider_from_env(env: Mapping[str, str]) -> KeyProvider:
    """Build the key provider the environment describes; raises :class:`ConfigError` if unsafe.

    Exactly one of ``SAFECHAT_MASTER_KEYS`` / ``SAFECHAT_MASTER_KEY_FILE`` must be set for the
    local provider, so an operator never wonders which one is in force.
    """
    kind = provider_kind(env)
    if kind == "local":
        keys = env.get("SAFECHAT_MASTER_KEYS", "")
        key_file = env.get("SAFECHAT_MASTER_KEY_FILE", "")
        if keys and key_file:
            raise ConfigError("set SAFECHAT_MASTER_KEYS or SAFECHAT_MASTER_KEY_FILE, not both")
        if keys:
            return LocalKeyProvider.from_env_string(keys)
        if key_file:
            return LocalKeyProvider.from_key_file(key_file)
        raise ConfigError("no master key: set SAFECHAT_MASTER_KEYS or SAFECHAT_MASTER_KEY_FILE")
    if kind == "pkcs11":
        try:
            from safechat.crypto.providers.pkcs11 import Pkcs11KeyProvider
        except ImportError:
            raise ConfigError("SAFECHAT_KEY_PROVIDER=pkcs11 needs python-pkcs11") from None
        return Pkcs11KeyProvider.from_env(env)
    raise ConfigError(f"unknown SAFECHAT_KEY_PROVIDER {kind!r} (expected local or pkcs11)")
