"""Supervision under real concurrency on PostgreSQL: two reviewers decide one item at the
same instant, and two matching runs start at once; in each case exactly one stands."""

from __future__ import annotations

import time
from typing import Any

import pytest

from audit.models import AuditEvent
from compliance.models import SupervisionItem, SupervisionRun
from compliance.services import ComplianceRefused
from compliance.services import supervision as sv
from compliance.services.supervision import (
    SupervisionBusyError,
    supervision_item_close,
    supervision_lexicon_create,
    supervision_run,
    supervision_term_add,
)
from rooms.services import message_post
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room

pytestmark = [
    pytest.mark.django_db(transaction=True),
    postgresql_only("two decisions of one item, two runs, in separate sessions"),
]


@pytest.fixture(autouse=True)
def _no_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("compliance.services.retention._rest", lambda seconds: None)


def flagged_item() -> SupervisionItem:
    officer = make_officer()
    lexicon = supervision_lexicon_create(actor=officer, name="Promises")
    supervision_term_add(actor=officer, lexicon=lexicon, kind="phrase", value="guarantee")
    sender = make_user()
    message = message_post(sender=sender, room=make_room(owner=sender), text="I guarantee it")
    supervision_run()
    return SupervisionItem.objects.get(message_id=message.pk)


def test_two_reviewers_deciding_at_once_one_decision_stands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a pending item, two reviewers, and a decision that dawdles under its lock
    item = flagged_item()
    first, second = make_officer(), make_officer()
    real = sv._decidable

    def slow(**kwargs: Any) -> SupervisionItem:
        locked = real(**kwargs)
        time.sleep(0.3)
        return locked

    monkeypatch.setattr(sv, "_decidable", slow)

    # when both close it at the same instant
    outcomes = run_together(
        lambda: supervision_item_close(actor=first, item=item, reason="fine"),
        lambda: supervision_item_close(actor=second, item=item, reason="also fine"),
    )

    # then exactly one closed it, and the other was told so, on the record
    errors = [o.error for o in outcomes if o.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], ComplianceRefused)
    assert "closed already" in str(errors[0])
    item.refresh_from_db()
    assert item.closed_by == (first if outcomes[0].error is None else second)
    assert AuditEvent.objects.filter(action="supervision.item.closed").count() == 1
    refusal = AuditEvent.objects.get(action="supervision.action.refused")
    assert refusal.extra["reason"] == "already decided"


def test_two_runs_starting_at_once_one_works(monkeypatch: pytest.MonkeyPatch) -> None:
    # given messages to match
    sender = make_user()
    room = make_room(owner=sender)
    for n in range(3):
        message_post(sender=sender, room=room, text=f"m{n}")

    real = sv._match_batch

    def slow(**kwargs: Any) -> Any:
        time.sleep(0.5)  # the first run is surely still working when the second starts
        return real(**kwargs)

    monkeypatch.setattr(sv, "_match_batch", slow)

    # when two runs start at the same instant
    outcomes = run_together(supervision_run, supervision_run)

    # then one ran and the other stood down, refused as busy on the record
    errors = [o.error for o in outcomes if o.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], SupervisionBusyError)
    assert SupervisionRun.objects.get().scanned == 3
    refusal = AuditEvent.objects.get(action="supervision.action.refused")
    assert refusal.extra["reason"] == "busy"
