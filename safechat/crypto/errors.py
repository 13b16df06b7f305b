"""The one exception family of :mod:`safechat.crypto`.

Callers catch :class:`CryptoError`. The subclasses exist so that tests and logs can tell
failures apart; none of them is ever raised with key material or plaintext in its message.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Any refusal by the crypto core: nothing it returns is ever a wrong plaintext."""


class DecryptionError(CryptoError):
    """Authentication failed: tampered bytes, wrong key, or wrong associated data."""


class SignatureError(CryptoError):
    """A signature does not verify for this message, context and key."""


class MacError(CryptoError):
    """A record's MAC does not verify: the record was changed without the MAC key."""


class KeyPurposeError(CryptoError):
    """A key of the wrong type or purpose was offered for an operation."""


class UnknownKeyVersion(CryptoError):
    """A wrapped blob names a master-key version the provider does not hold."""


class MalformedError(CryptoError):
    """A blob is truncated, has a foreign magic, or an unknown format/algorithm tag."""


class ConfigError(CryptoError):
    """Key provider configuration is missing, unreadable, or unsafe (e.g. file permissions)."""


class ProviderError(CryptoError):
    """The key provider (HSM, KMS) failed or is unreachable."""


class StreamStateError(CryptoError):
    """A stream encryptor or decryptor was used after it finished or failed."""
