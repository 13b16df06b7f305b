"""Blob writes through the Storage API: a backend that writes chunks (the file system) and
one that reads a file object (as object stores do) both store the pieces exactly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from pytest_django import Settings

from files import blobs


class _ReadingStorage(FileSystemStorage):
    """Saves by reading the content as a file object, a small odd size at a time."""

    def _save(self, name: str, content: Any) -> str:
        path = Path(self.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as out:
            while piece := content.read(7_777):
                out.write(piece)
        return name


def _pieces() -> list[bytes]:
    return [os.urandom(n) for n in (1, 0, 65_536, 3, 1_048_576, 0, 100_000)]


@pytest.mark.parametrize("backend", [FileSystemStorage, _ReadingStorage], ids=["chunks", "read"])
def test_a_blob_is_stored_exactly_as_its_pieces(
    backend: type[FileSystemStorage], settings: Settings, tmp_path: Path
) -> None:
    # given a vault storage of either kind
    settings.STORAGES = {
        **settings.STORAGES,
        "vault": {
            "BACKEND": f"{backend.__module__}.{backend.__qualname__}",
            "OPTIONS": {"location": str(tmp_path / "v"), "base_url": None},
        },
    }
    pieces = _pieces()

    # when pieces of all sizes (empty ones too) are written
    size = blobs.blob_write("abc/seg-0000000000", iter(pieces))

    # then the blob is their concatenation, and its size is counted
    assert blobs.blob_read_all("abc/seg-0000000000") == b"".join(pieces)
    assert size == sum(map(len, pieces))


def test_a_failing_source_leaves_no_blob(vault_dir: Path) -> None:
    def failing() -> Iterator[bytes]:
        yield b"x" * 100_000
        raise RuntimeError("the request broke")

    with pytest.raises(RuntimeError):
        blobs.blob_write("abc/seg-0000000000", failing())

    assert not blobs.blob_exists("abc/seg-0000000000")


def _synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what each ``fdatasync`` / ``fsync`` synced, by path (folders end in ``/``)."""
    synced: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def fdatasync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fdatasync(descriptor)

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}") + "/")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_written_blob_is_synced_with_every_folder_its_name_added(
    vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an empty vault (its folder not created yet) whose syncs are watched
    synced = _synced(monkeypatch)
    assert not vault_dir.exists()

    # when an upload's first segment is written, then its second
    blobs.blob_write("abc/seg-0000000000", [b"x" * 1000])
    first = list(synced)
    synced.clear()
    blobs.blob_write("abc/seg-0000000016", [b"y" * 1000])

    # then before each write returns, the blob's data and its name are on disk; the
    # first also syncs the folders it created (the upload's, the vault's) and the one
    # that holds them, so the new names survive a crash of the machine
    blob = str(vault_dir / "abc" / "seg-0000000000")
    assert first == [blob, f"{vault_dir}/abc/", f"{vault_dir}/", f"{vault_dir.parent}/"]
    assert synced == [str(vault_dir / "abc" / "seg-0000000016"), f"{vault_dir}/abc/"]


def test_a_blob_whose_sync_fails_is_removed_and_the_failure_propagates(
    vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a disk that fails to sync
    def failing(descriptor: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)

    # when a blob is written, then the write fails and leaves nothing behind
    with pytest.raises(OSError, match="Input/output error"):
        blobs.blob_write("abc/seg-0000000000", [b"x" * 1000])
    assert not blobs.blob_exists("abc/seg-0000000000")


def test_a_large_blob_is_handed_to_the_disk_as_it_is_written(
    vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the kernel's write-back requests watched
    advised: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def fadvise(descriptor: int, offset: int, length: int, advice: int) -> None:
        advised.append((offset, length, advice))
        real(descriptor, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    piece = blobs.WRITEBACK_BYTES // 2

    # when a blob of five write-back steps is written half a step at a time
    blobs.blob_write("abc/seg-0000000000", (os.urandom(piece) for _ in range(10)))

    # then each step already written was handed on before the next was written (the
    # final sync writes the last), in order, and the blob is whole
    step = blobs.WRITEBACK_BYTES
    assert advised == [(n * step, step, os.POSIX_FADV_DONTNEED) for n in range(4)]
    assert len(blobs.blob_read_all("abc/seg-0000000000")) == 10 * piece
