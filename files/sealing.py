"""The vault's use of the crypto core: associated data, sealed metadata, blob names.

Every ciphertext is bound to its file: the stream's associated data names the room and
the file's uid; the metadata's and the digest's too, each with its own purpose; a tail
also names its offset. A ciphertext moved to another file or row fails to open.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from safechat.crypto import SymmetricKey, associated_data, decrypt, encrypt
from safechat.crypto.labels import AdPurpose


def content_aad(*, room_id: int, file_uid: uuid.UUID) -> bytes:
    return associated_data(purpose=AdPurpose.FILE_CONTENT, room_id=room_id, file_id=file_uid)


def tail_aad(*, room_id: int, file_uid: uuid.UUID, offset: int) -> bytes:
    return associated_data(
        purpose=AdPurpose.FILE_UPLOAD_TAIL, room_id=room_id, file_id=file_uid, offset=offset
    )


def _metadata_aad(*, room_id: int, file_uid: uuid.UUID) -> bytes:
    return associated_data(purpose=AdPurpose.FILE_METADATA, room_id=room_id, file_id=file_uid)


def _digest_aad(*, room_id: int, file_uid: uuid.UUID) -> bytes:
    return associated_data(purpose=AdPurpose.FILE_DIGEST, room_id=room_id, file_id=file_uid)


@dataclass(frozen=True)
class FileMetadata:
    name: str
    content_type: str


def metadata_seal(
    key: SymmetricKey, metadata: FileMetadata, *, room_id: int, file_uid: uuid.UUID
) -> bytes:
    plaintext = json.dumps(
        {"name": metadata.name, "type": metadata.content_type}, ensure_ascii=False
    ).encode("utf-8")
    return encrypt(key, plaintext, aad=_metadata_aad(room_id=room_id, file_uid=file_uid))


def metadata_open(
    key: SymmetricKey, sealed: bytes, *, room_id: int, file_uid: uuid.UUID
) -> FileMetadata:
    """Raises ``CryptoError`` if the sealed metadata is not this file's."""
    data = json.loads(decrypt(key, sealed, aad=_metadata_aad(room_id=room_id, file_uid=file_uid)))
    return FileMetadata(name=str(data["name"]), content_type=str(data["type"]))


def digest_seal(key: SymmetricKey, digest: bytes, *, room_id: int, file_uid: uuid.UUID) -> bytes:
    return encrypt(key, digest, aad=_digest_aad(room_id=room_id, file_uid=file_uid))


def digest_open(key: SymmetricKey, sealed: bytes, *, room_id: int, file_uid: uuid.UUID) -> bytes:
    return decrypt(key, sealed, aad=_digest_aad(room_id=room_id, file_uid=file_uid))


def _preview_aad(*, room_id: int, file_uid: uuid.UUID) -> bytes:
    return associated_data(purpose=AdPurpose.FILE_PREVIEW, room_id=room_id, file_id=file_uid)


def preview_seal(key: SymmetricKey, image: bytes, *, room_id: int, file_uid: uuid.UUID) -> bytes:
    """A preview image sealed with the file's key (AES-256-GCM, bound to room and file)."""
    return encrypt(key, image, aad=_preview_aad(room_id=room_id, file_uid=file_uid))


def preview_open(key: SymmetricKey, sealed: bytes, *, room_id: int, file_uid: uuid.UUID) -> bytes:
    """Raises ``CryptoError`` if the sealed preview is not this file's."""
    return decrypt(key, sealed, aad=_preview_aad(room_id=room_id, file_uid=file_uid))
