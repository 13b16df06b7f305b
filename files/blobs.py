"""The vault's blobs in Django's Storage API (``STORAGES["vault"]``): ciphertext only.

A file's blobs live under one prefix (its uid): one segment per upload request that
sealed at least one whole chunk (``seg-<first chunk counter>``), and while uploading, at
most one sealed tail (``tail-<offset>``). Names are fixed by position, and a name is never
written twice: ``blob_write`` refuses a name that exists, because a segment that exists
but was never recorded (a crash between the write and the commit) holds chunk nonces
that must not be used again.

Writes stream: ``blob_write`` takes an iterator of ciphertext pieces and hands the backend
a file object that pulls them as it reads, so a request's body is never held whole.

Writes are durable when ``blob_write`` returns: an upload's offset is acknowledged (and
committed) only after its blobs are written, so they must survive a crash of the machine,
not only of the process. On a local folder (a backend with ``path()``, such as
``FileSystemStorage``) the blob is synced (``fdatasync``) and so is every folder its name
added, from the blob's own up to the first that existed; a remote backend (object
storage) acknowledges a write only once it is stored. So that the sync does not wait for
a whole request's bytes at its end, the kernel is asked to start writing each MiB to disk
as soon as it is written (``posix_fadvise(DONTNEED)``, which starts the write-back without
waiting for it): the disk works while the next bytes arrive, and the final sync waits for
the last MiB only.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator

from django.core.files import File
from django.core.files.storage import Storage, storages

READ_PIECE = 256 * 1024
# A local blob's data is handed to the disk's write-back every this many bytes written.
WRITEBACK_BYTES = 1024 * 1024


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


def _local_path(storage: Storage, name: str) -> str | None:
    """The blob's path on a local file system, or None for a backend without one."""
    try:
        return str(storage.path(name))
    except NotImplementedError:
        return None


def _written_back(pieces: Iterable[bytes], path: str) -> Iterator[bytes]:
    """``pieces`` unchanged; each time ``WRITEBACK_BYTES`` more were handed on (and so
    written: a backend asks for the next piece once it wrote the last), the kernel starts
    writing them from the page cache to disk without waiting (``POSIX_FADV_DONTNEED``
    starts the write-back of dirty pages, then drops those already clean). Best effort:
    durability is the final sync's; a blob that cannot be opened is left to it."""
    descriptor: int | None = None
    handed = started = 0
    try:
        for piece in pieces:
            if handed - started >= WRITEBACK_BYTES:
                try:
                    if descriptor is None:
                        descriptor = os.open(path, os.O_RDONLY)
                    os.posix_fadvise(descriptor, started, handed - started, os.POSIX_FADV_DONTNEED)
                except OSError:
                    pass  # the final sync writes it all
                started = handed
            handed += len(piece)
            yield piece
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _first_existing_folder(path: str) -> str:
    folder = os.path.dirname(path)
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _sync_folder(folder: str) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync(path: str, existing: str) -> None:
    """Sync the file at ``path`` and each folder from its own up to ``existing`` (the first
    that existed before the write): its data, its name, and the names of new folders."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(descriptor)
    finally:
        os.close(descriptor)
    folder = os.path.dirname(path)
    while True:
        _sync_folder(folder)
        if folder == existing or os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)


def blob_write(name: str, pieces: Iterable[bytes]) -> int:
    """Store the concatenated ``pieces`` as ``name``; returns its size in bytes.

    Guarantees: on return the blob is durable (on a local folder: synced, with its name;
    module docstring). Raises ``BlobExistsError`` (writing nothing) if ``name`` exists.
    If ``pieces`` raises, whatever part was written is removed and the exception
    propagates.
    """
    storage = vault_storage()
    if storage.exists(name):
        raise BlobExistsError(name)
    path = _local_path(storage, name)
    existing = _first_existing_folder(path) if path is not None else ""
    raw = _PullStream(_written_back(pieces, path) if path is not None else pieces)
    try:
        stored = storage.save(name, _PieceFile(raw, name))
    except BaseException:
        blob_delete(name)
        raise
    if stored != name:  # created by someone else meanwhile: the backend picked another name
        blob_delete(stored)
        raise BlobExistsError(name)
    if path is not None:
        try:
            _sync(path, existing)
        except BaseException:
            blob_delete(name)
            raise
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
    _folder_remove(storage, prefix)
    return len(names)


def _folder_remove(storage: Storage, prefix: str) -> None:
    """Remove the prefix's own folder once empty, on a backend with folders (the local
    file system): an empty folder named by the file's uid would still say, and date,
    that the file was there. Object stores have no folders (``path`` is not offered)."""
    try:
        folder = storage.path(prefix)
    except NotImplementedError:
        return
    with contextlib.suppress(OSError):  # absent, or not empty: kept
        os.rmdir(folder)
