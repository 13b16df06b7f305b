"""Checks shared by the room services. Refusals are audited in their own transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import PermissionDenied
from django.db import transaction

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from rooms.models import Room
from rooms.permissions import has_room_permission


def refuse(
    *, actor: User, room: Room | None, reason: str, error: PermissionDenied, **extra: object
) -> PermissionDenied:
    """Record a refusal (committed even though the action is not) and return the error."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=(
                AuditAction.BARRIER_REFUSED
                if reason == "information-barrier"
                else AuditAction.ROOM_ACCESS_DENIED
            ),
            target=room,
            extra={"reason": reason, **extra},
        )
    return error


class Refused(Exception):
    """A refusal found inside an action's transaction, to be audited after its rollback."""

    def __init__(
        self, *, actor: User, room: Room | None, reason: str, error: PermissionDenied
    ) -> None:
        super().__init__(reason)
        self.actor, self.room, self.reason, self.error = actor, room, reason, error


@contextmanager
def refusals_audited() -> Iterator[None]:
    """Wrap an action's transaction: a ``Refused`` raised in it rolls the action back, is
    audited in its own transaction, and reaches the caller as its PermissionDenied.
    """
    try:
        yield
    except Refused as refused:
        raise refuse(
            actor=refused.actor, room=refused.room, reason=refused.reason, error=refused.error
        ) from None


def require_room_permission(*, actor: User, room: Room, permission: str) -> None:
    """Raise PermissionDenied (audited) unless ``actor`` holds ``permission`` on ``room``."""
    if not has_room_permission(room=room, user=actor, permission=permission):
        raise refuse(
            actor=actor,
            room=room,
            reason=f"missing {permission}",
            error=PermissionDenied("you are not allowed to do this in this room"),
        )


def require_not_archived(*, actor: User, room: Room) -> None:
    if room.is_archived:
        raise refuse(
            actor=actor,
            room=room,
            reason="archived",
            error=PermissionDenied("this room is archived and read-only"),
        )
