"""Reading a stored file back: its ciphertext from the segments, decrypted chunk by chunk.

Memory is one chunk plus one read piece whatever the file's size. A chunk's plaintext is
released only after its tag verified; a missing blob, a tampered, reordered or truncated
stream raises ``FileIntegrityError`` before any byte of the bad chunk is released.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from files import blobs
from files.models import StoredFile
from files.sealing import FileMetadata, content_aad, metadata_open
from safechat.crypto import CryptoError, SymmetricKey
from safechat.crypto.envelope import HEADER_LEN
from safechat.crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    STREAM_HEADER_LEN,
    TAG_LEN,
    StreamDecryptor,
)
from safechat.keyring.services import file_key_unwrap_with_key


class FileIntegrityError(Exception):
    """The stored file is missing or failed authentication; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def file_open_with_epoch_key(
    stored: StoredFile, epoch_key: SymmetricKey
) -> tuple[SymmetricKey, FileMetadata]:
    """The file's own key and its name and type, opened with its epoch's key (one that
    ``compliance_epoch_keys`` opened): the compliance path, which holds no member's copy.

    Raises ``CryptoError`` when the wrapped key or the sealed metadata is not this file's
    under this epoch, ``ValueError`` or ``KeyError`` when the metadata is malformed.
    """
    file_key = file_key_unwrap_with_key(
        key=epoch_key,
        room_id=stored.room_id,
        file_uid=stored.uid,
        epoch=stored.epoch,
        wrapped=bytes(stored.wrapped_key),
    )
    metadata = metadata_open(
        file_key, bytes(stored.sealed_metadata), room_id=stored.room_id, file_uid=stored.uid
    )
    return file_key, metadata


def chunk_size_of(stored: StoredFile) -> int:
    header = bytes(stored.stream_header)
    if len(header) != STREAM_HEADER_LEN:
        return DEFAULT_CHUNK_SIZE
    return int.from_bytes(header[HEADER_LEN : HEADER_LEN + 4], "big")


def chunk_count(stored: StoredFile) -> int:
    return max(1, -(-stored.declared_length // chunk_size_of(stored)))


def _ciphertext_from(stored: StoredFile, first_chunk: int) -> Iterator[bytes]:
    """The stored chunks from ``first_chunk`` on, read segment by segment."""
    starts = [int(start) for start in stored.segment_starts]
    if not starts or starts[0] != 0 or starts != sorted(set(starts)):
        raise FileIntegrityError("segments missing or out of order")
    index = bisect.bisect_right(starts, first_chunk) - 1
    skip = (first_chunk - starts[index]) * (chunk_size_of(stored) + TAG_LEN)
    for start in starts[index:]:
        name = blobs.segment_name(stored.blob_prefix, start)
        if skip:
            yield from blobs.blob_read_from(name, skip)
            skip = 0
        else:
            yield from blobs.blob_read(name)


def _at_most(pieces: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """The first ``limit`` bytes of ``pieces``, then stop reading."""
    for piece in pieces:
        if len(piece) >= limit:
            yield piece[:limit]
            return
        limit -= len(piece)
        yield piece


def decrypted_chunks(
    stored: StoredFile, key: SymmetricKey, *, first_chunk: int = 0, last_chunk: int | None = None
) -> Iterator[bytes]:
    """The plaintext of chunks ``first_chunk``..``last_chunk`` (default: to the end).

    Only those chunks are authenticated and decrypted (and one byte past them is read,
    which tells the stream that the range's last chunk is not the file's): a range is
    served from intact chunks even if a later chunk is damaged. Raises
    ``FileIntegrityError`` at the first chunk of the range that fails, before releasing it.
    """
    total = chunk_count(stored)
    last = total - 1 if last_chunk is None else min(last_chunk, total - 1)
    size = chunk_size_of(stored)
    wanted = (last - first_chunk + 1) * size  # plaintext bytes to release at most
    try:
        decryptor = StreamDecryptor.resume(
            key,
            header=bytes(stored.stream_header),
            counter=first_chunk,
            aad=content_aad(room_id=stored.room_id, file_uid=stored.uid),
        )
        released = 0
        ciphertext = _ciphertext_from(stored, first_chunk)
        if last < total - 1:
            ciphertext = _at_most(ciphertext, (last - first_chunk + 1) * (size + TAG_LEN) + 1)
        for piece in ciphertext:
            out = decryptor.update(piece)
            if out:
                out = out[: wanted - released]
                released += len(out)
                yield out
                if released >= wanted:
                    return  # the range ends before the stream does
        if last == total - 1:
            out = decryptor.finalize()
            if out:
                yield out[: wanted - released]
        elif released < wanted:
            raise FileIntegrityError("stream truncated")
    except CryptoError as exc:
        raise FileIntegrityError(f"authentication failed: {type(exc).__name__}") from None
    except OSError as exc:
        raise FileIntegrityError(f"blob unreadable: {type(exc).__name__}") from None
