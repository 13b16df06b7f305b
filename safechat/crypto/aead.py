"""AES-256-GCM with typed, purpose-tagged keys and canonical associated data.

Ciphertext layout::

    header (6: type AEAD_CIPHERTEXT, alg AES_256_GCM, key purpose) || nonce (12) || ct || tag (16)

The GCM associated data is ``header || aad``, so the purpose tag and the caller's identity
binding (room, message id, epoch, sender ...) are both authenticated.

The AES key actually used is ``HKDF(key, label=AEAD_SUBKEY, context=purpose)``: two keys that
happen to hold the same bytes but differ in purpose never share a GCM key.

Nonces are 96 random bits from the OS CSPRNG. NIST SP 800-38D §8.3 caps random-nonce use at
2**32 messages per key; callers rotate far earlier (see ``MAX_MESSAGES_PER_KEY``).
"""

from __future__ import annotations

import hmac
import os
import struct
import uuid
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safechat.crypto.envelope import (
    HEADER_LEN,
    SYMMETRIC_PURPOSES,
    Algorithm,
    Header,
    KeyPurpose,
    ObjectType,
    parse_header,
    require_purpose,
)
from safechat.crypto.errors import DecryptionError, KeyPurposeError, MalformedError
from safechat.crypto.kdf import hkdf_sha256
from safechat.crypto.labels import ASSOCIATED_DATA_MAGIC, KdfLabel

KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
# NIST SP 800-38D §8.3 caps random 96-bit nonces at 2**32 messages per key; we stay far below.
# What we allow per key: collision probability after 2**24 messages is ~2**-49.
MAX_MESSAGES_PER_KEY = 2**24

_SERIALIZED_KEY_LEN = HEADER_LEN + KEY_LEN
_MIN_CIPHERTEXT_LEN = HEADER_LEN + NONCE_LEN + TAG_LEN


def generate_nonce() -> bytes:
    """Return a fresh 96-bit nonce from the OS CSPRNG; this is exactly what ``encrypt`` uses."""
    return os.urandom(NONCE_LEN)


class SymmetricKey:
    """A 256-bit key bound to one :class:`KeyPurpose` (ROOM_EPOCH, FILE or MASTER_WRAP).

    The object never prints or pickles its material: ``repr`` shows the purpose only, and
    pickling raises so a key cannot slip into a cache or task queue by accident. Compare keys
    with ``same_material`` (constant time).
    """

    __slots__ = ("_aesgcm", "_headers", "_material", "_purpose")

    def __init__(self, material: bytes, purpose: KeyPurpose) -> None:
        require_purpose(purpose, SYMMETRIC_PURPOSES, "a symmetric key")
        if len(material) != KEY_LEN:
            raise MalformedError("a symmetric key must be exactly 32 bytes")
        self._material = bytes(material)
        self._purpose = purpose
        subkey = hkdf_sha256(self._material, label=KdfLabel.AEAD_SUBKEY, context=bytes((purpose,)))
        self._aesgcm = AESGCM(subkey)
        # Precomputed: building a header per message costs as much as the encryption itself.
        self._headers = {
            object_type: Header(object_type, Algorithm.AES_256_GCM, purpose).encode()
            for object_type in (ObjectType.AEAD_CIPHERTEXT, ObjectType.KEY_WRAPPED_KEY)
        }

    @classmethod
    def generate(cls, purpose: KeyPurpose) -> SymmetricKey:
        """Create a new random key for ``purpose``."""
        return cls(os.urandom(KEY_LEN), purpose)

    @property
    def purpose(self) -> KeyPurpose:
        return self._purpose

    def to_bytes(self) -> bytes:
        """Tagged secret form: ``header(SYMMETRIC_KEY, AES_256_GCM, purpose) || 32 bytes``.

        This is key material: only ever store it wrapped (``wrap_key``, ``hpke.seal_key`` or a
        ``KeyProvider``).
        """
        header = Header(ObjectType.SYMMETRIC_KEY, Algorithm.AES_256_GCM, self._purpose)
        return header.encode() + self._material

    @classmethod
    def from_bytes(cls, data: bytes, *, purpose: KeyPurpose) -> SymmetricKey:
        """Load a key produced by ``to_bytes``, refusing it unless it has ``purpose``."""
        header = parse_header(data, object_type=ObjectType.SYMMETRIC_KEY)
        if header.algorithm is not Algorithm.AES_256_GCM or len(data) != _SERIALIZED_KEY_LEN:
            raise MalformedError("malformed symmetric key")
        if header.purpose is not purpose:
            raise KeyPurposeError(f"key has purpose {header.purpose.name}, expected {purpose.name}")
        return cls(data[HEADER_LEN:], purpose)

    def same_material(self, other: SymmetricKey) -> bool:
        """Constant-time check that two keys hold the same bytes and purpose."""
        return self._purpose is other._purpose and hmac.compare_digest(
            self._material, other._material
        )

    def __repr__(self) -> str:
        return f"SymmetricKey(purpose={self._purpose.name})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("SymmetricKey must not be pickled; wrap it instead")


def _require_symmetric(key: object) -> SymmetricKey:
    if not isinstance(key, SymmetricKey):
        raise KeyPurposeError(f"expected a SymmetricKey, got {type(key).__name__}")
    return key


def _seal(key: SymmetricKey, object_type: ObjectType, plaintext: bytes, aad: bytes) -> bytes:
    header = key._headers[object_type]
    nonce = generate_nonce()
    return header + nonce + key._aesgcm.encrypt(nonce, plaintext, header + aad)


