"""Reading files back: who may, byte ranges, tampering detected and audited, cut-offs."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.http import Http404
from django.utils import timezone
from pytest_django import Settings

from accounts.models import ApiToken, User
from accounts.roles import Role
from accounts.services import api_token_create, user_deactivate
from accounts.session_policy import credential_still_valid
from audit.models import AuditEvent
from files.blobs import segment_name
from files.content import FileIntegrityError
from files.models import StoredFile
from files.selectors import (
    DownloadCutError,
    file_download_stream,
    file_get_for_user,
    file_list_for_user,
)
from files.services import file_delete
from rooms.services import membership_remove
from safechat.crypto.stream import DEFAULT_CHUNK_SIZE, TAG_LEN
from tests.accounts.factories import grant_role, make_user
from tests.files.helpers import download, upload_and_scan
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = DEFAULT_CHUNK_SIZE


@pytest.fixture
def shared(clamd: OwnClamd) -> tuple[User, User, StoredFile, bytes]:
    """An owner, a member, and a clean 5-chunk file the owner uploaded in three requests."""
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    data = os.urandom(5 * CHUNK - 100)
    stored = upload_and_scan(actor=owner, room=room, data=data, cuts=[CHUNK + 5, 3 * CHUNK + 1])
    assert stored.state == StoredFile.State.AVAILABLE
    return owner, member, stored, data


def _integrity_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="file.integrity.failed"))


def _blob_path(vault_dir: Path, stored: StoredFile, start: int) -> Path:
    return vault_dir / segment_name(stored.blob_prefix, start)


@pytest.mark.parametrize(
    ("first", "last"),
    [(0, 0), (0, CHUNK - 1), (CHUNK - 1, CHUNK), (CHUNK + 7, 3 * CHUNK + 2), (4 * CHUNK, None)],
)
def test_a_byte_range_is_exactly_those_bytes(
    shared: tuple[User, User, StoredFile, bytes], first: int, last: int | None
) -> None:
    _owner, member, stored, data = shared

    got = download(member, stored, first=first, last=last)

    assert got == data[first : None if last is None else last + 1]


def test_a_non_member_a_removed_member_and_a_deactivated_user_find_nothing(
    shared: tuple[User, User, StoredFile, bytes],
) -> None:
    owner, member, stored, _data = shared
    stranger = make_user()

    with pytest.raises(Http404):
        file_get_for_user(user=stranger, file_id=stored.uid)
    with pytest.raises(Http404):
        file_list_for_user(user=stranger, room_id=stored.room_id)

    membership_remove(actor=owner, room=stored.room, member=member)
    with pytest.raises(Http404):
        file_get_for_user(user=User.objects.get(pk=member.pk), file_id=stored.uid)

    other = make_user()
    room = stored.room
    from rooms.services import membership_add

    membership_add(actor=owner, room=room, user=other)
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    user_deactivate(actor=User.objects.get(pk=admin.pk), user=other)
    with pytest.raises(Http404):
        file_get_for_user(user=User.objects.get(pk=other.pk), file_id=stored.uid)


def test_a_removal_during_a_download_cuts_it(
    shared: tuple[User, User, StoredFile, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, member, stored, data = shared
    monkeypatch.setattr("files.selectors.RECHECK_CHUNKS", 1)
    stream = file_download_stream(reader=member, stored=stored)
    received = next(stream)

    # when the member is removed while the download runs
    membership_remove(actor=owner, room=stored.room, member=member)

    # then the next chunk is not sent
    def drain() -> None:
        nonlocal received
        for piece in stream:
            received += piece

    with pytest.raises(DownloadCutError):
        drain()
    assert len(received) < len(data)


def test_a_deleted_file_is_hidden_from_members_and_kept(
    shared: tuple[User, User, StoredFile, bytes], vault_dir: Path
) -> None:
    owner, member, stored, _data = shared

    file_delete(actor=owner, stored=stored)

    with pytest.raises(Http404):
        file_get_for_user(user=member, file_id=stored.uid)
    assert list(file_list_for_user(user=member, room_id=stored.room_id)) == []
    # kept, encrypted, for compliance until retention
    assert _blob_path(vault_dir, stored, 0).exists()
    assert AuditEvent.objects.filter(action="file.deleted").count() == 1


def test_a_member_cannot_delete_another_members_file(
    shared: tuple[User, User, StoredFile, bytes],
) -> None:
    _owner, member, stored, _data = shared

    with pytest.raises(Exception, match="only the uploader"):
        file_delete(actor=member, stored=stored)

    assert StoredFile.objects.get(pk=stored.pk).state == StoredFile.State.AVAILABLE


def _read_all(reader: User, stored: StoredFile) -> tuple[bytes, BaseException | None]:
    got = b""
    try:
        for piece in file_download_stream(reader=reader, stored=stored):
            got += piece
    except FileIntegrityError as exc:
        return got, exc
    return got, None


def test_a_flipped_bit_ends_the_download_before_that_chunk_and_is_audited(
    shared: tuple[User, User, StoredFile, bytes], vault_dir: Path
) -> None:
    _owner, member, stored, data = shared
    # given a bit flipped in chunk 2 (the second segment starts at chunk 1)
    path = _blob_path(vault_dir, stored, 1)
    blob = bytearray(path.read_bytes())
    blob[(CHUNK + TAG_LEN) + 10] ^= 0x01
    path.write_bytes(bytes(blob))

    got, error = _read_all(member, stored)

    assert isinstance(error, FileIntegrityError)
    # chunks 0 and 1 went out; not one byte of chunk 2
    assert got == data[: 2 * CHUNK]
    (event,) = _integrity_events()
    assert event.extra["during"] == "download"


@pytest.mark.parametrize(("first", "last"), [(0, CHUNK - 1), (10, 20)])
def test_a_range_before_a_tampered_chunk_is_served_and_nothing_is_audited(
    clamd: OwnClamd, vault_dir: Path, first: int, last: int
) -> None:
    # given a 4-chunk file sent in one request (one segment), a bit flipped in chunk 1
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    data = os.urandom(4 * CHUNK - 100)
    stored = upload_and_scan(actor=owner, room=room, data=data, piece=CHUNK)
    path = _blob_path(vault_dir, stored, 0)
    blob = bytearray(path.read_bytes())
    blob[(CHUNK + TAG_LEN) + 10] ^= 0x01
    path.write_bytes(bytes(blob))

    # when a member asks for a range inside chunk 0 only
    got = download(member, stored, first=first, last=last)

    # then those bytes, intact: only the chunks of the range are decrypted
    assert got == data[first : last + 1]
    assert _integrity_events() == []


def test_reordered_segments_fail(
    shared: tuple[User, User, StoredFile, bytes], vault_dir: Path
) -> None:
    _owner, member, stored, _data = shared
    first, second = _blob_path(vault_dir, stored, 0), _blob_path(vault_dir, stored, 1)
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b[: len(a)] if len(b) >= len(a) else b)
    second.write_bytes(a)

    got, error = _read_all(member, stored)

    assert isinstance(error, FileIntegrityError)
    assert got == b""
    assert len(_integrity_events()) == 1


def test_a_truncated_stream_fails_before_its_last_bytes(
    shared: tuple[User, User, StoredFile, bytes], vault_dir: Path
) -> None:
    _owner, member, stored, data = shared
    # given the last segment's final chunk cut off
    starts = stored.segment_starts
    path = _blob_path(vault_dir, stored, starts[-1])
    blob = path.read_bytes()
    path.write_bytes(blob[: -(len(blob) % (CHUNK + TAG_LEN) or CHUNK + TAG_LEN)])

    got, error = _read_all(member, stored)

    assert isinstance(error, FileIntegrityError)
    assert len(got) < len(data)
    assert data.startswith(got)
    assert len(_integrity_events()) == 1


def test_a_missing_blob_fails_and_is_audited(
    shared: tuple[User, User, StoredFile, bytes], vault_dir: Path
) -> None:
    _owner, member, stored, _data = shared
    _blob_path(vault_dir, stored, stored.segment_starts[-1]).unlink()

    _got, error = _read_all(member, stored)

    assert isinstance(error, FileIntegrityError)
    assert "blob unreadable" in error.reason
    assert len(_integrity_events()) == 1


def test_a_segment_dropped_from_the_row_fails(
    shared: tuple[User, User, StoredFile, bytes],
) -> None:
    _owner, member, stored, _data = shared
    StoredFile.objects.filter(pk=stored.pk).update(segment_starts=stored.segment_starts[:-1])

    _got, error = _read_all(member, StoredFile.objects.get(pk=stored.pk))

    assert isinstance(error, FileIntegrityError)


def test_an_uploader_made_compliance_officer_does_not_delete_their_old_file(
    clamd: OwnClamd,
) -> None:
    from django.test import Client

    from accounts.roles import Role
    from accounts.services import role_grant
    from tests.accounts.factories import grant_role, sign_in_client

    # given a member who uploaded a clean file, then was made a compliance officer
    owner, carol = make_user(), make_user()
    room = make_room(owner=owner, members=(carol,))
    stored = upload_and_scan(actor=carol, room=room, data=b"%PDF-1.4 statement")
    assert stored.state == StoredFile.State.AVAILABLE
    role_grant(
        actor=grant_role(make_user(), Role.SECURITY_ADMIN), user=carol, role=Role.COMPLIANCE_OFFICER
    )
    client = Client()
    sign_in_client(client, User.objects.get(pk=carol.pk), verified=True)

    # when the compliance officer deletes it over the API
    answer = client.delete(f"/api/v1/rooms/{room.pk}/files/{stored.uid}/")

    # then it is refused (read-only on chat: their files stay on the record), audited,
    # and the file is still there
    assert answer.status_code == 403
    assert StoredFile.objects.get(pk=stored.pk).state == StoredFile.State.AVAILABLE
    assert not AuditEvent.objects.filter(action="file.deleted").exists()
    (refused,) = AuditEvent.objects.filter(action="room.access.denied", actor_id=carol.pk)
    assert refused.extra["reason"] == "missing upload_file"


def test_an_integrity_failure_found_mid_download_over_the_api_is_recorded_as_that_request(
    shared: tuple[User, User, StoredFile, bytes], vault_dir: Path
) -> None:
    from django.test import Client

    from accounts.services import api_token_create

    # given a member with a read token, and chunk 2 of a clean file tampered with
    _owner, member, stored, _data = shared
    token, secret = api_token_create(actor=member, name="dl", scope="read", days=5)
    path = _blob_path(vault_dir, stored, 1)
    blob = bytearray(path.read_bytes())
    blob[(CHUNK + TAG_LEN) + 10] ^= 0x01
    path.write_bytes(bytes(blob))

    # when the member downloads it over the API with the token (the body is read after
    # the view returned)
    answer = Client().get(
        f"/api/v1/rooms/{stored.room_id}/files/{stored.uid}/download",
        headers={"Authorization": f"Bearer {secret}", "User-Agent": "dl-script"},
        REMOTE_ADDR="203.0.113.9",
    )
    assert answer.status_code == 200
    got = b"".join(answer.streaming_content)  # type: ignore[attr-defined]

    # then the body stopped short, and the failure is on the record as that API request:
    # its channel, address, user agent, token, and the request id of its download event
    assert len(got) < int(answer["Content-Length"])
    (event,) = _integrity_events()
    (began,) = AuditEvent.objects.filter(action="file.downloaded")
    assert (event.channel, event.source_ip, event.user_agent, event.token_id) == (
        "api",
        "203.0.113.9",
        "dl-script",
        token.pk,
    )
    assert event.request_id == began.request_id != ""


def test_a_token_download_stops_when_the_token_may_no_longer_be_used(
    shared: tuple[User, User, StoredFile, bytes],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
) -> None:
    # given a member downloading with an API token, under the token's own verdict
    _owner, member, stored, data = shared
    monkeypatch.setattr("files.selectors.RECHECK_CHUNKS", 1)
    token, _secret = api_token_create(actor=member, name="sync", scope="read", days=30)
    check = credential_still_valid(user=member, session=None, token=token)
    stream = file_download_stream(reader=member, stored=stored, still_allowed=check)
    received = next(stream)

    # when the tokens' maximum life is lowered below this token's age (the rule that
    # authentication applies, ``token_refusal_reason``: here ``past_max_life``)
    ApiToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - timedelta(days=3))
    settings.SAFECHAT_TOKEN_MAX_DAYS = 2

    # then the next chunk is not sent
    def drain() -> None:
        nonlocal received
        for piece in stream:
            received += piece

    with pytest.raises(DownloadCutError):
        drain()
    assert len(received) < len(data)


def test_deleting_a_file_refuses_a_json_body_with_members(clamd: OwnClamd) -> None:
    import json

    from django.test import Client

    from tests.accounts.factories import sign_in_client

    # given a member's clean file
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_and_scan(actor=owner, room=room, data=b"%PDF-1.4 statement")
    client = Client()
    sign_in_client(client, owner, verified=True)

    # when its uploader deletes it with a body the deletion does not take
    answer = client.delete(
        f"/api/v1/rooms/{room.pk}/files/{stored.uid}/",
        json.dumps({"purge": True}),
        content_type="application/json",
    )

    # then 400 naming the member, and the file is still there, no deletion recorded
    assert answer.status_code == 400
    assert [(e["pointer"], e["code"]) for e in answer.json()["errors"]] == [("#/purge", "unknown")]
    assert StoredFile.objects.get(pk=stored.pk).state == StoredFile.State.AVAILABLE
    assert not AuditEvent.objects.filter(action="file.deleted").exists()
