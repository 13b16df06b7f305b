"""The command and the Celery task run the same service."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from audit.models import AuditEvent
from compliance.locks import RUN_LOCK_KEY
from compliance.models import RetentionRun
from compliance.services import retention_policy_set
from compliance.tasks import apply_retention_task
from rooms.models import Message
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer, post_aged
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def test_the_command_dry_runs_then_purges() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=make_officer(), room=None, keep_days=30)
    out = StringIO()

    call_command("apply_retention", "--dry-run", "--room", str(room.pk), stdout=out)

    assert Message.objects.filter(pk=message.pk).exists()
    assert f"{room.pk}\t30\t1\t" in out.getvalue()
    assert "would purge: 1 messages" in out.getvalue()

    call_command("apply_retention", stdout=out)

    assert not Message.objects.filter(pk=message.pk).exists()
    assert "purged: 1 messages" in out.getvalue()
    started = AuditEvent.objects.get(action="retention.run.started")
    assert started.actor_username == "system:retention"


def test_the_command_refuses_a_room_that_does_not_exist() -> None:
    with pytest.raises(CommandError, match="there is no room 424242"):
        call_command("apply_retention", "--dry-run", "--room", "424242", stdout=StringIO())

    assert AuditEvent.objects.filter(action="retention.run.refused").count() == 1


def test_the_command_refuses_a_batch_size_below_one_and_the_attempt_is_audited() -> None:
    # when the command is asked for batches of no messages
    with pytest.raises(CommandError, match="a batch size is a whole number of at least 1"):
        call_command("apply_retention", "--batch-size", "0", stdout=StringIO())

    # then no run started and the attempt is on the record
    assert not RetentionRun.objects.exists()
    assert AuditEvent.objects.filter(action="retention.run.refused").count() == 1


def test_the_task_runs_the_service() -> None:
    owner = make_user()
    message = post_aged(sender=owner, room=make_room(owner=owner), days=90)
    retention_policy_set(actor=make_officer(), room=None, keep_days=30)

    run_id = apply_retention_task.apply().get()

    assert RetentionRun.objects.get(pk=run_id).state == "finished"
    assert not Message.objects.filter(pk=message.pk).exists()


def test_beat_runs_the_retention_task_daily_by_default(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["compliance-apply-retention"]

    assert entry["task"] == apply_retention_task.name == "compliance.apply_retention"
    assert entry["schedule"] == 24 * 3600


def test_the_task_stands_down_while_another_run_works() -> None:
    RetentionRun.objects.create(
        started_at=timezone.now(), lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    other = connections.create_connection("default")
    if other.vendor == "postgresql":
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [RUN_LOCK_KEY])
    try:
        assert apply_retention_task.apply().get() == 0
    finally:
        other.close()

    assert AuditEvent.objects.filter(action="retention.run.refused").count() == 1
