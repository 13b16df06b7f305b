"""A request's claim on an upload (its lease) is short and renewed while bytes arrive: a
writer that stopped blocks a resume only briefly, and never lets a position be sealed
twice. Each writer that stops is simulated by a body that stops yielding while another
request runs inside it, so the interleaving is exact."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.models import AuditEvent
from files.models import StoredFile
from files.services import (
    UploadConflictError,
    UploadGoneError,
    file_scan,
    upload_append,
    upload_create,
)
from files.services import uploads as upload_service
from safechat.crypto.stream import DEFAULT_CHUNK_SIZE
from tests.accounts.factories import make_user
from tests.files.helpers import download
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = DEFAULT_CHUNK_SIZE
LEASE = 0.5


@pytest.fixture(autouse=True)
def _short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_service, "LEASE_SECONDS", LEASE)
    monkeypatch.setattr(upload_service, "LEASE_RENEW_SECONDS", LEASE / 5)


def _reasons(action: str) -> list[str]:
    events = AuditEvent.objects.filter(action=action).order_by("seq")
    return [e.extra.get("reason", "") for e in events]


def _blobs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_writer_that_stopped_before_storing_anything_blocks_a_resume_only_until_its_lease_lapses(
    clamd: OwnClamd,
) -> None:
    # given a request that claimed the upload and then stopped before its first byte
    owner = make_user()
    room = make_room(owner=owner)
    data = os.urandom(2 * CHUNK + 7)
    stored = upload_create(actor=owner, room=room, length=len(data), name="a.bin")
    seen: dict[str, BaseException | StoredFile] = {}

    def stopped() -> Iterator[bytes]:
        # while it holds its lease, another request is refused
        try:
            upload_append(actor=owner, stored=stored, offset=0, body=[data])
        except UploadConflictError as exc:
            seen["during"] = exc
        time.sleep(LEASE + 0.2)
        # when it has lapsed, the client's resume at the recorded offset succeeds
        seen["after"] = upload_append(actor=owner, stored=stored, offset=0, body=[data])
        yield b"late bytes"

    # when the stopped request wakes and sends its bytes
    with pytest.raises(UploadConflictError):
        upload_append(actor=owner, stored=stored, offset=0, body=stopped())

    # then it sealed nothing: the resumed upload is whole and only its bytes are stored
    assert isinstance(seen["during"], UploadConflictError)
    assert isinstance(seen["after"], StoredFile)
    file_scan(file_id=stored.pk)
    row = StoredFile.objects.get(pk=stored.pk)
    assert row.state == StoredFile.State.AVAILABLE
    assert download(owner, row) == data
    assert _reasons("file.upload.refused") == ["busy", "lease lost"]


def test_a_writer_that_stopped_after_storing_chunks_ends_the_upload_rather_than_reseal(
    vault_dir: Path,
) -> None:
    # given a request that stored a whole chunk, then stopped past its lease
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_create(actor=owner, room=room, length=3 * CHUNK, name="a.bin")
    seen: dict[str, BaseException] = {}

    def stopped() -> Iterator[bytes]:
        yield b"a" * (CHUNK + 10)
        time.sleep(LEASE + 0.2)
        # when the client resumes at the recorded offset with other bytes
        try:
            upload_append(actor=owner, stored=stored, offset=0, body=[b"b" * CHUNK])
        except UploadGoneError as exc:
            seen["resume"] = exc
        yield b"a" * 10

    with pytest.raises(UploadConflictError):
        upload_append(actor=owner, stored=stored, offset=0, body=stopped())

    # then the resume is refused as gone: position 0 holds the first writer's ciphertext
    assert isinstance(seen["resume"], UploadGoneError)
    row = StoredFile.objects.get(pk=stored.pk)
    assert row.state == StoredFile.State.EXPIRED
    assert row.received_offset == 0
    assert row.lease_token == ""
    assert _blobs(vault_dir) == []
    assert _reasons("file.upload.expired") == ["writer lost after writing"]
    assert "writer lost after writing" in _reasons("file.upload.refused")
    assert not AuditEvent.objects.filter(action="file.uploaded").exists()


def test_a_request_that_keeps_sending_keeps_its_lease_past_the_lease_time(
    clamd: OwnClamd,
) -> None:
    # given a slow request that sends for longer than a lease lasts
    owner = make_user()
    room = make_room(owner=owner)
    data = os.urandom(3 * CHUNK)
    stored = upload_create(actor=owner, room=room, length=len(data), name="a.bin")
    seen: dict[str, BaseException] = {}

    def slow() -> Iterator[bytes]:
        for start in range(0, len(data), CHUNK // 2):
            time.sleep(LEASE / 4)
            yield data[start : start + CHUNK // 2]
        # when another request tries to take it, long after the first lease would have ended
        try:
            upload_append(actor=owner, stored=stored, offset=0, body=[data])
        except UploadConflictError as exc:
            seen["other"] = exc

    upload_append(actor=owner, stored=stored, offset=0, body=slow())

    # then the other request was refused as busy and the slow one completed
    assert isinstance(seen["other"], UploadConflictError)
    assert _reasons("file.upload.refused") == ["busy"]
    file_scan(file_id=stored.pk)
    assert download(owner, StoredFile.objects.get(pk=stored.pk)) == data