def _open(key: SymmetricKey, object_type: ObjectType, blob: bytes, aad: bytes) -> bytes:
    if blob[:HEADER_LEN] != key._headers[object_type]:
        # Slow path only to say precisely what is wrong; it always raises.
        header = parse_header(blob, object_type=object_type)
        if header.purpose is not key.purpose:
            raise KeyPurposeError(
                f"ciphertext is for a {header.purpose.name} key, got a {key.purpose.name} key"
            )
        raise MalformedError(f"unsupported algorithm {header.algorithm.name}")
    if len(blob) < _MIN_CIPHERTEXT_LEN:
        raise MalformedError("ciphertext too short")
    nonce = blob[HEADER_LEN : HEADER_LEN + NONCE_LEN]
    try:
        return key._aesgcm.decrypt(nonce, blob[HEADER_LEN + NONCE_LEN :], blob[:HEADER_LEN] + aad)
    except InvalidTag:
        raise DecryptionError(
            "authentication failed (tampered data, wrong key or wrong AAD)"
        ) from None


def encrypt(key: SymmetricKey, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext``, binding ``aad`` (build it with ``associated_data``).

    Guarantees: a fresh random nonce per call; the result only decrypts with the same key,
    the same purpose and byte-identical ``aad``.
    """
    return _seal(_require_symmetric(key), ObjectType.AEAD_CIPHERTEXT, plaintext, aad)


def decrypt(key: SymmetricKey, ciphertext: bytes, *, aad: bytes) -> bytes:
    """Return the plaintext, or raise :class:`CryptoError`; never returns unauthenticated bytes."""
    return _open(_require_symmetric(key), ObjectType.AEAD_CIPHERTEXT, ciphertext, aad)


def wrap_key(kek: SymmetricKey, key: SymmetricKey, *, aad: bytes) -> bytes:
    """Encrypt ``key`` (with its purpose tag) under ``kek``, e.g. a FILE key under a ROOM_EPOCH key.

    The blob has its own object type, so it can never be decrypted as a message and vice versa.
    """
    plaintext = _require_symmetric(key).to_bytes()
    return _seal(_require_symmetric(kek), ObjectType.KEY_WRAPPED_KEY, plaintext, aad)


def unwrap_key(
    kek: SymmetricKey, wrapped: bytes, *, aad: bytes, purpose: KeyPurpose
) -> SymmetricKey:
    """Inverse of ``wrap_key``; refuses the result unless it is a key of ``purpose``."""
    serialized = _open(_require_symmetric(kek), ObjectType.KEY_WRAPPED_KEY, wrapped, aad)
    return SymmetricKey.from_bytes(serialized, purpose=purpose)


def derive_key(
    parent: SymmetricKey, *, purpose: KeyPurpose, context: bytes, salt: bytes | None = None
) -> SymmetricKey:
    """Derive a child key of ``purpose`` from ``parent`` with HKDF (label DERIVED_KEY).

    The parent's purpose, the child's purpose and ``context`` all enter the HKDF info.
    """
    parent = _require_symmetric(parent)
    info = bytes((parent.purpose, purpose)) + context
    material = hkdf_sha256(parent._material, label=KdfLabel.DERIVED_KEY, context=info, salt=salt)
    return SymmetricKey(material, purpose)


# --- canonical associated data -------------------------------------------------------------

AdValue = str | int | bytes | uuid.UUID
_LEN = struct.Struct(">I")
_NAME_CACHE: dict[str, bytes] = {}


def _encoded_name(name: str) -> bytes:
    # Field names come from code, so there are few of them: cache their framed form.
    framed = _NAME_CACHE.get(name)
    if framed is None:
        raw = name.encode("utf-8")
        framed = _LEN.pack(len(raw)) + raw
        if len(_NAME_CACHE) < 1024:
            _NAME_CACHE[name] = framed
    return framed


def _encode_ad_value(name: str, value: object) -> bytes:
    # A type byte after the length keeps 7 (int), "7" (str) and b"7" (bytes) distinct.
    if value is None or value is True or value is False:
        raise TypeError(f"associated data field {name!r} must be str, int, bytes or UUID")
    if isinstance(value, str):  # StrEnum members encode as their value
        raw = value.encode("utf-8")
        return _LEN.pack(len(raw)) + b"s" + raw
    if isinstance(value, int):  # int.__repr__: plain decimal, also for IntEnum members
        raw = int.__repr__(value).encode("ascii")
        return _LEN.pack(len(raw)) + b"i" + raw
    if isinstance(value, bytes):
        return _LEN.pack(len(value)) + b"b" + value
    if isinstance(value, uuid.UUID):
        return _LEN.pack(16) + b"u" + value.bytes
    raise TypeError(f"associated data field {name!r} must be str, int, bytes or UUID")


def associated_data(*, purpose: str, **fields: AdValue) -> bytes:
    """Build canonical associated data from named fields.

    Encoding: ``b"SCAD\\x01" || u32 count || for each field sorted by name:
    u32 len(name) || name || u32 len(value) || type-byte || value``, with type bytes
    ``i`` (int, decimal ASCII), ``s`` (str, UTF-8), ``b`` (bytes), ``u`` (UUID, 16 bytes).
    Field order at the call site does not matter; every distinct set of (name, type, value)
    gives distinct bytes. ``purpose`` is mandatory (see
    :class:`~safechat.crypto.labels.AdPurpose`).
    """
    if not isinstance(purpose, str):
        raise TypeError("associated data purpose must be a string (see AdPurpose)")
    fields["purpose"] = purpose
    parts = [ASSOCIATED_DATA_MAGIC, _LEN.pack(len(fields))]
    for name in sorted(fields):
        parts.append(_encoded_name(name))
        parts.append(_encode_ad_value(name, fields[name]))
    return b"".join(parts)
