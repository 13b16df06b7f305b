"""The migration that sealed the reviewers' notes (compliance 0007, 0008): notes stored
as text before it are sealed under their message's epoch key and the text is gone; a
note whose epoch retention had shredded is gone with it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.models import AuditEvent
from compliance.models import SupervisionItem
from compliance.selectors.supervision import NOTE_SHREDDED, OpenedNote, supervision_item_open
from compliance.services.supervision import supervision_lexicon_create, supervision_term_add
from rooms.services import message_post
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import clear_key_caches, epoch_key_destroy
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("compliance", "0006_supervision_item_at_post")]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)


def test_notes_stored_as_text_are_sealed_and_the_text_is_gone() -> None:
    # given two flagged items, the second's epoch later shredded by retention
    officer, reviewer = make_officer(), make_officer()
    lexicon = supervision_lexicon_create(actor=officer, name="Promises")
    supervision_term_add(actor=officer, lexicon=lexicon, kind="phrase", value="guarantee")
    sender = make_user()
    kept, shredded = (
        SupervisionItem.objects.get(
            message_id=message_post(
                sender=sender, room=make_room(owner=sender), text="I guarantee it"
            ).pk
        )
        for _ in range(2)
    )
    # and, before 0007, one escalated with a note and the other closed, both as text
    executor = _migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps.get_model("compliance", "SupervisionItem")
        now = timezone.now()
        old.objects.filter(pk=kept.pk).update(
            state="escalated",
            escalated_by_id=reviewer.pk,
            escalated_at=now,
            escalation_note="MIGRATED-NOTE-4a7f",
        )
        old.objects.filter(pk=shredded.pk).update(
            state="closed", closed_by_id=reviewer.pk, closed_at=now, close_reason="GONE-NOTE-8c2e"
        )
        epoch_key_destroy(epoch=RoomEpoch.objects.get(room_id=shredded.room_id, number=1))
        clear_key_caches()
        seq = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

        # when the migrations run
        executor = _migrate(executor.loader.graph.leaf_nodes())
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    # then no text is left, in the items or the audit log
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM compliance_supervisionitem")
        rows = repr(cursor.fetchall())
    assert "MIGRATED-NOTE" not in rows
    assert "GONE-NOTE" not in rows
    # and the note whose key lives is sealed and opens; the other cannot be read
    kept.refresh_from_db()
    shredded.refresh_from_db()
    assert supervision_item_open(officer=make_officer(), item=kept).escalation_note == (
        OpenedNote("MIGRATED-NOTE-4a7f")
    )
    assert supervision_item_open(officer=make_officer(), item=shredded).close_reason == (
        OpenedNote(None, NOTE_SHREDDED)
    )
    # and the one key opened for it is on the record, as the migration's
    used = AuditEvent.objects.filter(seq__gt=seq, action="key.compliance.used")
    assert [e.actor_username for e in used] == ["system:migration"]
    for event in AuditEvent.objects.filter(seq__gt=seq):
        assert "MIGRATED-NOTE" not in str(event.extra)
