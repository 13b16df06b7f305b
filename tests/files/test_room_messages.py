"""A file in its room: a message once it scans clean, with its preview, under the room's
history and deletion rules, in the API's message list and over the socket's stream."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from django.http import Http404
from django.test import Client
from PIL import Image

from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from audit.models import AuditEvent
from files.models import StoredFile
from files.previews import PREVIEW_EDGE, preview_render
from files.selectors import file_get_for_user, file_list_for_user
from files.services import file_delete
from rooms.models import Message
from rooms.selectors import message_page
from rooms.services import membership_add, message_delete
from tests.accounts.factories import make_user
from tests.files.helpers import upload, upload_and_scan
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd, eicar

pytestmark = pytest.mark.django_db


def _png(width: int = 1200, height: int = 800, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _image(kind: str) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (900, 300), (10, 120, 200))
    if kind == "GIF":
        frames = [image, Image.new("RGB", (900, 300), (250, 250, 0))]
        frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    else:
        image.save(out, format=kind)
    return out.getvalue()


def _bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def _bearer(user: User) -> dict[str, str]:
    _row, secret = api_token_create(actor=user, name="client", scope=ApiToken.Scope.READ)
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _messages(client: Client, user: User, room_id: int) -> Any:
    response = client.get(f"/api/v1/rooms/{room_id}/messages/", **_bearer(user))  # type: ignore[arg-type]
    return response


# --- the message ------------------------------------------------------------------------
def test_a_file_appears_in_its_room_only_once_it_scans_clean(clamd: OwnClamd) -> None:
    # given a room with a text message, and a file uploaded but not yet scanned
    owner, member = make_user(username="olivia"), make_user()
    room = make_room(owner=owner, members=(member,))
    data = b"quarterly figures\n" * 100
    stored = upload(actor=owner, room=room, data=data, name="Q1 figures.csv")
    assert [m.attachment for m in message_page(reader=member, room=room)] == []

    # when it scans clean
    from files.services import file_scan

    file_scan(file_id=stored.pk)

    # then it is a message of the room, numbered after the last one, carrying the file
    stored.refresh_from_db()
    (view,) = message_page(reader=member, room=room)
    assert stored.message is not None
    room.refresh_from_db()
    assert view.id == stored.message_id
    assert view.seq == room.message_seq
    assert view.sender_id == owner.pk
    assert view.attachment is not None
    assert view.attachment.name == "Q1 figures.csv"
    assert view.attachment.size == len(data)
    assert view.attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert view.attachment.uploader == "olivia"
    assert view.attachment.has_preview is False
    # and the message's row holds no name: it is sealed with the file's key only
    message = Message.objects.get(pk=view.id)
    assert b"Q1 figures" not in bytes(message.ciphertext)
    assert AuditEvent.objects.filter(action="message.posted", extra__file=stored.pk).count() == 1


def test_the_api_message_list_carries_the_attachment_with_its_urls(
    client: Client, clamd: OwnClamd
) -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    data = _png()
    stored = upload_and_scan(actor=owner, room=room, data=data, name="chart.png")

    response = _messages(client, member, room.pk)

    assert response.status_code == 200
    (item,) = response.json()["results"]
    attachment = item["attachment"]
    base = f"/api/v1/rooms/{room.pk}/files/{stored.uid}"
    assert attachment == {
        "id": str(stored.uid),
        "name": "chart.png",
        "size": len(data),
        "content_type": attachment["content_type"],  # as the uploader declared it
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploader_id": owner.pk,
        "uploader": owner.get_username(),
        "download_url": f"{base}/download",
        "preview_url": f"{base}/preview",
    }
    assert item["text"] == ""


def test_an_infected_file_never_appears(clamd: OwnClamd) -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    seq_before = room.message_seq

    stored = upload_and_scan(actor=owner, room=room, data=eicar(), name="eicar.txt")

    assert stored.state == StoredFile.State.INFECTED
    assert stored.message_id is None
    assert Message.objects.filter(room=room).count() == 0
    room.refresh_from_db()
    assert room.message_seq == seq_before
    assert message_page(reader=member, room=room) == []


def test_a_deleted_file_is_hidden_from_members_and_kept(
    client: Client, clamd: OwnClamd, vault_dir: Path
) -> None:
    # given a file shared in a room
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    stored = upload_and_scan(actor=owner, room=room, data=_png(), name="chart.png")
    blobs_before = sorted(p.name for p in vault_dir.rglob("*") if p.is_file())

    # when its uploader deletes it
    file_delete(actor=owner, stored=stored)

    # then neither the message nor the file is shown to members
    assert message_page(reader=member, room=room) == []
    assert _messages(client, member, room.pk).json()["results"] == []
    with pytest.raises(Http404):
        file_get_for_user(user=member, file_id=stored.uid)
    preview = client.get(
        f"/api/v1/rooms/{room.pk}/files/{stored.uid}/preview",
        **_bearer(member),  # type: ignore[arg-type]
    )
    assert preview.status_code == 404
    # and both rows and the encrypted blobs are kept for compliance
    stored.refresh_from_db()
    assert stored.state == StoredFile.State.DELETED
    assert Message.objects.get(pk=int(stored.message_id or 0)).deleted_at is not None
    assert sorted(p.name for p in vault_dir.rglob("*") if p.is_file()) == blobs_before


def test_deleting_the_files_message_hides_the_file_too(clamd: OwnClamd) -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    stored = upload_and_scan(actor=owner, room=room, data=b"memo", name="memo.txt")
    assert stored.message is not None

    message_delete(actor=owner, message=stored.message)

    with pytest.raises(Http404):
        file_get_for_user(user=member, file_id=stored.uid)
    assert list(file_list_for_user(user=member, room_id=room.pk)) == []


def test_a_newcomer_in_a_room_hiding_history_sees_no_earlier_file(clamd: OwnClamd) -> None:
    # given a room that hides history, with a file shared before the newcomer joins
    owner, newcomer = make_user(), make_user()
    room = make_room(owner=owner, history_visible=False)
    earlier = upload_and_scan(actor=owner, room=room, data=b"before", name="before.txt")
    membership_add(actor=owner, room=room, user=newcomer)

    # when a file is shared after they joined
    later = upload_and_scan(actor=owner, room=room, data=b"after", name="after.txt")

    # then they see the later file only, in the stream and through the files API
    views = message_page(reader=newcomer, room=room)
    assert [v.attachment.name for v in views if v.attachment] == ["after.txt"]
    assert list(file_list_for_user(user=newcomer, room_id=room.pk)) == [later]
    with pytest.raises(Http404):
        file_get_for_user(user=newcomer, file_id=earlier.uid)
    # while the owner sees both
    assert [v.attachment.name for v in message_page(reader=owner, room=room) if v.attachment] == [
        "after.txt",
        "before.txt",
    ]


def test_a_non_member_gets_404_for_the_messages_the_file_and_its_preview(
    client: Client, clamd: OwnClamd
) -> None:
    owner, outsider = make_user(), make_user()
    room = make_room(owner=owner)
    stored = upload_and_scan(actor=owner, room=room, data=_png(), name="chart.png")
    audited = AuditEvent.objects.filter(action="file.downloaded").count()

    base = f"/api/v1/rooms/{room.pk}/files/{stored.uid}"
    answers = [
        _messages(client, outsider, room.pk).status_code,
        client.get(f"{base}/", **_bearer(outsider)).status_code,  # type: ignore[arg-type]
        client.get(f"{base}/preview", **_bearer(outsider)).status_code,  # type: ignore[arg-type]
        client.get(f"{base}/download", **_bearer(outsider)).status_code,  # type: ignore[arg-type]
    ]

    assert answers == [404, 404, 404, 404]
    assert AuditEvent.objects.filter(action="file.downloaded").count() == audited


# --- previews ---------------------------------------------------------------------------
def test_an_image_gets_an_encrypted_preview_served_with_safe_headers(
    client: Client, clamd: OwnClamd, vault_dir: Path
) -> None:
    # given a member and an image shared in their room
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    stored = upload_and_scan(actor=owner, room=room, data=_png(1200, 800), name="chart.png")

    # when the member fetches its preview
    response = client.get(
        f"/api/v1/rooms/{room.pk}/files/{stored.uid}/preview",
        **_bearer(member),  # type: ignore[arg-type]
    )

    # then it is a bounded image, never cached, never sniffed
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Accel-Buffering"] == "no"  # never to a proxy's temporary file
    shown = Image.open(io.BytesIO(response.content))
    assert shown.size[0] == PREVIEW_EDGE
    assert abs(shown.size[1] - PREVIEW_EDGE * 800 / 1200) <= 1  # the aspect ratio kept
    # and what is stored is ciphertext, not an image
    (blob,) = [p for p in vault_dir.rglob("preview")]
    stored_bytes = blob.read_bytes()
    assert not stored_bytes.startswith(b"\xff\xd8\xff")
    assert response.content not in stored_bytes


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP", "GIF"])
def test_each_image_type_previews_its_first_frame_within_bounds(kind: str) -> None:
    preview = preview_render(_image(kind))

    assert preview is not None
    shown = Image.open(io.BytesIO(preview.image))
    assert max(shown.size) == PREVIEW_EDGE
    pixel = shown.convert("RGB").getpixel((10, 10))
    assert isinstance(pixel, tuple)
    assert pixel == pytest.approx((10, 120, 200), abs=12)  # the first frame's colour


def test_a_transparent_image_keeps_its_transparency_as_png() -> None:
    preview = preview_render(_png(100, 100, mode="RGBA"))

    assert preview is not None
    assert preview.content_type == "image/png"


@pytest.mark.parametrize(
    "data",
    [
        _bomb_png(),
        _bomb_png(10_000, 5_000),  # over SafeChat's own limit, under Pillow's
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # truncated
        b"%PDF-1.7 not an image",
        b"",
    ],
    ids=["bomb", "over-limit", "truncated", "pdf", "empty"],
)
def test_a_decompression_bomb_or_non_image_gets_no_preview(data: bytes) -> None:
    assert preview_render(data) is None


def test_a_decompression_bomb_is_shared_without_a_preview(
    client: Client, clamd: OwnClamd, vault_dir: Path
) -> None:
    # given a tiny PNG claiming ten billion pixels
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    # when it is uploaded and scanned
    stored = upload_and_scan(actor=owner, room=room, data=_bomb_png(), name="bomb.png")

    # then it is shared (clamd found nothing) but has no preview, and nothing was stored for one
    assert stored.state == StoredFile.State.AVAILABLE
    assert stored.preview_type == ""
    assert not list(vault_dir.rglob("preview"))
    (view,) = message_page(reader=member, room=room)
    assert view.attachment is not None
    assert view.attachment.has_preview is False
    response = client.get(
        f"/api/v1/rooms/{room.pk}/files/{stored.uid}/preview",
        **_bearer(member),  # type: ignore[arg-type]
    )
    assert response.status_code == 404
