"""The vault's blobs in Django's Storage API (``STORAGES["vault"]``): ciphertext only.

A file's blobs live under one prefix (its uid): one segment per upload request that
sealed at least one whole chunk (``seg-<first chunk counter>``), and while uploading, at
most one sealed tail (``tail-<offset>``). Names are fixed by position, and a name is never
written twice: ``blob_write`` refuses a name that exists, because a segment that exists
but was never recorded (a crash between the write and the commit) holds chunk nonces
that must not be used again.

Writes stream: ``blob_write`` takes an iterator of ciphertext pieces and hands the backend
a file object that pulls them as it reads, so a request's body is never held whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from django.core.files import File
from django.core.files.storage import Storage, storages

READ_PIECE = 256 * 1024


class BlobExistsError(Exception):
    """A blob name is already taken: nothing was written."""


def vault_storage() -> Storage:
    return storages["vault"]


def segment_name(prefix: str, start: int) -> str:
    return f"{prefix}/seg-{start:010d}"


def preview_name(prefix: str) -> str:
    return f"{prefix}/preview"


def tail_name(prefix: str, offset: int) -> str:
    return f"{prefix}/tail-{offset:015d}"


class _PullStream(io.RawIOBase):
    """A read-only raw stream over an iterator of byte pieces (no piece is copied twice)."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces: Iterator[bytes] = iter(pieces)
        self._current = memoryview(b"")
        self._offset = 0
        self.written = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._offset >= len(self._current):
            try:
                self._current = memoryview(next(self._pieces))
            except StopIteration:
                return 0
            self._offset = 0
        size = min(len(buffer), len(self._current) - self._offset)
        buffer[:size] = self._current[self._offset : self._offset + size]
        self._offset += size
        self.written += size
        return size

    def drain(self) -> Iterator[bytes]:
        """What is left, piece by piece as it comes (for a backend that writes chunks)."""
        if self._offset < len(self._current):
            rest = bytes(self._current[self._offset :])
            self._offset = len(self._current)
            self.written += len(rest)
            yield rest
        for piece in self._pieces:
            if piece:
                self.written += len(piece)
                yield bytes(piece)


class _PieceFile(File):  # type: ignore[type-arg]
    """The pieces as a Django ``File``: ``chunks()`` hands them on as they come, so a
    backend that writes chunks (``FileSystemStorage``) writes each piece with one call
    instead of re-cutting it; ``read()`` (a backend that reads a file object) pulls
    through a buffered reader. A backend uses one or the other, never both."""

    def __init__(self, raw: _PullStream, name: str) -> None:
        super().__init__(io.BufferedReader(raw, READ_PIECE), name=name)
        self._raw = raw

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return self._raw.drain()


def blob_write(name: str, pieces: Iterable[bytes]) -> int:
    """Store the concatenated ``pieces`` as ``name``; returns its size in bytes.

    Raises ``BlobExistsError`` (writing nothing) if ``name`` exists. If ``pieces`` raises,
    whatever part was written is removed and the exception propagates.
    """
    storage = vault_storage()
    if storage.exists(name):
        raise BlobExistsError(name)
    raw = _PullStream(pieces)
    try:
        stored = storage.save(name, _PieceFile(raw, name))
    except BaseException:
        blob_delete(name)
        raise
    if stored != name:  # created by someone else meanwhile: the backend picked another name
        blob_delete(stored)
        raise BlobExistsError(name)
    return raw.written


def blob_read(name: str) -> Iterator[bytes]:
    """The blob's bytes in pieces; raises ``FileNotFoundError`` (or the backend's) if absent."""
    with vault_storage().open(name, "rb") as handle:
        while piece := handle.read(READ_PIECE):
            yield piece


def blob_read_from(name: str, offset: int) -> Iterator[bytes]:
    """The blob's bytes from ``offset`` on, in pieces."""
    with vault_storage().open(name, "rb") as handle:
        handle.seek(offset)
        while piece := handle.read(READ_PIECE):
            yield piece


def blob_read_all(name: str) -> bytes:
    with vault_storage().open(name, "rb") as handle:
        data = handle.read()
    return bytes(data)


def blob_exists(name: str) -> bool:
    return bool(vault_storage().exists(name))


def blob_delete(name: str) -> None:
    vault_storage().delete(name)


def blobs_delete_prefix(prefix: str) -> int:
    """Delete every blob under ``prefix``; returns how many there were."""
    storage = vault_storage()
    try:
        _folders, names = storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    for name in names:
        storage.delete(f"{prefix}/{name}")
    return len(names)
