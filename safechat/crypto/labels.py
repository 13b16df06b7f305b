"""Registry of every domain-separation label the crypto core feeds into a KDF, HPKE or a signature.

Keeping them in one module makes it easy to check (and a test does) that no two uses share a
label: a key or ciphertext made for one context can then never be accepted in another.
Labels are versioned (``v1``) so that a future format can change them without ambiguity.
"""

from __future__ import annotations

import enum


class KdfLabel(bytes, enum.Enum):
    """``info`` labels for HKDF-SHA256 (see :mod:`safechat.crypto.kdf`)."""

    AEAD_SUBKEY = b"safechat/v1/kdf/aead-subkey"
    STREAM_FILE_KEY = b"safechat/v1/kdf/stream-file-key"
    STREAM_UPLOAD_TAIL = b"safechat/v1/kdf/stream-upload-tail"
    DERIVED_KEY = b"safechat/v1/kdf/derived-key"
    RECORD_MAC = b"safechat/v1/kdf/record-mac"


class HpkeInfo(bytes, enum.Enum):
    """HPKE ``info`` labels: what a sealed payload is for (see :mod:`safechat.crypto.hpke`)."""

    ROOM_EPOCH_KEY = b"safechat/v1/hpke/room-epoch-key"
    COMPLIANCE_EXPORT_KEY = b"safechat/v1/hpke/compliance-export-key"


class SignatureContext(bytes, enum.Enum):
    """What an Ed25519 signature vouches for (see :mod:`safechat.crypto.signing`)."""

    AUDIT_CHECKPOINT = b"safechat/v1/sig/audit-checkpoint"
    EXPORT_MANIFEST = b"safechat/v1/sig/export-manifest"


class MacLabel(bytes, enum.Enum):
    """What a record MAC vouches for (see :mod:`safechat.crypto.mac`)."""

    USER_PUBLIC_KEY = b"safechat/v1/mac/user-public-key"
    COMPLIANCE_PUBLIC_KEY = b"safechat/v1/mac/compliance-public-key"
    SEALED_EPOCH_KEY = b"safechat/v1/mac/sealed-epoch-key"


class AdPurpose(enum.StrEnum):
    """The ``purpose`` field of :func:`safechat.crypto.aead.associated_data`.

    Callers may pass another string, but adding it here keeps the list reviewable.
    """

    MESSAGE = "message"
    FILE_KEY = "file-key"
    FILE_CONTENT = "file-content"
    FILE_METADATA = "file-metadata"
    FILE_DIGEST = "file-digest"
    FILE_PREVIEW = "file-preview"
    FILE_UPLOAD_TAIL = "file-upload-tail"
    ROOM_EPOCH_KEY = "room-epoch-key"
    USER_PRIVATE_KEY = "user-private-key"
    COMPLIANCE_PRIVATE_KEY = "compliance-private-key"
    RECORD_MAC_KEY = "record-mac-key"
    SUPERVISION_HITS = "supervision-hits"
    SUPERVISION_NOTE = "supervision-note"


# Prefixes that frame the application's input before it reaches a primitive.
HPKE_INFO_PREFIX = b"safechat/v1/hpke"
SIGNATURE_PREFIX = b"safechat/v1/sig"
MAC_PREFIX = b"safechat/v1/mac"
ASSOCIATED_DATA_MAGIC = b"SCAD\x01"
