"""An earlier text records its message's room: every creator sets it (the database refuses
one without), and migration rooms 0012 filled it in for the texts kept before, in batches,
and can be undone."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from rooms.models import MessageRevision
from rooms.services import message_edit, message_post
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

BEFORE = [("rooms", "0011_legal_hold_derived")]
BACKFILL = importlib.import_module("rooms.migrations.0012_message_revision_room")


def test_an_edit_keeps_the_earlier_text_under_its_message_s_room() -> None:
    owner = make_user()
    first, second = make_room(owner=owner), make_room(owner=owner)
    here = message_post(sender=owner, room=first, text="one")
    there = message_post(sender=owner, room=second, text="two")

    message_edit(actor=owner, message=here, text="one, again")
    message_edit(actor=owner, message=there, text="two, again")
    message_edit(actor=owner, message=there, text="two, once more")

    rooms = dict(MessageRevision.objects.values_list("message_id", "room_id").distinct())
    assert rooms == {here.pk: first.pk, there.pk: second.pk}
    assert MessageRevision.objects.filter(room=second).count() == 2


def test_an_earlier_text_without_a_room_is_refused_by_the_database() -> None:
    owner = make_user()
    message = message_post(sender=owner, room=make_room(owner=owner), text="one")

    with pytest.raises(IntegrityError), transaction.atomic():
        MessageRevision.objects.create(
            message=message,
            revision=0,
            epoch=message.epoch,
            ciphertext=message.ciphertext,
            created_at=timezone.now(),
        )

    assert not MessageRevision.objects.exists()


@pytest.fixture
def executor() -> Iterator[MigrationExecutor]:
    """A migration executor; the latest schema again afterwards, whatever happened."""
    try:
        yield MigrationExecutor(connection)
    finally:
        latest = MigrationExecutor(connection)
        latest.loader.build_graph()
        latest.migrate(latest.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_in_every_earlier_text_s_room_in_batches_and_can_be_undone(
    executor: MigrationExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given earlier texts in two rooms, and the schema taken back to before the column
    owner = make_user()
    first, second = make_room(owner=owner), make_room(owner=owner)
    messages = [message_post(sender=owner, room=room, text="t") for room in (first, second)]
    for number in range(5):
        message_edit(actor=owner, message=messages[number % 2], text=f"edit {number}")
    expected = dict(MessageRevision.objects.values_list("pk", "room_id"))
    assert len(expected) == 5
    executor.migrate(BEFORE)
    with connection.cursor() as cursor:
        columns = [c.name for c in connection.introspection.get_table_description(
            cursor, "rooms_messagerevision"
        )]  # fmt: skip
    assert "room_id" not in columns

    # when the migration runs again, two texts per batch
    monkeypatch.setattr(BACKFILL, "BATCH", 2)
    statements: list[str] = []

    def count_updates(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if sql.startswith('UPDATE "rooms_messagerevision"'):
            statements.append(sql)
        return execute(sql, params, many, context)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    with connection.execute_wrapper(count_updates):
        executor.migrate([("rooms", "0012_message_revision_room")])

    # then every text has its message's room, filled in three statements
    assert dict(MessageRevision.objects.values_list("pk", "room_id")) == expected
    assert len(statements) == 3
