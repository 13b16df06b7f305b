"""Two requests writing one upload at the same instant: exactly one wins, on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pytest_django import Settings

from audit.models import AuditEvent
from files.models import StoredFile
from files.services import (
    UploadConflictError,
    UploadQuotaError,
    file_scan,
    upload_append,
    upload_create,
)
from tests.accounts.factories import make_user
from tests.files.helpers import download
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = [
    pytest.mark.django_db(transaction=True),
    postgresql_only("two requests claim one upload row"),
]


def _slow(data: bytes) -> Iterator[bytes]:
    """A body that arrives in pieces over a moment, like a real network."""
    for start in range(0, len(data), 50_000):
        time.sleep(0.01)
        yield data[start : start + 50_000]


def test_two_requests_at_the_same_offset_one_wins(clamd: OwnClamd) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    length = 400_000
    stored = upload_create(actor=owner, room=room, length=length, name="race.bin")
    a, b = b"a" * length, b"b" * length

    outcomes = run_together(
        lambda: upload_append(actor=owner, stored=stored, offset=0, body=_slow(a)),
        lambda: upload_append(actor=owner, stored=stored, offset=0, body=_slow(b)),
    )

    winners = [o for o in outcomes if o.error is None]
    losers = [o for o in outcomes if o.error is not None]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0].error, UploadConflictError)
    file_scan(file_id=stored.pk)
    row = StoredFile.objects.get(pk=stored.pk)
    assert row.state == StoredFile.State.AVAILABLE
    assert download(owner, row) in (a, b)


def test_two_uploads_racing_for_the_last_bytes_of_the_quota_one_wins(settings: Settings) -> None:
    # given a room with room for one 600-byte file, and two members starting one each
    settings.SAFECHAT_ROOM_FILE_QUOTA_BYTES = 1000
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    # when both creations run at the same instant
    outcomes = run_together(
        lambda: upload_create(actor=owner, room=room, length=600, name="a.bin"),
        lambda: upload_create(actor=member, room=room, length=600, name="b.bin"),
    )

    # then the room lock lets one in and refuses the other, audited
    errors = [o.error for o in outcomes if o.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], UploadQuotaError)
    assert StoredFile.objects.count() == 1
    assert AuditEvent.objects.filter(action="file.upload.refused").count() == 1
