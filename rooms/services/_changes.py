"""The change feed's writer: one ``RoomChange`` per change, in the change's transaction.

Commit order is the feed's order. PostgreSQL allocates a sequence value when a row is
inserted, not when its transaction commits, so two writers can commit ids 11 and 10 in
that order, and a reader that saw 11 and moved its cursor past it would never see 10.
Here every entry is inserted after the action's audit append, so while the transaction
holds the audit chain's advisory lock, which is kept until the transaction ends: the
next entry's id is allocated only after this one committed or rolled back. SQLite runs
one write transaction at a time, which gives the same order.

So: call it only after the action's audit append (the chain lock is the last lock an
action takes, docs/architecture.md), with nothing locked after it; every caller does,
and tests/rooms/test_change_feed.py shows a late commit is never skipped.
"""

from __future__ import annotations

from django.utils import timezone

from rooms.models import RoomChange


def room_change_append(
    *,
    room_id: int,
    kind: RoomChange.Kind,
    message_id: int | None = None,
    user_id: int | None = None,
    role: str = "",
) -> RoomChange:
    """Append one change to the feed, in the open transaction, in commit order (called
    after the transaction's audit append: see the module's docstring)."""
    return RoomChange.objects.create(
        room_id=room_id,
        kind=kind,
        message_id=message_id,
        user_id=user_id,
        role=role,
        occurred_at=timezone.now(),
    )
