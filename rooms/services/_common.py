"""Checks shared by the room services. Each raises ``safechat.actions.Refused``, which the
``@action`` entry point records once, after its transaction rolled back."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from audit.actions import AuditAction
from rooms.models import Room
from rooms.permissions import room_permissions_of
from safechat.actions import Refused


def room_refused(
    *, actor: User, room: Room | None, reason: str, message: str, **extra: Any
) -> Refused:
    """A refusal on ``room`` (or on rooms at large), recorded as ``room.access_denied``."""
    return Refused(
        message,
        actor=actor,
        action=AuditAction.ROOM_ACCESS_DENIED,
        target=room,
        reason=reason,
        extra=extra,
    )


def permission_refused(*, actor: User, room: Room, permission: str) -> Refused:
    return room_refused(
        actor=actor,
        room=room,
        reason=f"missing {permission}",
        message="you are not allowed to do this in this room",
    )


def archived_refused(*, actor: User, room: Room) -> Refused:
    return room_refused(
        actor=actor, room=room, reason="archived", message="this room is archived and read-only"
    )


def require_room_permission(*, actor: User, room: Room, permission: str) -> None:
    """Raise ``Refused`` unless ``actor`` holds ``permission`` on ``room``.

    Before the action's transaction it is a quick answer; inside it, with ``room``
    locked, it is the check that holds until the commit.
    """
    if permission not in room_permissions_of(room=room, user=actor):
        raise permission_refused(actor=actor, room=room, permission=permission)


def require_not_archived(*, actor: User, room: Room) -> None:
    """Raise ``Refused`` if ``room`` (as read) is archived."""
    if room.is_archived:
        raise archived_refused(actor=actor, room=room)


def require_writable(*, actor: User, room: Room, permission: str) -> None:
    """Inside the action's transaction, with ``room`` freshly locked: raise ``Refused``
    unless ``actor`` holds ``permission`` and the room is live."""
    require_room_permission(actor=actor, room=room, permission=permission)
    require_not_archived(actor=actor, room=room)
