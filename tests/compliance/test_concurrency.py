"""Retention under real concurrency on PostgreSQL: threads with their own connections."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from compliance.models import (
    BlobPurge,
    LegalHold,
    MessageTombstone,
    RetentionPolicy,
    RetentionRun,
)
from compliance.services import (
    RetentionBusyError,
    legal_hold_place,
    retention_apply,
    retention_policy_set,
)
from compliance.services import retention as retention_module
from files.models import StoredFile
from files.services import file_delete
from files.services import files as files_module
from rooms.models import Message, Room
from rooms.permissions import room_permissions_of
from rooms.services import message_post
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer, post_aged
from tests.files.helpers import upload_and_scan
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = [
    pytest.mark.django_db(transaction=True),
    postgresql_only(
        "two runs, a run beside a hold, a post or a file deletion, in separate sessions"
    ),
]


@pytest.fixture
def purge_holding_its_locks(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """A purge batch that, at its first delete, holds its rows' locks for a second; the
    event is set as it starts to wait, for another session to arrive meanwhile."""
    locked = threading.Event()
    original = retention_module._delete_rows

    def delete_slowly(rows: Any) -> None:
        if not locked.is_set():
            locked.set()
            time.sleep(1.0)
        original(rows)

    monkeypatch.setattr(retention_module, "_delete_rows", delete_slowly)
    return locked


def test_two_runs_at_once_never_both_work_and_purge_each_message_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officer, owner = make_officer(), make_user()
    rooms = [make_room(owner=owner), make_room(owner=owner)]
    doomed = [post_aged(sender=owner, room=rooms[i % 2], days=90) for i in range(30)]
    young = post_aged(sender=owner, room=rooms[0], days=1)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    # each batch takes a while, so the second run surely arrives while the first works
    monkeypatch.setattr(retention_module, "_batch_committed", lambda run: time.sleep(0.1))

    outcomes = run_together(
        lambda: retention_apply(batch_size=2), lambda: retention_apply(batch_size=2)
    )

    errors = [o.error for o in outcomes if o.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], RetentionBusyError)
    purged = sum(o.value.totals()["messages"] for o in outcomes if o.error is None)
    assert purged == len(doomed)
    assert MessageTombstone.objects.count() == len(doomed)
    assert list(Message.objects.values_list("pk", flat=True)) == [young.pk]
    assert RetentionRun.objects.filter(state="finished", dry_run=False).count() == len(
        outcomes
    ) - len(errors)
    assert not RetentionRun.objects.filter(state="running").exists()
    assert AuditEvent.objects.filter(action="retention.run.refused").count() == 1


def test_a_hold_placed_during_a_run_stops_the_purge_of_what_it_covers_from_then_on() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    for _ in range(30):
        post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    outcomes = run_together(
        lambda: retention_apply(batch_size=2),
        lambda: legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room]),
    )

    assert [o.error for o in outcomes] == [None, None]
    hold = LegalHold.objects.get()
    # nothing of the room was purged by a batch that committed after the hold
    assert not MessageTombstone.objects.filter(room=room, purged_at__gt=hold.placed_at).exists()
    assert Message.objects.filter(room=room).count() + MessageTombstone.objects.count() == 30
    assert hold.placed_at <= timezone.now()


def test_a_policy_lengthened_while_a_batch_works_stops_the_purge_from_then_on(
    purge_holding_its_locks: threading.Event,
) -> None:
    # given 30 expired messages under a 30-day policy, and a run whose first batch holds
    # its locks a while
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    for _ in range(30):
        post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    def keep_forever_once_a_batch_works() -> Any:
        assert purge_holding_its_locks.wait(10)
        return retention_policy_set(actor=officer, room=None, keep_days=None)

    # when an officer makes the policy "forever" while that batch works
    outcomes = run_together(lambda: retention_apply(batch_size=2), keep_forever_once_a_batch_works)

    # then both succeed; no batch that committed after the change purged anything, and
    # what the change found in progress finished whole
    assert [o.error for o in outcomes] == [None, None]
    policy = RetentionPolicy.objects.get(room=None)
    assert policy.keep_days is None
    assert not MessageTombstone.objects.filter(purged_at__gt=policy.updated_at).exists()
    purged = MessageTombstone.objects.count()
    assert 1 <= purged < 30
    assert Message.objects.filter(room=room).count() == 30 - purged


def test_a_reply_to_a_message_being_purged_is_refused_never_an_error(
    purge_holding_its_locks: threading.Event,
) -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    parent = post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    def reply() -> object:
        # the batch holds its messages' locks: the reply comes now
        assert purge_holding_its_locks.wait(timeout=60)
        try:
            return message_post(sender=owner, room=room, text="re", parent_id=parent.pk)
        except ValidationError as refused:
            return refused

    outcomes = run_together(lambda: retention_apply(batch_size=10), reply)

    assert [o.error for o in outcomes] == [None, None]
    assert not Message.objects.filter(pk=parent.pk).exists()
    assert isinstance(outcomes[1].value, ValidationError)
    assert list(Message.objects.filter(room=room)) == []


def _shared_file_aged(*, owner: User, room: Room, days: float) -> StoredFile:
    """A clean file shared in ``room`` (its message posted), file and message dated back."""
    stored = upload_and_scan(actor=owner, room=room, data=b"statement " * 300)
    message_id = stored.message_id
    assert message_id is not None
    sent = timezone.now() - timedelta(days=days)
    Message.objects.filter(pk=message_id).update(created_at=sent)
    StoredFile.objects.filter(pk=stored.pk).update(created_at=sent)
    return StoredFile.objects.get(pk=stored.pk)


def _purged_with_its_message(stored: StoredFile, vault: Path) -> None:
    """The end state of a purge that took the file's message: both gone, a tombstone, the
    blobs removed, the purge audited once."""
    message_id = stored.message_id
    assert message_id is not None
    assert not Message.objects.filter(pk=message_id).exists()
    assert not StoredFile.objects.filter(pk=stored.pk).exists()
    assert MessageTombstone.objects.filter(message_id=message_id).count() == 1
    assert not BlobPurge.objects.exists()
    assert not [p for p in vault.rglob("*") if p.is_file()]
    purged = AuditEvent.objects.filter(action="retention.purged")
    assert [(e.extra["messages"], e.extra["files"]) for e in purged] == [(1, 1)]
    run = RetentionRun.objects.get(dry_run=False)
    assert (run.state, run.messages, run.files) == ("finished", 1, 1)


def test_a_file_deleted_while_a_purge_takes_its_message_waits_never_deadlocks(
    clamd: OwnClamd, vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a shared file whose message has expired, and a deletion that holds its locks
    # for a moment (so the purge arrives while it holds them)
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    stored = _shared_file_aged(owner=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    locked = threading.Event()
    original = room_permissions_of

    def rights_slowly(**kwargs: Any) -> Any:
        locked.set()
        time.sleep(1.0)  # the deletion holds its locks here: the purge comes now
        return original(**kwargs)

    monkeypatch.setattr(files_module, "room_permissions_of", rights_slowly)

    def purge() -> object:
        assert locked.wait(timeout=60)
        return retention_apply(batch_size=10)

    # when both run at once
    outcomes = run_together(lambda: file_delete(actor=owner, stored=stored), purge)

    # then neither fails: the deletion commits first (recorded), the purge then takes the
    # deleted file and its message
    assert [o.error for o in outcomes] == [None, None]
    assert AuditEvent.objects.filter(action="file.deleted", target_id=str(stored.pk)).count() == 1
    assert MessageTombstone.objects.filter(message_id=stored.message_id or 0).exists()
    _purged_with_its_message(stored, vault_dir)


def test_a_file_deleted_while_a_purge_holds_its_message_answers_404_and_writes_nothing(
    clamd: OwnClamd, vault_dir: Path, purge_holding_its_locks: threading.Event
) -> None:
    # given a shared file whose message has expired, and a purge batch that holds the
    # message and the file for a moment (so the deletion arrives while it holds them)
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    stored = _shared_file_aged(owner=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()

    def delete() -> object:
        assert purge_holding_its_locks.wait(timeout=60)
        return file_delete(actor=owner, stored=stored)

    # when both run at once
    outcomes = run_together(lambda: retention_apply(batch_size=10), delete)

    # then the purge works and the deletion finds the file gone: a 404, nothing written
    assert outcomes[0].error is None
    assert isinstance(outcomes[1].error, Http404)
    since = AuditEvent.objects.filter(seq__gt=before).values_list("action", flat=True)
    assert "retention.purged" in since
    assert not [a for a in since if a.startswith(("file.", "message."))]  # nor refused
    _purged_with_its_message(stored, vault_dir)
