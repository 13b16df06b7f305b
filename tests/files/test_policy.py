"""The type policy and the room quota: refused by name, declared type, sniffed content,
or size left in the room; each refusal audited, nothing kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from pytest_django import Settings

from accounts.models import ApiToken
from accounts.services.tokens import api_token_create
from audit.models import AuditEvent
from files import policy
from files.models import StoredFile
from files.selectors import room_file_usage
from files.services import (
    UploadGoneError,
    UploadQuotaError,
    UploadTypeError,
    upload_append,
    upload_create,
    upload_terminate,
)
from rooms.errors import RateLimitedError
from rooms.models import Membership
from safechat.crypto.stream import DEFAULT_CHUNK_SIZE
from tests.accounts.factories import make_user
from tests.files.helpers import pieces, upload
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db(transaction=True)

PE = b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(200)
ELF = b"\x7fELF\x02\x01\x01" + os.urandom(200)
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(200)
PDF = b"%PDF-1.7\n" + os.urandom(200)
DOCX = b"PK\x03\x04" + os.urandom(200)


def _reasons() -> list[str]:
    events = AuditEvent.objects.filter(action="file.upload.refused").order_by("seq")
    return [str(e.extra["reason"]) for e in events]


def _blobs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- the pure policy -----------------------------------------------------------------

DEFAULT = policy.Policy.of(
    blocked_extensions=policy.DEFAULT_BLOCKED_EXTENSIONS,
    allowed_extensions=(),
    blocked_types=policy.DEFAULT_BLOCKED_TYPES,
    blocked_kinds=policy.DEFAULT_BLOCKED_KINDS,
)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (PE, "pe"),
        (ELF, "elf"),
        (b"\xcf\xfa\xed\xfe" + bytes(20), "macho"),
        (b"\xca\xfe\xba\xbe" + bytes(20), "java-class"),
        (b"#!/bin/sh\nrm -rf /\n", "script"),
        (PDF, "pdf"),
        (PNG, "png"),
        (b"\xff\xd8\xff\xe0" + bytes(20), "jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (DOCX, "zip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(20), "ole2"),
        (b"quarterly figures,1,2,3\n", None),
        (b"", None),
    ],
)
def test_sniff_names_the_kind_by_its_first_bytes(head: bytes, kind: str | None) -> None:
    found = policy.sniff(head)
    assert (found.name if found else None) == kind


@pytest.mark.parametrize(
    "name",
    ["setup.exe", "LIB.DLL", "a.js", "run.vbs", "x.ps1", "go.bat", "go.cmd", "s.scr", "i.msi",
     "app.jar", "app.apk", "budget.xlsm", "letter.docm", "deck.pptm"],
)  # fmt: skip
def test_blocked_extensions_are_refused_by_name(name: str) -> None:
    with pytest.raises(policy.FilePolicyError, match="not accepted"):
        policy.check_declared(DEFAULT, name=name, content_type="application/octet-stream")


def test_blocked_declared_types_and_the_allow_list() -> None:
    with pytest.raises(policy.FilePolicyError):
        policy.check_declared(
            DEFAULT,
            name="budget",
            content_type="application/vnd.ms-excel.sheet.macroenabled.12",
        )
    only_pdf = policy.Policy.of(
        blocked_extensions=(), allowed_extensions=(".PDF",), blocked_types=(), blocked_kinds=()
    )
    policy.check_declared(only_pdf, name="a.pdf", content_type="application/pdf")
    with pytest.raises(policy.FilePolicyError, match=r"\.txt"):
        policy.check_declared(only_pdf, name="a.txt", content_type="text/plain")


@pytest.mark.parametrize(
    ("head", "name", "content_type"),
    [
        (PE, "invoice.txt", "text/plain"),  # a program, whatever it is called
        (ELF, "data", "application/octet-stream"),
        (b"#!/usr/bin/env python\n", "notes.txt", "text/plain"),
        (PNG, "statement.pdf", "application/pdf"),  # one kind named as another
        (PNG, "statement.pdf", "application/octet-stream"),
        (b"not a pdf at all", "statement.pdf", "application/octet-stream"),
        (DOCX, "photo.png", "application/octet-stream"),
        (PDF, "statement.dat", "image/png"),  # declared type against content
        (b"plain text", "statement.dat", "application/pdf"),
    ],
)
def test_content_that_is_blocked_or_disagrees_with_its_name_is_refused(
    head: bytes, name: str, content_type: str
) -> None:
    with pytest.raises(policy.FilePolicyError):
        policy.check_content(DEFAULT, head=head, name=name, content_type=content_type)


@pytest.mark.parametrize(
    ("head", "name", "content_type"),
    [
        (PDF, "statement.pdf", "application/pdf"),
        (PDF, "Statement.PDF", "application/octet-stream"),
        (DOCX, "report.docx", policy._OOXML + "wordprocessingml.document"),
        (PNG, "scan", "application/octet-stream"),  # no extension: nothing claimed
        (b"date,amount\n", "ledger.csv", "text/csv"),
        (os.urandom(64).replace(b"M", b"m"), "blob.bin", "application/octet-stream"),
    ],
)
def test_content_that_matches_its_name_and_type_passes(
    head: bytes, name: str, content_type: str
) -> None:
    policy.check_content(DEFAULT, head=head, name=name, content_type=content_type)


# --- through the services --------------------------------------------------------------


def test_a_blocked_name_is_refused_at_creation_and_nothing_is_written(vault_dir: Path) -> None:
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(UploadTypeError, match=r"\.exe"):
        upload_create(actor=owner, room=room, length=1000, name="payroll.exe")

    assert StoredFile.objects.count() == 0
    assert _blobs(vault_dir) == []
    assert not AuditEvent.objects.filter(action="file.upload.started").exists()
    assert _reasons() == ["blocked extension"]


@pytest.mark.parametrize("first_request", [1, 100, DEFAULT_CHUNK_SIZE + 5])
def test_a_program_disguised_as_a_text_file_is_refused_as_it_streams(
    vault_dir: Path, first_request: int
) -> None:
    # given an upload named as text whose bytes are a Windows program, sent in two requests
    owner = make_user()
    room = make_room(owner=owner)
    data = PE + os.urandom(3 * DEFAULT_CHUNK_SIZE)
    stored = upload_create(actor=owner, room=room, length=len(data), name="minutes.txt")

    # when its bytes stream in (a first request too short to judge keeps them pending)
    if first_request < policy.SNIFF_BYTES:
        stored = upload_append(
            actor=owner, stored=stored, offset=0, body=pieces(data[:first_request], 1000)
        )
        with pytest.raises(UploadTypeError, match="program"):
            upload_append(
                actor=owner,
                stored=stored,
                offset=first_request,
                body=pieces(data[first_request:], 1000),
            )
    else:
        with pytest.raises(UploadTypeError, match="program"):
            upload_append(
                actor=owner, stored=stored, offset=0, body=pieces(data[:first_request], 1000)
            )

    # then the upload ended, no blob of it is left, and the refusal is audited
    row = StoredFile.objects.get()
    assert row.state == StoredFile.State.EXPIRED
    assert _blobs(vault_dir) == []
    assert _reasons() == ["blocked content pe"]
    assert not AuditEvent.objects.filter(action="file.uploaded").exists()
    with pytest.raises(UploadGoneError):
        upload_append(actor=owner, stored=row, offset=0, body=[b"x"])


def test_an_image_named_as_a_pdf_is_refused_and_a_real_pdf_passes(vault_dir: Path) -> None:
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(UploadTypeError, match="PNG"):
        upload(actor=owner, room=room, data=PNG, name="statement.pdf")
    stored = upload(actor=owner, room=room, data=PDF, name="statement.pdf")

    assert stored.state == StoredFile.State.PENDING_SCAN
    assert _reasons() == ["content png vs extension"]


def test_an_empty_file_is_judged_at_creation() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(UploadTypeError):
        upload_create(actor=owner, room=room, length=0, name="empty.pdf")
    upload_create(actor=owner, room=room, length=0, name="empty.txt")

    assert StoredFile.objects.count() == 1


def test_the_room_quota_refuses_an_upload_at_creation(settings: Settings) -> None:
    # given a room with a 1000-byte quota, 600 bytes of it used by an upload in progress
    settings.SAFECHAT_ROOM_FILE_QUOTA_BYTES = 1000
    owner = make_user()
    room = make_room(owner=owner)
    first = upload_create(actor=owner, room=room, length=600, name="a.bin")

    # when another upload would pass it, it is refused from its declared length alone
    with pytest.raises(UploadQuotaError, match="400 bytes are left"):
        upload_create(actor=owner, room=room, length=401, name="b.bin")

    # then nothing was created and the refusal is audited
    assert StoredFile.objects.count() == 1
    assert _reasons() == ["room quota"]
    # and what is left still fits; a cancelled upload gives its bytes back
    upload_create(actor=owner, room=room, length=400, name="c.bin")
    upload_terminate(actor=owner, stored=first)
    upload_create(actor=owner, room=room, length=600, name="d.bin")


def test_owners_see_the_room_usage_and_members_do_not(settings: Settings) -> None:
    settings.SAFECHAT_ROOM_FILE_QUOTA_BYTES = 5000
    owner, member, stranger = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,), role=Membership.Role.MEMBER)
    upload_create(actor=member, room=room, length=1234, name="a.bin")

    usage = room_file_usage(user=owner, room_id=room.pk)

    assert (usage.used_bytes, usage.quota_bytes, usage.files) == (1234, 5000, 1)
    with pytest.raises(PermissionDenied):
        room_file_usage(user=member, room_id=room.pk)
    with pytest.raises(Exception, match="no such room"):
        room_file_usage(user=stranger, room_id=room.pk)


def test_the_usage_endpoint_answers_owners(client: Client) -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    upload_create(actor=owner, room=room, length=10, name="a.bin")

    def get(user: object) -> tuple[int, dict[str, object]]:
        _row, secret = api_token_create(actor=user, name="c", scope=ApiToken.Scope.READ)  # type: ignore[arg-type]
        answer = client.get(
            f"/api/v1/rooms/{room.pk}/files/usage", HTTP_AUTHORIZATION=f"Bearer {secret}"
        )
        return answer.status_code, answer.json()

    status, body = get(owner)
    assert status == 200
    assert body["used_bytes"] == 10
    assert body["files"] == 1
    status, body = get(member)
    assert status == 403
    assert body["code"] == "permission_denied"


def test_uploads_share_the_per_user_write_rate_limit(settings: Settings) -> None:
    # given a budget of three writes
    settings.SAFECHAT_POST_RATE_LIMIT = (3, 60)
    owner = make_user()
    room = make_room(owner=owner)
    for n in range(3):
        upload_create(actor=owner, room=room, length=10, name=f"{n}.bin")

    # when a fourth upload begins, it is refused and nothing is created
    with pytest.raises(RateLimitedError):
        upload_create(actor=owner, room=room, length=10, name="4.bin")

    assert StoredFile.objects.count() == 3
    assert AuditEvent.objects.filter(action="file.upload.started").count() == 3
