"""The change feed's writer: one ``RoomChange`` per change, in the change's transaction.

Commit order is the feed's order. PostgreSQL allocates a sequence value when a row is
inserted, not when its transaction commits, so two writers can commit ids 11 and 10 in
that order, and a reader that saw 11 and moved its cursor past it would never see 10.
Here every entry is inserted holding the audit chain's advisory lock (taken again: it is
re-entrant and the action's audit append already holds it), which is kept until the
transaction ends, so the next entry's id is allocated only after this one committed or
rolled back. SQLite runs one write transaction at a time, which gives the same order.

Call it after the action's audit append (the chain lock is the last lock an action
takes, docs/architecture.md), with nothing locked after it.
"""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from audit.pgappend import LOCK_SQL
from rooms.models import RoomChange


def room_change_append(
    *,
    room_id: int,
    kind: RoomChange.Kind,
    message_id: int | None = None,
    user_id: int | None = None,
    role: str = "",
) -> RoomChange:
    """Append one change to the feed, in the open transaction, in commit order."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(LOCK_SQL)
    return RoomChange.objects.create(
        room_id=room_id,
        kind=kind,
        message_id=message_id,
        user_id=user_id,
        role=role,
        occurred_at=timezone.now(),
    )
