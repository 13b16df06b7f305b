"""Uploading and reading back through the vault's services, as the tus edge does."""

from __future__ import annotations

from collections.abc import Iterable

from accounts.models import User
from files.models import StoredFile
from files.selectors import file_download_stream
from files.services import file_scan, upload_append, upload_create
from rooms.models import Room


def pieces(data: bytes, size: int) -> Iterable[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def upload(
    *,
    actor: User,
    room: Room,
    data: bytes,
    name: str = "statement.dat",
    cuts: Iterable[int] = (),
    piece: int = 10_000,
) -> StoredFile:
    """Create an upload and send ``data`` in requests cut at ``cuts``; returns the row."""
    stored = upload_create(actor=actor, room=room, length=len(data), name=name)
    offset = 0
    for end in [*sorted(c for c in cuts if 0 < c < len(data)), len(data)]:
        if end == offset:
            continue
        stored = upload_append(
            actor=actor, stored=stored, offset=offset, body=pieces(data[offset:end], piece)
        )
        offset = end
    return stored


def upload_and_scan(**kwargs: object) -> StoredFile:
    stored = upload(**kwargs)  # type: ignore[arg-type]
    file_scan(file_id=stored.pk)
    return StoredFile.objects.get(pk=stored.pk)


def download(reader: User, stored: StoredFile, first: int = 0, last: int | None = None) -> bytes:
    return b"".join(file_download_stream(reader=reader, stored=stored, first=first, last=last))
