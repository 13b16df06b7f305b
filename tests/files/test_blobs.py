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
