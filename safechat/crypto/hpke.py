"""HPKE (RFC 9180) sealing to hybrid post-quantum keys: ML-KEM-768 + X25519 (X-Wing).

Suite: KEM ``MLKEM768-X25519`` (0x647a, draft-ietf-hpke-pq), KDF HKDF-SHA256, AEAD AES-256-GCM,
base mode, single-shot. An attacker must break *both* ML-KEM-768 and X25519 to read a sealed
key, which covers harvest-now-decrypt-later for records kept for years.

Formats::

    public key   header(HPKE_PUBLIC_KEY, alg, purpose)  || ML-KEM-768 ek (1184) || X25519 pk (32)
    private key  header(HPKE_PRIVATE_KEY, alg, purpose) || 32-byte seed
    sealed       header(HPKE_SEALED, alg, recipient purpose) || enc (1120) || ct || tag (16)

The public key body is the draft's standard encoding. The private key is the draft's 32-byte
seed, expanded with SHAKE256 into the ML-KEM seed and the X25519 scalar exactly as the draft
(and cryptography's own test-suite) does; a known-answer test pins this.

``cryptography``'s public single-shot HPKE API takes ``info`` but no ``aad``. RFC 9180 §8.1
says single-shot users should put auxiliary authenticated data into ``info``, which enters
the key schedule: so we pass ``encode_fields(prefix, header, info label, aad)`` as ``info``.
Any change to header, label or aad makes ``open`` fail.
"""

from __future__ import annotations

import os
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from safechat.crypto.aead import SymmetricKey
from safechat.crypto.envelope import (
    HEADER_LEN,
    HPKE_PURPOSES,
    Algorithm,
    Header,
    KeyPurpose,
    ObjectType,
    encode_fields,
    parse_header,
    require_purpose,
)
from safechat.crypto.errors import DecryptionError, KeyPurposeError, MalformedError
from safechat.crypto.labels import HPKE_INFO_PREFIX, HpkeInfo
from safechat.crypto.public_key import TaggedPublicKey

ALGORITHM = Algorithm.HPKE_MLKEM768X25519_HKDFSHA256_AES256GCM
SUITE = _hpke.Suite(_hpke.KEM.MLKEM768_X25519, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM)
SEED_LEN = 32
MLKEM_PUBLIC_LEN = 1184
X25519_LEN = 32
PUBLIC_KEY_LEN = MLKEM_PUBLIC_LEN + X25519_LEN
ENC_LEN = _hpke.KEM.MLKEM768_X25519.enc_length()
TAG_LEN = 16


def _expand_seed(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    # draft-irtf-cfrg-concrete-hybrid-kems / X-Wing: SHAKE256(seed, 96) = ML-KEM d||z || X25519 sk.
    shake = hashes.Hash(hashes.SHAKE256(digest_size=96))
    shake.update(seed)
    expanded = shake.finalize()
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
    )


class HpkePublicKey(TaggedPublicKey):
    """A recipient's public key, tagged USER_HPKE or COMPLIANCE_HPKE."""

    __slots__ = ("_key",)

    def __init__(self, body: bytes, purpose: KeyPurpose) -> None:
        require_purpose(purpose, HPKE_PURPOSES, "an HPKE key")
        if len(body) != PUBLIC_KEY_LEN:
            raise MalformedError("malformed HPKE public key")
        try:
            mlkem_public = mlkem.MLKEM768PublicKey.from_public_bytes(body[:MLKEM_PUBLIC_LEN])
            x25519_public = x25519.X25519PublicKey.from_public_bytes(body[MLKEM_PUBLIC_LEN:])
        except ValueError as exc:
            raise MalformedError("malformed HPKE public key") from exc
        self._body = bytes(body)
        self._purpose = purpose
        self._key = _hpke.MLKEM768X25519PublicKey(mlkem_public, x25519_public)

    def to_bytes(self) -> bytes:
        """Tagged public form (safe to store and publish)."""
        return Header(ObjectType.HPKE_PUBLIC_KEY, ALGORITHM, self._purpose).encode() + self._body

    @classmethod
    def from_bytes(cls, data: bytes, *, purpose: KeyPurpose) -> HpkePublicKey:
        """Load a public key, refusing it unless it is tagged with ``purpose``."""
        header = parse_header(data, object_type=ObjectType.HPKE_PUBLIC_KEY)
        if header.algorithm is not ALGORITHM:
            raise MalformedError(f"unsupported HPKE algorithm {header.algorithm.name}")
        if header.purpose is not purpose:
            raise KeyPurposeError(f"key has purpose {header.purpose.name}, expected {purpose.name}")
        return cls(data[HEADER_LEN:], purpose)


