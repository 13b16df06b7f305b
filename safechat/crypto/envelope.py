"""The self-describing binary header carried by every key, ciphertext and signature.

Layout (6 bytes, all integers unsigned)::

    offset  size  field
    0       2     magic  b"SC"
    2       1     format version (FORMAT_VERSION)
    3       1     object type    (ObjectType)
    4       1     algorithm      (Algorithm)
    5       1     key purpose    (KeyPurpose)

The header is always part of the AEAD associated data (or HPKE info, or signed message) of the
object it introduces, so flipping a tag makes authentication fail instead of re-purposing a key.
A new algorithm gets a new ``Algorithm`` value; readers refuse values they do not know.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from safechat.crypto.errors import KeyPurposeError, MalformedError

MAGIC = b"SC"
FORMAT_VERSION = 1
HEADER_LEN = 6

_U32 = struct.Struct(">I")


class ObjectType(enum.IntEnum):
    """What the bytes after the header are."""

    SYMMETRIC_KEY = 0x01
    AEAD_CIPHERTEXT = 0x02
    HPKE_PUBLIC_KEY = 0x03
    HPKE_PRIVATE_KEY = 0x04
    HPKE_SEALED = 0x05
    SIGNING_PUBLIC_KEY = 0x06
    SIGNING_PRIVATE_KEY = 0x07
    SIGNATURE = 0x08
    STREAM = 0x09
    PROVIDER_WRAPPED_KEY = 0x0A
    KEY_WRAPPED_KEY = 0x0B


class Algorithm(enum.IntEnum):
    """Which construction produced or consumes the object."""

    AES_256_GCM = 0x01
    HPKE_MLKEM768X25519_HKDFSHA256_AES256GCM = 0x02
    ED25519 = 0x03
    STREAM_AES256GCM_HKDFSHA256 = 0x04
    # For providers (cloud KMS, Vault) whose wrapped payload is opaque to us.
    EXTERNAL = 0x7F


class KeyPurpose(enum.IntEnum):
    """What a key may be used for; a key is refused everywhere else."""

    ROOM_EPOCH = 0x01
    FILE = 0x02
    MASTER_WRAP = 0x03
    USER_HPKE = 0x04
    COMPLIANCE_HPKE = 0x05
    AUDIT_SIGNING = 0x06
    EXPORT_SIGNING = 0x07
    RECORD_MAC = 0x08


SYMMETRIC_PURPOSES = frozenset(
    {KeyPurpose.ROOM_EPOCH, KeyPurpose.FILE, KeyPurpose.MASTER_WRAP, KeyPurpose.RECORD_MAC}
)
HPKE_PURPOSES = frozenset({KeyPurpose.USER_HPKE, KeyPurpose.COMPLIANCE_HPKE})
SIGNING_PURPOSES = frozenset({KeyPurpose.AUDIT_SIGNING, KeyPurpose.EXPORT_SIGNING})


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed header; ``encode()`` gives back the exact bytes that are authenticated."""

    object_type: ObjectType
    algorithm: Algorithm
    purpose: KeyPurpose

    def encode(self) -> bytes:
        """Serialise to the 6-byte wire form."""
        return MAGIC + bytes((FORMAT_VERSION, self.object_type, self.algorithm, self.purpose))


def parse_header(data: bytes, *, object_type: ObjectType) -> Header:
    """Parse and check the header at the start of ``data``.

    Raises :class:`MalformedError` for truncation, a foreign magic, an unknown version or tag,
    or an object of another type than ``object_type``. Never inspects anything after the header.
    """
    if len(data) < HEADER_LEN:
        raise MalformedError("blob too short for a SafeChat header")
    if data[:2] != MAGIC:
        raise MalformedError("not a SafeChat crypto blob (bad magic)")
    if data[2] != FORMAT_VERSION:
        raise MalformedError(f"unsupported SafeChat format version {data[2]}")
    try:
        found_type = ObjectType(data[3])
        algorithm = Algorithm(data[4])
        purpose = KeyPurpose(data[5])
    except ValueError as exc:
        raise MalformedError("unknown object type, algorithm or purpose tag") from exc
    if found_type is not object_type:
        raise MalformedError(f"expected a {object_type.name} blob, got {found_type.name}")
    return Header(found_type, algorithm, purpose)


def require_purpose(purpose: KeyPurpose, allowed: frozenset[KeyPurpose], what: str) -> None:
    """Refuse a purpose that does not belong to a key kind (e.g. FILE for an HPKE key)."""
    if purpose not in allowed:
        raise KeyPurposeError(f"{what} cannot have purpose {purpose.name}")


def encode_fields(*parts: bytes) -> bytes:
    """Concatenate byte strings unambiguously: each is prefixed by its 32-bit big-endian length.

    Used wherever several values are fed to one primitive input (HKDF info, HPKE info,
    signed messages) so that ``("ab", "c")`` and ``("a", "bc")`` can never collide.
    """
    out = bytearray()
    for part in parts:
        out += _U32.pack(len(part))
        out += part
    return bytes(out)
