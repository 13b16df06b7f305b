"""Ed25519 signatures with purpose-tagged keys and domain-separated messages.

Formats::

    signing key  header(SIGNING_PRIVATE_KEY, ED25519, purpose) || 32-byte seed
    verify key   header(SIGNING_PUBLIC_KEY,  ED25519, purpose) || 32-byte public key
    signature    header(SIGNATURE,           ED25519, purpose) || 64-byte signature

What is signed is ``encode_fields(b"safechat/v1/sig", signature header, context label, message)``:
a signature made for an audit checkpoint can never verify as an export manifest, nor under a
key of another purpose.
"""

from __future__ import annotations

from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from safechat.crypto.envelope import (
    HEADER_LEN,
    SIGNING_PURPOSES,
    Algorithm,
    Header,
    KeyPurpose,
    ObjectType,
    encode_fields,
    parse_header,
    require_purpose,
)
from safechat.crypto.errors import KeyPurposeError, MalformedError, SignatureError
from safechat.crypto.labels import SIGNATURE_PREFIX, SignatureContext
from safechat.crypto.public_key import TaggedPublicKey

KEY_LEN = 32
SIGNATURE_LEN = 64


class VerifyKey(TaggedPublicKey):
    """An Ed25519 public key tagged with its purpose (safe to publish and to anchor elsewhere)."""

    __slots__ = ("_key",)

    def __init__(self, body: bytes, purpose: KeyPurpose) -> None:
        require_purpose(purpose, SIGNING_PURPOSES, "a signing key")
        if len(body) != KEY_LEN:
            raise MalformedError("malformed Ed25519 public key")
        self._body = bytes(body)
        self._purpose = purpose
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(self._body)

    def to_bytes(self) -> bytes:
        return Header(ObjectType.SIGNING_PUBLIC_KEY, Algorithm.ED25519, self._purpose).encode() + (
            self._body
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, purpose: KeyPurpose) -> VerifyKey:
        """Load a verify key, refusing it unless it is tagged with ``purpose``."""
        header = parse_header(data, object_type=ObjectType.SIGNING_PUBLIC_KEY)
        _check(header, purpose)
        return cls(data[HEADER_LEN:], purpose)


class SigningKey:
    """An Ed25519 private key tagged with its purpose; never pickled or printed."""

    __slots__ = ("_key", "_public", "_purpose", "_seed")

    def __init__(self, seed: bytes, purpose: KeyPurpose) -> None:
        require_purpose(purpose, SIGNING_PURPOSES, "a signing key")
        if len(seed) != KEY_LEN:
            raise MalformedError("malformed Ed25519 private key")
        self._seed = bytes(seed)
        self._purpose = purpose
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(self._seed)
        self._public = VerifyKey(self._key.public_key().public_bytes_raw(), purpose)

    @classmethod
    def generate(cls, purpose: KeyPurpose) -> SigningKey:
        """Create a new signing key for ``purpose`` (AUDIT_SIGNING or EXPORT_SIGNING)."""
        return cls(ed25519.Ed25519PrivateKey.generate().private_bytes_raw(), purpose)

    @property
    def purpose(self) -> KeyPurpose:
        return self._purpose

    def public_key(self) -> VerifyKey:
        return self._public

    def to_bytes(self) -> bytes:
        """Tagged secret form; wrap it with a ``KeyProvider`` before storing."""
        header = Header(ObjectType.SIGNING_PRIVATE_KEY, Algorithm.ED25519, self._purpose)
        return header.encode() + self._seed

    @classmethod
    def from_bytes(cls, data: bytes, *, purpose: KeyPurpose) -> SigningKey:
        """Load a signing key, refusing it unless it is tagged with ``purpose``."""
        header = parse_header(data, object_type=ObjectType.SIGNING_PRIVATE_KEY)
        _check(header, purpose)
        return cls(data[HEADER_LEN:], purpose)

    def __repr__(self) -> str:
        return f"SigningKey(purpose={self._purpose.name})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("SigningKey must not be pickled; wrap it instead")


def _check(header: Header, purpose: KeyPurpose) -> None:
    if header.algorithm is not Algorithm.ED25519:
        raise MalformedError(f"unsupported signature algorithm {header.algorithm.name}")
    if header.purpose is not purpose:
        raise KeyPurposeError(f"key has purpose {header.purpose.name}, expected {purpose.name}")


def _signed_bytes(header: bytes, context: SignatureContext, message: bytes) -> bytes:
    if not isinstance(context, SignatureContext):
        raise TypeError("context must be a registered SignatureContext")
    return encode_fields(SIGNATURE_PREFIX, header, context.value, message)


def sign(key: SigningKey, message: bytes, *, context: SignatureContext) -> bytes:
    """Sign ``message`` for ``context``; returns a tagged 70-byte signature (deterministic)."""
    if not isinstance(key, SigningKey):
        raise KeyPurposeError(f"expected a SigningKey, got {type(key).__name__}")
    header = Header(ObjectType.SIGNATURE, Algorithm.ED25519, key.purpose).encode()
    return header + key._key.sign(_signed_bytes(header, context, message))


def verify(key: VerifyKey, message: bytes, signature: bytes, *, context: SignatureContext) -> None:
    """Return if ``signature`` is valid for ``message`` and ``context`` under ``key``; else raise
    :class:`SignatureError` (or another :class:`CryptoError` for a malformed or mis-tagged one)."""
    if not isinstance(key, VerifyKey):
        raise KeyPurposeError(f"expected a VerifyKey, got {type(key).__name__}")
    header = parse_header(signature, object_type=ObjectType.SIGNATURE)
    _check(header, key.purpose)
    if len(signature) != HEADER_LEN + SIGNATURE_LEN:
        raise MalformedError("malformed signature")
    signed = _signed_bytes(signature[:HEADER_LEN], context, message)
    try:
        key._key.verify(signature[HEADER_LEN:], signed)
    except InvalidSignature:
        raise SignatureError("signature verification failed") from None
