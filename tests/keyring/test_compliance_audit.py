"""A use of the compliance key is recorded even when the caller's work rolls back
(issue 12, case 8)."""

from __future__ import annotations

import pytest
from django.db import transaction

from audit.models import AuditEvent
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import compliance_epoch_key
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db(transaction=True)


class CallerFailed(Exception):
    pass


def uses() -> list[dict[str, object]]:
    return [
        e.extra for e in AuditEvent.objects.filter(action="key.compliance.used").order_by("seq")
    ]


def test_a_use_inside_a_transaction_that_rolls_back_is_still_recorded() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    epoch = RoomEpoch.objects.get(room=room, number=1)

    def work_that_fails() -> None:
        with transaction.atomic():
            compliance_epoch_key(actor=owner, epoch=epoch, reason="investigation 12")
            raise CallerFailed

    with pytest.raises(CallerFailed):
        work_that_fails()

    assert uses() == [{"epoch": 1, "reason": "investigation 12", "after_rollback": True}]


def test_a_use_inside_a_savepoint_that_rolls_back_is_recorded_once() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    epoch = RoomEpoch.objects.get(room=room, number=1)

    with transaction.atomic():
        try:
            with transaction.atomic():
                compliance_epoch_key(actor=owner, epoch=epoch, reason="inner")
                raise CallerFailed
        except CallerFailed:
            pass

    assert uses() == [{"epoch": 1, "reason": "inner", "after_rollback": True}]


def test_a_use_in_a_transaction_that_commits_is_recorded_once() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    epoch = RoomEpoch.objects.get(room=room, number=1)

    with transaction.atomic():
        compliance_epoch_key(actor=owner, epoch=epoch, reason="export")
    compliance_epoch_key(actor=owner, epoch=epoch, reason="outside any transaction")

    assert uses() == [
        {"epoch": 1, "reason": "export"},
        {"epoch": 1, "reason": "outside any transaction"},
    ]
