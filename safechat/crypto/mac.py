"""Record MACs: HMAC-SHA256 that lets a key holder vouch for data it stores elsewhere.

What the application reads back from the database (a public key, a sealed copy of a room
key) is only as trustworthy as whoever can write that database. A MAC under a key that only
the master key can unwrap makes such a record trustworthy again: someone who writes the
database without the master key cannot produce one.

Layout::

    mac key  = HKDF-SHA256(key, info=encode_fields("safechat/v1/kdf/record-mac", label))
    mac      = HMAC-SHA256(mac key, encode_fields("safechat/v1/mac", label, message))   (32 bytes)

``key`` is a :class:`SymmetricKey` of purpose RECORD_MAC; ``label`` a registered
:class:`MacLabel`, so a MAC made for one kind of record never verifies for another.
``message`` should be canonical (``associated_data`` builds it from named fields).
"""

from __future__ import annotations

import hmac as _hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _crypto_hmac

from safechat.crypto.aead import SymmetricKey
from safechat.crypto.envelope import KeyPurpose, encode_fields
from safechat.crypto.errors import KeyPurposeError, MacError
from safechat.crypto.kdf import hkdf_sha256
from safechat.crypto.labels import MAC_PREFIX, KdfLabel, MacLabel

MAC_LEN = 32


def _mac_key(key: SymmetricKey, label: MacLabel) -> bytes:
    if not isinstance(key, SymmetricKey) or key.purpose is not KeyPurpose.RECORD_MAC:
        raise KeyPurposeError("a record MAC needs a RECORD_MAC key")
    if not isinstance(label, MacLabel):
        raise TypeError("label must be a registered MacLabel")
    return hkdf_sha256(key._material, label=KdfLabel.RECORD_MAC, context=label.value)


def record_mac(key: SymmetricKey, message: bytes, *, label: MacLabel) -> bytes:
    """The 32-byte MAC of ``message`` for ``label`` (deterministic)."""
    signer = _crypto_hmac.HMAC(_mac_key(key, label), hashes.SHA256())
    signer.update(encode_fields(MAC_PREFIX, label.value, message))
    return signer.finalize()


def record_mac_verify(key: SymmetricKey, message: bytes, mac: bytes, *, label: MacLabel) -> None:
    """Return if ``mac`` is the MAC of ``message`` for ``label``; else raise :class:`MacError`."""
    expected = record_mac(key, message, label=label)
    if not _hmac.compare_digest(expected, bytes(mac)):
        raise MacError("record MAC does not verify")
