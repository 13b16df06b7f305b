"""Retention under real concurrency on PostgreSQL: threads with their own connections."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from compliance.models import LegalHold, MessageTombstone, RetentionRun
from compliance.services import (
    RetentionBusyError,
    legal_hold_place,
    retention_apply,
    retention_policy_set,
)
from compliance.services import retention as retention_module
from rooms.models import Message
from rooms.services import message_post
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer, post_aged
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room

pytestmark = [
    pytest.mark.django_db(transaction=True),
    postgresql_only("two runs, and a run beside a hold, in separate sessions"),
]


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


def test_a_reply_to_a_message_being_purged_is_refused_never_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    parent = post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    locked = threading.Event()
    original = retention_module._delete_rows

    def delete_slowly(rows: Any) -> None:
        # the batch holds its messages' locks here: the reply comes now
        if not locked.is_set():
            locked.set()
            time.sleep(1.0)
        original(rows)

    monkeypatch.setattr(retention_module, "_delete_rows", delete_slowly)

    def reply() -> object:
        assert locked.wait(timeout=60)
        try:
            return message_post(sender=owner, room=room, text="re", parent_id=parent.pk)
        except ValidationError as refused:
            return refused

    outcomes = run_together(lambda: retention_apply(batch_size=10), reply)

    assert [o.error for o in outcomes] == [None, None]
    assert not Message.objects.filter(pk=parent.pk).exists()
    assert isinstance(outcomes[1].value, ValidationError)
    assert list(Message.objects.filter(room=room)) == []