class HpkePrivateKey:
    """A recipient's private key. Store only wrapped by a ``KeyProvider``; never pickled."""

    __slots__ = ("_key", "_public", "_purpose", "_seed")

    def __init__(self, seed: bytes, purpose: KeyPurpose) -> None:
        require_purpose(purpose, HPKE_PURPOSES, "an HPKE key")
        if len(seed) != SEED_LEN:
            raise MalformedError("malformed HPKE private key")
        mlkem_private, x25519_private = _expand_seed(seed)
        self._seed = bytes(seed)
        self._purpose = purpose
        self._key = _hpke.MLKEM768X25519PrivateKey(mlkem_private, x25519_private)
        body = (
            mlkem_private.public_key().public_bytes_raw()
            + x25519_private.public_key().public_bytes_raw()
        )
        self._public = HpkePublicKey(body, purpose)

    @classmethod
    def generate(cls, purpose: KeyPurpose) -> HpkePrivateKey:
        """Create a new key pair for ``purpose`` (USER_HPKE or COMPLIANCE_HPKE)."""
        return cls(os.urandom(SEED_LEN), purpose)

    @property
    def purpose(self) -> KeyPurpose:
        return self._purpose

    def public_key(self) -> HpkePublicKey:
        return self._public

    def to_bytes(self) -> bytes:
        """Tagged secret form (header || 32-byte seed); wrap it before storing."""
        return Header(ObjectType.HPKE_PRIVATE_KEY, ALGORITHM, self._purpose).encode() + self._seed

    @classmethod
    def from_bytes(cls, data: bytes, *, purpose: KeyPurpose) -> HpkePrivateKey:
        """Load a private key, refusing it unless it is tagged with ``purpose``."""
        header = parse_header(data, object_type=ObjectType.HPKE_PRIVATE_KEY)
        if header.algorithm is not ALGORITHM:
            raise MalformedError(f"unsupported HPKE algorithm {header.algorithm.name}")
        if header.purpose is not purpose:
            raise KeyPurposeError(f"key has purpose {header.purpose.name}, expected {purpose.name}")
        return cls(data[HEADER_LEN:], purpose)

    def __repr__(self) -> str:
        return f"HpkePrivateKey(purpose={self._purpose.name})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("HpkePrivateKey must not be pickled; wrap it instead")


def _library_info(header: bytes, info: HpkeInfo, aad: bytes) -> bytes:
    if not isinstance(info, HpkeInfo):
        raise TypeError("info must be a registered HpkeInfo label")
    return encode_fields(HPKE_INFO_PREFIX, header, info.value, aad)


def seal(public_key: HpkePublicKey, plaintext: bytes, *, info: HpkeInfo, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` to ``public_key``.

    Guarantees: fresh ephemeral encapsulation per call; only the matching private key, with the
    same purpose, ``info`` label and byte-identical ``aad``, can open the result.
    """
    if not isinstance(public_key, HpkePublicKey):
        raise KeyPurposeError(f"expected an HpkePublicKey, got {type(public_key).__name__}")
    header = Header(ObjectType.HPKE_SEALED, ALGORITHM, public_key.purpose).encode()
    sealed = SUITE.encrypt(plaintext, public_key._key, info=_library_info(header, info, aad))
    return header + sealed


def open(private_key: HpkePrivateKey, sealed: bytes, *, info: HpkeInfo, aad: bytes) -> bytes:
    """Decrypt a ``seal`` result, or raise :class:`CryptoError`."""
    if not isinstance(private_key, HpkePrivateKey):
        raise KeyPurposeError(f"expected an HpkePrivateKey, got {type(private_key).__name__}")
    header = parse_header(sealed, object_type=ObjectType.HPKE_SEALED)
    if header.algorithm is not ALGORITHM:
        raise MalformedError(f"unsupported HPKE algorithm {header.algorithm.name}")
    if header.purpose is not private_key.purpose:
        raise KeyPurposeError(
            f"sealed to a {header.purpose.name} key, got a {private_key.purpose.name} key"
        )
    if len(sealed) < HEADER_LEN + ENC_LEN + TAG_LEN:
        raise MalformedError("sealed blob too short")
    library_info = _library_info(sealed[:HEADER_LEN], info, aad)
    try:
        return SUITE.decrypt(sealed[HEADER_LEN:], private_key._key, info=library_info)
    except (InvalidTag, ValueError):
        raise DecryptionError(
            "HPKE authentication failed (tampered, wrong key, info or AAD)"
        ) from None


def seal_key(public_key: HpkePublicKey, key: SymmetricKey, *, info: HpkeInfo, aad: bytes) -> bytes:
    """Seal a symmetric key (with its purpose tag), e.g. a room epoch key to a member."""
    return seal(public_key, key.to_bytes(), info=info, aad=aad)


def open_key(
    private_key: HpkePrivateKey,
    sealed: bytes,
    *,
    info: HpkeInfo,
    aad: bytes,
    purpose: KeyPurpose,
) -> SymmetricKey:
    """Open a ``seal_key`` result; refuses it unless the key inside has ``purpose``."""
    return SymmetricKey.from_bytes(open(private_key, sealed, info=info, aad=aad), purpose=purpose)
