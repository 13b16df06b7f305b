"""A verdict that arrives too late: the room was archived, or the uploader lost the right to
share in it, while the file waited for its scan (a retry after clamd was down, the sweep).
No message is posted in an archived room or in the name of someone who lost access: the
file is withheld, kept encrypted, audited, and the uploader's HEAD says so."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from PIL import Image

from accounts.models import ApiToken, User
from accounts.roles import Role
from accounts.services import user_deactivate
from accounts.services.tokens import api_token_create
from audit.models import AuditEvent
from files import scanner
from files.models import StoredFile
from files.services import file_scan
from files.services import scanning as scanning_service
from rooms.models import Message, Room, RoomChange
from rooms.services import membership_remove, room_archive
from safechat import events
from tests.accounts.factories import grant_role, make_user
from tests.files.asgi_client import call
from tests.files.helpers import upload
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db

Sent = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """What the services publish (delivered after commit), recorded instead of sent."""
    recorded: Sent = []
    monkeypatch.setattr(events, "deliver", lambda group, message: recorded.append((group, message)))
    return recorded


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (0, 90, 200)).save(out, format="PNG")
    return out.getvalue()


def _deactivate(owner: User, uploader: User, room: Room) -> None:
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    user_deactivate(actor=User.objects.get(pk=admin.pk), user=uploader)


def _archive(owner: User, uploader: User, room: Room) -> None:
    room_archive(actor=owner, room=Room.objects.get(pk=room.pk))


def _remove(owner: User, uploader: User, room: Room) -> None:
    membership_remove(actor=owner, room=Room.objects.get(pk=room.pk), member=uploader)


CHANGES: dict[str, tuple[Callable[[User, User, Room], None], str]] = {
    "room archived": (_archive, "room archived"),
    "uploader removed": (_remove, "uploader may no longer share in the room"),
    "uploader deactivated": (_deactivate, "uploader may no longer share in the room"),
}


def _new_messages(sent: Sent) -> list[dict[str, Any]]:
    return [message for _group, message in sent if message.get("event") == "message.new"]


def _nothing_shared(room: Room, stored: StoredFile, seq_before: int, sent: Sent) -> None:
    """No message, no change-feed entry, no event, no clean verdict for ``stored``."""
    room.refresh_from_db()
    assert room.message_seq == seq_before
    assert not Message.objects.filter(room=room).exists()
    assert not RoomChange.objects.filter(
        room_id=room.pk, kind=RoomChange.Kind.MESSAGE_CREATED
    ).exists()
    assert not AuditEvent.objects.filter(action="message.posted", extra__file=stored.pk).exists()
    assert not AuditEvent.objects.filter(
        action="file.scan.clean", target_id=str(stored.pk)
    ).exists()
    assert _new_messages(sent) == []


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_file_pending_its_scan_is_withheld_after_the_room_or_its_uploader_changed(
    change: str,
    clamd: OwnClamd,
    vault_dir: Path,
    sent: Sent,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a file complete and waiting for its verdict (clamd was down: the task retries)
    owner, uploader = make_user(), make_user()
    room = make_room(owner=owner, members=(uploader,))
    with override_settings(SAFECHAT_CLAMD_SOCKET=str(vault_dir / "no-clamd.sock")):
        stored = upload(actor=uploader, room=room, data=b"minutes of the meeting", name="m.txt")
        with pytest.raises(scanner.ScannerUnavailable):
            file_scan(file_id=stored.pk)
    blobs_before = sorted(p.name for p in vault_dir.rglob("*") if p.is_file())
    # when the room is archived or the uploader loses the room, then the retry runs
    run, reason = CHANGES[change]
    run(owner, uploader, room)
    room.refresh_from_db()
    seq_before = room.message_seq
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        state = file_scan(file_id=stored.pk)

    # then the file is withheld, kept encrypted, and audited with the reason
    stored.refresh_from_db()
    assert state == StoredFile.State.WITHHELD
    assert stored.state == StoredFile.State.WITHHELD
    assert stored.message_id is None
    assert sorted(p.name for p in vault_dir.rglob("*") if p.is_file()) == blobs_before
    (event,) = AuditEvent.objects.filter(action="file.withheld")
    assert event.extra == {
        "room": room.pk,
        "uploader": uploader.pk,
        "reason": reason,
        "scan": "not scanned",
    }
    # and nothing was shared: no message, no feed entry, no event, no clean verdict
    _nothing_shared(room, stored, seq_before, sent)
    # and the sweep leaves it alone from now on
    assert file_scan(file_id=stored.pk) == StoredFile.State.WITHHELD
    assert AuditEvent.objects.filter(action="file.withheld").count() == 1


def test_a_clean_verdict_arriving_after_an_archive_during_the_scan_shares_nothing(
    clamd: OwnClamd,
    vault_dir: Path,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an image waiting for its scan in a live room
    owner, uploader = make_user(), make_user()
    room = make_room(owner=owner, members=(uploader,))
    stored = upload(actor=uploader, room=room, data=_png(), name="chart.png")
    seq_before = Room.objects.get(pk=room.pk).message_seq
    real_scan = scanner.scan_stream

    def archived_while_scanning(pieces: Iterable[bytes]) -> scanner.ScanVerdict:
        verdict = real_scan(pieces)
        _archive(owner, uploader, room)  # the owner archives while clamd reads
        return verdict

    monkeypatch.setattr(scanning_service, "scan_stream", archived_while_scanning)
    sent.clear()

    # when clamd answers clean after the archive
    with django_capture_on_commit_callbacks(execute=True):
        state = file_scan(file_id=stored.pk)

    # then the verdict finds the archive under the room's lock: withheld, not shared
    stored.refresh_from_db()
    assert state == StoredFile.State.WITHHELD
    assert stored.scanned_at is not None
    assert stored.sealed_digest is not None
    assert stored.preview_type == ""
    (event,) = AuditEvent.objects.filter(action="file.withheld")
    assert event.extra["scan"] == "clean"
    assert event.extra["reason"] == "room archived"
    # and the preview rendered for its message is gone, the file's own blobs kept
    assert not list(vault_dir.rglob("preview"))
    assert list(vault_dir.rglob("seg-*"))
    _nothing_shared(room, stored, seq_before, sent)


@pytest.mark.django_db(transaction=True)  # the request runs in the server's own thread
def test_the_uploader_learns_that_the_file_was_withheld(clamd: OwnClamd) -> None:
    # given a file withheld because the room was archived before its verdict
    owner, uploader = make_user(), make_user()
    room = make_room(owner=owner, members=(uploader,))
    stored = upload(actor=uploader, room=room, data=b"draft", name="draft.txt")
    _archive(owner, uploader, room)
    file_scan(file_id=stored.pk)

    # when the uploader asks for the upload's state, as the portal does after the last byte
    _row, secret = api_token_create(actor=uploader, name="client", scope=ApiToken.Scope.WRITE)
    head = call(
        "HEAD",
        f"/api/v1/uploads/{stored.uid}",
        headers={"Authorization": f"Bearer {secret}", "Tus-Resumable": "1.0.0"},
    )

    # then the answer says withheld
    assert head.status == 200
    assert head.headers["safechat-upload-state"] == "withheld"


def test_a_file_still_shareable_is_shared_as_before(
    clamd: OwnClamd, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    # given another member removed (not the uploader) and the room live
    owner, uploader, other = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(uploader, other))
    stored = upload(actor=uploader, room=room, data=b"agenda", name="agenda.txt")
    _remove(owner, other, room)

    # when the scan is clean
    with django_capture_on_commit_callbacks(execute=True):
        state = file_scan(file_id=stored.pk)

    # then the file is shared in the uploader's name
    stored.refresh_from_db()
    assert state == StoredFile.State.AVAILABLE
    assert stored.message is not None
    assert stored.message.sender_id == uploader.pk
    assert [m["message_id"] for m in _new_messages(sent)] == [stored.message_id]
    assert not AuditEvent.objects.filter(action="file.withheld").exists()
