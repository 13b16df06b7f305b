"""Uploads through the services: round trips, resumption, scanning, refusals, expiry."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django import Settings

from audit.models import AuditEvent
from files.content import chunk_size_of
from files.models import StoredFile
from files.scanner import ScannerUnavailable
from files.selectors import file_get_for_user, file_view
from files.services import (
    UploadConflictError,
    UploadGoneError,
    UploadInvalidError,
    UploadTooLargeError,
    file_scan,
    files_scan_pending,
    upload_append,
    upload_create,
    upload_terminate,
    uploads_expire,
)
from rooms.models import Membership
from safechat.crypto.stream import DEFAULT_CHUNK_SIZE
from tests.accounts.factories import make_user
from tests.files.helpers import download, pieces, upload, upload_and_scan
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd, eicar

# Real commits: blobs are removed and scans queued after commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = DEFAULT_CHUNK_SIZE


def _actions(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def _blobs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_a_file_round_trips_through_upload_scan_and_download(clamd: OwnClamd, size: int) -> None:
    # given a member of a room
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    data = os.urandom(size)

    # when they upload it in one request and it scans clean
    stored = upload_and_scan(actor=owner, room=room, data=data)

    # then every member can read it back, with its name and the plaintext's SHA-256
    assert stored.state == StoredFile.State.AVAILABLE
    assert download(member, stored) == data
    view = file_view(reader=member, stored=stored)
    assert view.name == "statement.dat"
    assert view.size == size
    assert view.sha256 == hashlib.sha256(data).hexdigest()
    assert len(_actions("file.uploaded")) == 1
    assert len(_actions("file.scan.clean")) == 1


@pytest.mark.parametrize(
    "cuts",
    [
        [1],
        [CHUNK - 1],
        [CHUNK],
        [CHUNK + 1],
        [7, 8, 9, CHUNK * 2],
        [CHUNK * 10 + 3, CHUNK * 20, CHUNK * 20 + 1],
    ],
)
def test_an_upload_interrupted_anywhere_resumes_to_the_same_file(
    clamd: OwnClamd, cuts: list[int]
) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    data = os.urandom(3 * 1024 * 1024 + 17)

    stored = upload_and_scan(actor=owner, room=room, data=data, cuts=cuts, piece=33_333)

    assert stored.state == StoredFile.State.AVAILABLE
    assert download(owner, stored) == data
    assert stored.tail_name == ""


def test_a_request_ending_on_a_chunk_boundary_seals_its_last_chunk_and_leaves_no_tail(
    clamd: OwnClamd, vault_dir: Path
) -> None:
    # given an upload of three chunks and a byte
    owner = make_user()
    room = make_room(owner=owner)
    data = os.urandom(3 * CHUNK + 1)
    stored = upload_create(actor=owner, room=room, length=len(data), name="aligned.bin")

    # when a first request sends exactly two chunks
    stored = upload_append(
        actor=owner, stored=stored, offset=0, body=pieces(data[: 2 * CHUNK], 10_000)
    )

    # then both are sealed in its segment (more bytes are declared: neither is the last)
    # and no tail holds plaintext of them
    assert (stored.received_offset, stored.chunks_sealed, stored.tail_name) == (2 * CHUNK, 2, "")
    assert not list(vault_dir.rglob("tail-*"))
    # and the rest completes the same file
    stored = upload_append(
        actor=owner, stored=stored, offset=2 * CHUNK, body=pieces(data[2 * CHUNK :], 10_000)
    )
    file_scan(file_id=stored.pk)
    stored.refresh_from_db()
    assert stored.state == StoredFile.State.AVAILABLE
    assert download(owner, stored) == data


def test_a_client_that_disconnects_keeps_what_arrived(clamd: OwnClamd, vault_dir: Path) -> None:
    # given an upload whose first request ends (the client went away) mid-chunk
    owner = make_user()
    room = make_room(owner=owner)
    data = os.urandom(2 * CHUNK + 100)
    stored = upload_create(actor=owner, room=room, length=len(data), name="a.bin")

    stored = upload_append(actor=owner, stored=stored, offset=0, body=[data[: CHUNK + 10]])

    # then the offset is where the bytes stopped; a whole chunk is stored, the rest sealed
    assert stored.received_offset == CHUNK + 10
    assert stored.state == StoredFile.State.UPLOADING
    assert stored.tail_name
    # and it is invisible to members until complete and scanned
    with pytest.raises(Exception, match="no such file"):
        file_get_for_user(user=owner, file_id=stored.uid)

    # when the client resumes at that offset
    stored = upload_append(actor=owner, stored=stored, offset=CHUNK + 10, body=[data[CHUNK + 10 :]])
    file_scan(file_id=stored.pk)

    assert download(owner, StoredFile.objects.get(pk=stored.pk)) == data
    # and the old tail is gone: one segment per request, nothing else
    assert [p.name for p in _blobs(vault_dir)] == ["seg-0000000000", "seg-0000000001"]


def test_a_request_at_the_wrong_offset_is_a_conflict_and_changes_nothing() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_create(actor=owner, room=room, length=100, name="a.bin")
    stored = upload_append(actor=owner, stored=stored, offset=0, body=[b"x" * 40])

    with pytest.raises(UploadConflictError):
        upload_append(actor=owner, stored=stored, offset=30, body=[b"y" * 10])

    row = StoredFile.objects.get(pk=stored.pk)
    assert row.received_offset == 40
    assert row.lease_token == ""
    refusals = _actions("file.upload.refused")
    assert [e.extra["reason"] for e in refusals] == ["offset mismatch"]


def test_a_body_running_past_the_declared_length_is_refused_and_stores_nothing(
    vault_dir: Path,
) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_create(actor=owner, room=room, length=100, name="a.bin")
    stored = upload_append(actor=owner, stored=stored, offset=0, body=[b"x" * 40])
    before = _blobs(vault_dir)

    with pytest.raises(UploadTooLargeError):
        upload_append(actor=owner, stored=stored, offset=40, body=[b"y" * 50, b"z" * 20])

    row = StoredFile.objects.get(pk=stored.pk)
    assert row.received_offset == 40
    assert row.state == StoredFile.State.UPLOADING
    assert _blobs(vault_dir) == before
    assert _actions("file.uploaded") == []


def test_a_body_past_the_length_after_whole_chunks_were_written_ends_the_upload(
    vault_dir: Path,
) -> None:
    # given chunks already sealed in this request: their nonces must never be used again
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_create(actor=owner, room=room, length=3 * CHUNK, name="a.bin")

    with pytest.raises(UploadTooLargeError):
        upload_append(actor=owner, stored=stored, offset=0, body=pieces(b"x" * 4 * CHUNK, CHUNK))

    row = StoredFile.objects.get(pk=stored.pk)
    assert row.state == StoredFile.State.EXPIRED
    assert _blobs(vault_dir) == []
    with pytest.raises(UploadGoneError):
        upload_append(actor=owner, stored=row, offset=0, body=[b"x"])


def test_an_upload_over_the_maximum_is_refused_at_creation(settings: Settings) -> None:
    settings.SAFECHAT_FILE_MAX_BYTES = 1000
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(UploadTooLargeError):
        upload_create(actor=owner, room=room, length=1001, name="big.bin")

    assert StoredFile.objects.count() == 0
    assert _actions("file.upload.started") == []
    assert [e.extra["reason"] for e in _actions("file.upload.refused")] == ["too large"]


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "a/b.pdf",
        "a\\b.pdf",
        "..",
        "report\x00.pdf",
        "report\n.pdf",
        "invoice\u202egpj.exe",
        "\u2066name\u2069.pdf",
        "zero\u200bwidth.pdf",
        "\u200b\u200b",
        "   ",
        "\u3000",
        "",
        "x" * 256,
    ],
)
def test_a_bad_name_is_refused_clearly_and_nothing_is_written(name: str) -> None:
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(UploadInvalidError) as refused:
        upload_create(actor=owner, room=room, length=10, name=name)

    assert str(refused.value)
    assert StoredFile.objects.count() == 0
    assert [e.extra["reason"] for e in _actions("file.upload.refused")] == ["bad name"]


def test_a_read_only_member_and_an_archived_room_cannot_upload() -> None:
    owner, reader = make_user(), make_user()
    room = make_room(owner=owner, members=(reader,), role=Membership.Role.READ_ONLY)

    with pytest.raises(Exception, match="not allowed"):
        upload_create(actor=reader, room=room, length=10, name="a.txt")

    assert StoredFile.objects.count() == 0


def test_eicar_is_refused_discarded_and_audited(clamd: OwnClamd, vault_dir: Path) -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    stored = upload_and_scan(actor=owner, room=room, data=eicar(), name="eicar.txt")

    assert stored.state == StoredFile.State.INFECTED
    assert stored.verdict.startswith("SafeChat.Test.EICAR")
    assert _blobs(vault_dir) == []
    with pytest.raises(Exception, match="no such file"):
        file_get_for_user(user=member, file_id=stored.uid)
    (event,) = _actions("file.scan.infected")
    assert event.extra["uploader"] == owner.pk
    assert _actions("file.scan.clean") == []


def test_with_clamd_down_a_file_stays_pending_and_is_scanned_later(
    clamd: OwnClamd, settings: Settings, tmp_path: Path
) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    socket_path = settings.SAFECHAT_CLAMD_SOCKET
    settings.SAFECHAT_CLAMD_SOCKET = str(tmp_path / "down.sock")
    stored = upload(actor=owner, room=room, data=b"quarterly figures")

    with pytest.raises(ScannerUnavailable):
        file_scan(file_id=stored.pk)

    row = StoredFile.objects.get(pk=stored.pk)
    assert row.state == StoredFile.State.PENDING_SCAN
    assert row.scan_attempts == 1
    with pytest.raises(Exception, match="no such file"):
        file_get_for_user(user=owner, file_id=stored.uid)

    # when clamd is back, the sweep scans it
    settings.SAFECHAT_CLAMD_SOCKET = socket_path
    assert files_scan_pending() == 1
    assert StoredFile.objects.get(pk=stored.pk).state == StoredFile.State.AVAILABLE


def test_without_clamd_configured_files_wait_unscanned() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload(actor=owner, room=room, data=b"quarterly figures")

    assert file_scan(file_id=stored.pk) == StoredFile.State.PENDING_SCAN
    assert StoredFile.objects.get(pk=stored.pk).scan_attempts == 0


def test_termination_removes_the_partial_blob(vault_dir: Path) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_create(actor=owner, room=room, length=3 * CHUNK, name="a.bin")
    stored = upload_append(actor=owner, stored=stored, offset=0, body=[b"x" * (CHUNK + 9)])
    assert _blobs(vault_dir)

    upload_terminate(actor=owner, stored=stored)

    assert _blobs(vault_dir) == []
    assert StoredFile.objects.get(pk=stored.pk).state == StoredFile.State.DELETED
    assert len(_actions("file.upload.terminated")) == 1
    with pytest.raises(UploadGoneError):
        upload_append(actor=owner, stored=stored, offset=CHUNK + 9, body=[b"x"])


def test_an_abandoned_upload_expires_and_its_blobs_are_removed(vault_dir: Path) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_create(actor=owner, room=room, length=3 * CHUNK, name="a.bin")
    stored = upload_append(actor=owner, stored=stored, offset=0, body=[b"x" * (CHUNK + 9)])
    fresh = upload_create(actor=owner, room=room, length=10, name="b.bin")
    StoredFile.objects.filter(pk=stored.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert uploads_expire() == 1

    assert _blobs(vault_dir) == []
    assert StoredFile.objects.get(pk=stored.pk).state == StoredFile.State.EXPIRED
    assert StoredFile.objects.get(pk=fresh.pk).state == StoredFile.State.UPLOADING
    assert len(_actions("file.upload.expired")) == 1


def test_the_chunk_size_is_the_stream_default() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_create(actor=owner, room=room, length=10, name="a.bin")

    assert chunk_size_of(stored) == CHUNK
