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
from rooms.permissions import has_room_permission, room_permissions_of


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
    """A refusal, audited by ``audit()``: at once outside a transaction, or by
    ``refusals_audited`` after the action's transaction rolled back.
    """

    def __init__(
        self,
        *,
        actor: User,
        room: Room | None,
        reason: str,
        error: PermissionDenied,
        **extra: object,
    ) -> None:
        super().__init__(reason)
        self.actor, self.room, self.reason, self.error = actor, room, reason, error
        self.extra = extra

    def audit(self) -> PermissionDenied:
        return refuse(
            actor=self.actor, room=self.room, reason=self.reason, error=self.error, **self.extra
        )


@contextmanager
def refusals_audited() -> Iterator[None]:
    """Wrap an action's transaction: a ``Refused`` raised in it rolls the action back, is
    audited in its own transaction, and reaches the caller as its PermissionDenied.
    """
    try:
        yield
    except Refused as refused:
        raise refused.audit() from None


def _missing(*, actor: User, room: Room, permission: str) -> Refused:
    return Refused(
        actor=actor,
        room=room,
        reason=f"missing {permission}",
        error=PermissionDenied("you are not allowed to do this in this room"),
    )


def missing_refusal(*, actor: User, room: Room, permission: str) -> Refused:
    return _missing(actor=actor, room=room, permission=permission)


def _archived(*, actor: User, room: Room) -> Refused:
    return Refused(
        actor=actor,
        room=room,
        reason="archived",
        error=PermissionDenied("this room is archived and read-only"),
    )


def require_room_permission(*, actor: User, room: Room, permission: str) -> None:
    """Raise PermissionDenied (audited) unless ``actor`` holds ``permission`` on ``room``."""
    if not has_room_permission(room=room, user=actor, permission=permission):
        raise _missing(actor=actor, room=room, permission=permission).audit()


def require_not_archived(*, actor: User, room: Room) -> None:
    if room.is_archived:
        raise _archived(actor=actor, room=room).audit()


def archived_refusal(*, actor: User, room: Room) -> Refused:
    return _archived(actor=actor, room=room)


def demand_permission(*, actor: User, room: Room, permission: str) -> None:
    """Inside an action's transaction (under ``refusals_audited``), with ``room`` locked:
    raise ``Refused`` unless ``actor`` (still) holds ``permission`` on it.
    """
    if permission not in room_permissions_of(room=room, user=actor):
        raise _missing(actor=actor, room=room, permission=permission)


def demand_writable(*, actor: User, room: Room, permission: str) -> None:
    """Inside an action's transaction (under ``refusals_audited``), with ``room`` freshly
    locked: raise ``Refused`` unless ``actor`` holds ``permission`` and the room is live.
    """
    if permission not in room_permissions_of(room=room, user=actor):
        raise _missing(actor=actor, room=room, permission=permission)
    if room.is_archived:
        raise _archived(actor=actor, room=room)
