"""The tus endpoint through the real ASGI application: bodies streamed, never spooled."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from audit.models import AuditEvent
from files import asgi as files_asgi
from files.models import StoredFile
from files.services import file_scan
from files.tus import metadata_encode
from tests.accounts.factories import make_user, sign_in_client
from tests.files.asgi_client import Answer, call, session_cookie_headers
from tests.files.helpers import download
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def _token(user: User, scope: str = ApiToken.Scope.WRITE) -> dict[str, str]:
    _token_row, secret = api_token_create(actor=user, name="client", scope=scope)
    return {"Authorization": f"Bearer {secret}"}


def _create(
    auth: dict[str, str],
    room_id: int,
    length: int,
    name: str = "report.dat",
    filetype: str = "application/octet-stream",
) -> Answer:
    return call(
        "POST",
        f"/api/v1/rooms/{room_id}/uploads/",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata_encode({"filename": name, "filetype": filetype}),
        },
    )


def _patch(auth: dict[str, str], location: str, offset: int, data: bytes, **kwargs: Any) -> Answer:
    headers = {
        **auth,
        **TUS,
        "Content-Type": OCTETS,
        "Upload-Offset": str(offset),
        "Content-Length": str(len(data)),
        **kwargs.pop("headers", {}),
    }
    return call("PATCH", location, headers=headers, pieces=_pieces(data), **kwargs)


def _pieces(data: bytes, size: int = 16_384) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _assert_problem(answer: Answer, status: int, code: str) -> None:
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["type"] == f"urn:safechat:problem:{code}"
    assert (body["status"], body["code"]) == (status, code)
    assert body["title"]
    assert body["detail"]
    assert body["instance"].startswith("/api/v1/")


def _path(location: str) -> str:
    return "/" + location.split("://", 1)[-1].split("/", 1)[1]


@pytest.fixture
def member() -> tuple[User, Any]:
    owner = make_user()
    room = make_room(owner=owner)
    return owner, room


def test_an_upload_created_patched_in_two_requests_and_read_back(
    clamd: OwnClamd, member: tuple[User, Any]
) -> None:
    owner, room = member
    auth = _token(owner)
    data = os.urandom(300_000)

    created = _create(auth, room.pk, len(data))
    assert created.status == 201, created.body
    assert created.headers["tus-resumable"] == "1.0.0"
    assert "upload-expires" in created.headers
    location = _path(created.headers["location"])

    first = _patch(auth, location, 0, data[:100_001])
    assert first.status == 204, first.body
    assert first.headers["upload-offset"] == "100001"

    head = call("HEAD", location, headers={**auth, **TUS})
    assert head.status == 200
    assert head.headers["upload-offset"] == "100001"
    assert head.headers["upload-length"] == str(len(data))
    assert head.headers["cache-control"] == "no-store"

    second = _patch(auth, location, 100_001, data[100_001:])
    assert second.status == 204
    assert second.headers["upload-offset"] == str(len(data))
    stored = StoredFile.objects.get()
    file_scan(file_id=stored.pk)
    assert download(owner, StoredFile.objects.get()) == data


def test_a_disconnect_mid_body_keeps_what_arrived_and_head_says_where(
    member: tuple[User, Any],
) -> None:
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 200_000).headers["location"])

    _patch(auth, location, 0, os.urandom(50_000), disconnect=True)

    head = call("HEAD", location, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "50000"
    assert head.headers["safechat-upload-state"] == "uploading"


def test_options_says_what_the_server_speaks(member: tuple[User, Any], settings: Settings) -> None:
    owner, room = member
    answer = call("OPTIONS", f"/api/v1/rooms/{room.pk}/uploads/", headers=_token(owner))

    assert answer.status == 204
    assert answer.headers["tus-version"] == "1.0.0"
    assert answer.headers["tus-extension"] == "creation,termination,expiration"
    assert answer.headers["tus-max-size"] == str(settings.SAFECHAT_FILE_MAX_BYTES)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Tus-Resumable": None}, 412, "tus_version"),
        ({"Tus-Resumable": "0.2.2"}, 412, "tus_version"),
        ({"Upload-Length": None}, 400, "bad_header"),
        ({"Upload-Length": "-1"}, 400, "bad_header"),
        ({"Upload-Length": "12abc"}, 400, "bad_header"),
        ({"Upload-Length": "104857601"}, 413, "too_large"),
        ({"Upload-Metadata": "filename not*base64"}, 400, "bad_header"),
        ({"Upload-Metadata": "filename YQ==,filename YQ=="}, 400, "bad_header"),
        ({"Upload-Metadata": "filename " + base64.b64encode(b"../x").decode()}, 400, "invalid"),
        (
            {"Upload-Metadata": "filename " + base64.b64encode("a\u202eb".encode()).decode()},
            400,
            "invalid",
        ),
        ({"Upload-Defer-Length": "1"}, 400, "bad_header"),
    ],
)
def test_bad_creation_headers_are_clear_4xx_and_create_nothing(
    member: tuple[User, Any], headers: dict[str, str | None], status: int, code: str
) -> None:
    owner, room = member
    base = {
        **_token(owner),
        **TUS,
        "Upload-Length": "10",
        "Upload-Metadata": metadata_encode({"filename": "a.pdf"}),
    }
    for name, value in headers.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value

    answer = call("POST", f"/api/v1/rooms/{room.pk}/uploads/", headers=base)

    # then a problem document (RFC 9457) with a stable code, still speaking tus
    assert answer.status == status, answer.body
    _assert_problem(answer, status, code)
    assert StoredFile.objects.count() == 0
    assert not AuditEvent.objects.filter(action="file.upload.started").exists()


def test_a_creation_request_with_a_body_is_refused_before_django(member: tuple[User, Any]) -> None:
    owner, room = member
    answer = call(
        "POST",
        f"/api/v1/rooms/{room.pk}/uploads/",
        headers={**_token(owner), **TUS, "Upload-Length": "10", "Content-Length": "10"},
        pieces=[b"0123456789"],
    )

    assert answer.status == 413
    _assert_problem(answer, 413, "body_not_allowed")
    assert StoredFile.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"headers": {"Content-Type": "application/octet-stream"}}, 415, "content_type"),
        ({"headers": {"Tus-Resumable": "2.0.0"}}, 412, "tus_version"),
        ({"headers": {"Upload-Offset": "x"}}, 400, "bad_header"),
        ({"offset": 5}, 409, "offset_conflict"),
        ({"data": b"y" * 101}, 413, "too_large"),
    ],
)
def test_bad_patches_are_clear_4xx_and_write_nothing(
    member: tuple[User, Any], vault_dir: Path, change: dict[str, Any], status: int, code: str
) -> None:
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 100).headers["location"])

    answer = _patch(
        auth,
        location,
        change.get("offset", 0),
        change.get("data", b"x" * 50),
        headers=change.get("headers", {}),
    )

    assert answer.status == status, answer.body
    _assert_problem(answer, status, code)
    assert StoredFile.objects.get().received_offset == 0
    if status in (409, 413):
        assert AuditEvent.objects.filter(action="file.upload.refused").count() == 1
    assert not [p for p in vault_dir.rglob("*") if p.is_file()]


def test_a_body_running_past_the_length_without_content_length_is_refused(
    member: tuple[User, Any], vault_dir: Path
) -> None:
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 100).headers["location"])

    answer = call(
        "PATCH",
        location,
        headers={**auth, **TUS, "Content-Type": OCTETS, "Upload-Offset": "0"},
        pieces=[b"x" * 60, b"y" * 60],
    )

    assert answer.status == 413
    assert StoredFile.objects.get().received_offset == 0
    assert not [p for p in vault_dir.rglob("*") if p.is_file()]


def test_a_stranger_and_an_anonymous_client_get_nothing(member: tuple[User, Any]) -> None:
    owner, room = member
    location = _path(_create(_token(owner), room.pk, 100).headers["location"])
    stranger = _token(make_user())

    _assert_problem(_create(stranger, room.pk, 10), 404, "not_found")
    assert call("HEAD", location, headers={**stranger, **TUS}).status == 404
    _assert_problem(_patch(stranger, location, 0, b"x"), 404, "not_found")
    _assert_problem(_patch({}, location, 0, b"x"), 401, "not_authenticated")
    _assert_problem(_create({}, room.pk, 10), 401, "not_authenticated")
    assert StoredFile.objects.get().received_offset == 0


def test_type_policy_and_quota_refusals_are_problems(
    member: tuple[User, Any], vault_dir: Path, settings: Settings
) -> None:
    # given a room with a small quota
    settings.SAFECHAT_ROOM_FILE_QUOTA_BYTES = 10_000
    owner, room = member
    auth = _token(owner)

    # when a program, a too-big file and a Windows program named as text are sent
    blocked = _create(auth, room.pk, 100, name="setup.exe")
    over = _create(auth, room.pk, 10_001)
    location = _path(_create(auth, room.pk, 300, name="notes.txt").headers["location"])
    disguised = _patch(auth, location, 0, b"MZ" + b"\x00" * 298)

    # then each is a problem with its own code, and nothing of them is kept
    _assert_problem(blocked, 422, "file_type_refused")
    _assert_problem(over, 413, "room_quota_exceeded")
    _assert_problem(disguised, 422, "file_type_refused")
    assert StoredFile.objects.get().state == StoredFile.State.EXPIRED
    assert not [p for p in vault_dir.rglob("*") if p.is_file()]
    reasons = sorted(
        e.extra["reason"] for e in AuditEvent.objects.filter(action="file.upload.refused")
    )
    assert reasons == ["blocked content pe", "blocked extension", "room quota"]


def test_a_read_token_cannot_upload(member: tuple[User, Any]) -> None:
    owner, room = member

    assert _create(_token(owner, ApiToken.Scope.READ), room.pk, 10).status == 403
    assert StoredFile.objects.count() == 0


def test_the_portal_session_uploads_with_csrf_and_not_without(
    member: tuple[User, Any], client: Client
) -> None:
    owner, room = member
    sign_in_client(client, owner, verified=True)
    headers = session_cookie_headers(client)

    without_csrf = {k: v for k, v in headers.items() if k != "X-CSRFToken"}
    assert _create(without_csrf, room.pk, 10).status == 403
    created = _create(headers, room.pk, 10)
    assert created.status == 201, created.body
    location = _path(created.headers["location"])
    assert _patch(without_csrf, location, 0, b"x" * 10).status == 403
    assert _patch(headers, location, 0, b"x" * 10).status == 204


def test_termination_removes_the_upload(member: tuple[User, Any], vault_dir: Path) -> None:
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 200_000).headers["location"])
    _patch(auth, location, 0, os.urandom(100_000))

    answer = call("DELETE", location, headers={**auth, **TUS})

    assert answer.status == 204
    assert call("HEAD", location, headers={**auth, **TUS}).status == 410
    # nothing left of it, not even its folder (which would say an upload was there)
    assert list(vault_dir.rglob("*")) == []


def test_an_upload_past_its_expiry_is_gone_to_head_before_the_sweep_runs(
    member: tuple[User, Any],
) -> None:
    # given an unfinished upload whose expiry has passed, not yet swept
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 200_000).headers["location"])
    assert _patch(auth, location, 0, os.urandom(1_000)).status == 204
    StoredFile.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    # when the client asks where to resume
    answer = call("HEAD", location, headers={**auth, **TUS})

    # then it is told the upload is gone (a tus client starts a new one), as a PATCH is
    assert answer.status == 410
    assert "upload-offset" not in answer.headers
    assert _patch(auth, location, 1_000, b"x").status == 410
    assert StoredFile.objects.get().state == StoredFile.State.UPLOADING  # the sweep ends it


def test_a_412_names_the_version_the_server_speaks(member: tuple[User, Any]) -> None:
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 10).headers["location"])

    answers = [
        call(
            "POST",
            f"/api/v1/rooms/{room.pk}/uploads/",
            headers={**auth, "Tus-Resumable": "0.2.2", "Upload-Length": "10"},
        ),
        call("PATCH", location, headers={**auth, "Content-Type": OCTETS, "Upload-Offset": "0"}),
        call("DELETE", location, headers={**auth, "Tus-Resumable": "2.0.0"}),
    ]

    # tus 1.0.0: a 412 MUST carry Tus-Version
    for answer in answers:
        _assert_problem(answer, 412, "tus_version")
        assert answer.headers["tus-version"] == "1.0.0"
    assert StoredFile.objects.get().received_offset == 0


def _stream_of(size: int, seed: int) -> Iterator[bytes]:
    """``size`` deterministic bytes in 64 KiB pieces, made as they are asked for."""
    import hashlib

    counter = 0
    made = 0
    while made < size:
        block = b"".join(
            hashlib.sha256(f"{seed}:{counter}:{i}".encode()).digest() for i in range(2048)
        )[: size - made]
        counter += 1
        made += len(block)
        yield block


def test_a_50_mib_upload_interrupted_and_resumed_in_constant_memory(
    clamd: OwnClamd, member: tuple[User, Any]
) -> None:
    import hashlib
    import tracemalloc

    owner, room = member
    auth = _token(owner)
    size = 50 * 1024 * 1024
    cut = 31 * 1024 * 1024 + 12_345  # the connection drops here, mid-chunk
    location = _path(_create(auth, room.pk, size, name="big.bin").headers["location"])
    expected = hashlib.sha256()
    for piece in _stream_of(size, 7):
        expected.update(piece)

    def first_part() -> Iterator[bytes]:
        sent = 0
        for piece in _stream_of(size, 7):
            piece = piece[: cut - sent]
            sent += len(piece)
            yield piece
            if sent >= cut:
                return

    def rest() -> Iterator[bytes]:
        skipped = 0
        for piece in _stream_of(size, 7):
            if skipped + len(piece) <= cut:
                skipped += len(piece)
                continue
            yield piece[max(0, cut - skipped) :]
            skipped += len(piece)

    tracemalloc.start()
    try:
        headers = {**auth, **TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}
        call("PATCH", location, headers=headers, pieces=first_part(), disconnect=True)
        head = call("HEAD", location, headers={**auth, **TUS})
        assert head.headers["upload-offset"] == str(cut)
        headers["Upload-Offset"] = str(cut)
        done = call("PATCH", location, headers=headers, pieces=rest())
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert done.status == 204, done.body
    assert done.headers["upload-offset"] == str(size)
    # memory stays within a few chunks whatever the size (50 MiB went through)
    assert peak < 8 * 1024 * 1024, peak
    stored = StoredFile.objects.get()
    file_scan(file_id=stored.pk)
    stored = StoredFile.objects.get()
    assert stored.state == StoredFile.State.AVAILABLE
    from files.selectors import file_download_stream, file_view

    got = hashlib.sha256()
    for piece in file_download_stream(reader=owner, stored=stored):
        got.update(piece)
    assert got.hexdigest() == expected.hexdigest()
    assert file_view(reader=owner, stored=stored).sha256 == expected.hexdigest()


def test_the_uploader_learns_an_infected_verdict(clamd: OwnClamd, member: tuple[User, Any]) -> None:
    from tests.support.clamd import eicar

    owner, room = member
    auth = _token(owner)
    sample = eicar()
    location = _path(_create(auth, room.pk, len(sample), name="eicar.txt").headers["location"])
    assert _patch(auth, location, 0, sample).status == 204

    file_scan(file_id=StoredFile.objects.get().pk)

    head = call("HEAD", location, headers={**auth, **TUS})
    assert head.headers["safechat-upload-state"] == "infected"
    assert AuditEvent.objects.filter(action="file.scan.infected").count() == 1


def test_the_schema_documents_the_tus_headers_and_the_412_of_every_tus_request(
    member: tuple[User, Any],
) -> None:
    # given the schema (the API's contract run found the version undocumented as such, the
    # 412 missing on a termination, and lengths and the room id loosely typed)
    client = Client()
    sign_in_client(client, member[0], verified=True)
    paths = client.get("/api/schema/", headers={"Accept": "application/json"}).json()["paths"]
    operations = [
        paths["/api/v1/rooms/{room_id}/uploads/"]["post"],
        paths["/api/v1/uploads/{upload_id}"]["patch"],
        paths["/api/v1/uploads/{upload_id}"]["delete"],
    ]

    # then each names the one version it speaks and documents its refusal
    for operation in operations:
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert parameters["Tus-Resumable"]["required"] is True
        assert parameters["Tus-Resumable"]["schema"]["enum"] == ["1.0.0"]
        assert "412" in operation["responses"]
    create, patch = ({p["name"]: p["schema"] for p in o["parameters"]} for o in operations[:2])
    assert create["Upload-Length"]["minimum"] == 0
    assert patch["Upload-Offset"]["minimum"] == 0
    assert create["room_id"]["type"] == "integer"


class _Counted:
    """A body of ``count`` pieces of ``size`` bytes that counts how many were taken."""

    def __init__(self, count: int, size: int = 65_536) -> None:
        self.count, self.size, self.taken = count, size, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.count):
            self.taken += 1
            yield b"z" * self.size


def test_a_patch_refused_before_it_streams_leaves_its_body_unread(
    member: tuple[User, Any],
) -> None:
    # given an upload, and a PATCH at the wrong offset with a 4 MiB body
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 8 * 1024 * 1024).headers["location"])
    body = _Counted(64)

    # when it is sent
    answer = call(
        "PATCH",
        location,
        headers={**auth, **TUS, "Content-Type": OCTETS, "Upload-Offset": "5"},
        pieces=body,
    )

    # then it is refused without a byte of its body read
    assert answer.status == 409
    assert body.taken == 0
    assert StoredFile.objects.get().received_offset == 0


def test_a_body_refused_mid_stream_is_read_only_a_bounded_way_ahead(
    member: tuple[User, Any], vault_dir: Path
) -> None:
    # given an upload of 128 KiB, and a PATCH sending 32 MiB without a Content-Length
    owner, room = member
    auth = _token(owner)
    location = _path(_create(auth, room.pk, 128 * 1024).headers["location"])
    body = _Counted(512)

    # when it runs past the declared length
    answer = call(
        "PATCH",
        location,
        headers={**auth, **TUS, "Content-Type": OCTETS, "Upload-Offset": "0"},
        pieces=body,
    )

    # then it is refused, and the server stopped reading a few MiB past the refusal
    # (what it receives ahead of the encryption), not at the end of the body
    assert answer.status == 413
    assert body.taken <= 2 + (files_asgi.READ_AHEAD + 1) * files_asgi.PIECE_BYTES // body.size
    assert StoredFile.objects.get().received_offset == 0
