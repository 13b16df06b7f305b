"""Checks shared by the room services. Each raises ``safechat.actions.Refused``, which the
``@action`` entry point records once, after its transaction rolled back."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from accounts.selectors import user_reads_chat_only
from audit.actions import AuditAction
from rooms.models import Membership, Room
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


def require_chat_writer(*, actor: User, room: Room | None, person: User) -> None:
    """Raise ``Refused`` if ``person`` holds a role that is read-only on chat.

    The one rule of the compliance officer (``accounts.selectors.user_reads_chat_only``):
    never a member with post or manage rights, so they create no room or direct
    conversation and nobody adds or invites them. ``person`` may be the actor.
    """
    if user_reads_chat_only(user=person):
        raise room_refused(
            actor=actor,
            room=room,
            reason="read-only role",
            message="compliance officers are read-only on chat and cannot join or start rooms",
            person=person.pk,
        )


def require_open_membership(*, actor: User, room: Room) -> None:
    """Raise ``Refused`` if ``room`` is a direct conversation: its membership is fixed
    (nobody adds, invites or removes others); "add people" makes a new room."""
    if room.kind == Room.Kind.DIRECT:
        raise room_refused(
            actor=actor,
            room=room,
            reason="direct conversation",
            message="a direct conversation's membership is fixed; start a new room to add people",
        )


def require_owner_over(*, actor: User, room: Room, membership: Membership) -> None:
    """Under the room's lock: raise ``Refused`` unless ``actor`` may change ``membership``.

    Only owners (``manage_room``) change owners and moderators, by a role change or a
    removal; a moderator manages members and read-only members only.
    """
    if membership.role in (Membership.Role.OWNER, Membership.Role.MODERATOR):
        require_room_permission_for(
            actor=actor,
            room=room,
            permission="manage_room",
            reason=f"{membership.role} role",
            message="only an owner can change an owner or a moderator",
        )


def require_room_permission_for(
    *, actor: User, room: Room, permission: str, reason: str, message: str
) -> None:
    """``require_room_permission`` with the refusal's own reason and message."""
    if permission not in room_permissions_of(room=room, user=actor):
        raise room_refused(actor=actor, room=room, reason=reason, message=message)


def last_owner_refused(*, actor: User, room: Room) -> Refused:
    return room_refused(
        actor=actor,
        room=room,
        reason="last owner",
        message="a room keeps at least one owner; appoint another first",
    )
