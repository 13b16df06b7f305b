"""The beat job starts new epochs where the cryptoperiod ended, and only there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rooms.tasks import rotate_expired_epochs_task
from safechat.keyring.models import RoomEpoch
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def test_expired_epochs_are_rotated_and_fresh_ones_are_left_alone() -> None:
    owner = make_user()
    old_room, fresh_room = make_room(owner=owner), make_room(owner=owner)
    RoomEpoch.objects.filter(room=old_room).update(created_at=timezone.now() - timedelta(days=31))

    rotated = rotate_expired_epochs_task()

    assert rotated == 1
    assert list(RoomEpoch.objects.filter(room=old_room).values_list("number", "reason")) == [
        (1, "created"),
        (2, "cryptoperiod"),
    ]
    assert RoomEpoch.objects.filter(room=fresh_room).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_beat_job_rotates_outside_any_transaction_as_celery_runs_it() -> None:
    # Celery runs the task in autocommit: no test transaction may lend it one.
    owner = make_user()
    old_room = make_room(owner=owner)
    RoomEpoch.objects.filter(room=old_room).update(created_at=timezone.now() - timedelta(days=31))

    rotated = rotate_expired_epochs_task()

    assert rotated == 1
    assert list(RoomEpoch.objects.filter(room=old_room).values_list("number", "reason")) == [
        (1, "created"),
        (2, "cryptoperiod"),
    ]
