"""Checks shared by the room services. Each raises ``safechat.actions.Refused``, which the
``@action`` entry point records once, after its transaction rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from accounts.models import User
from accounts.selectors import user_reads_chat_only
from audit.actions import AuditAction
from rooms.errors import UNREACHABLE, UnreachableError
from rooms.models import Membership, Room
from rooms.permissions import MANAGE_MEMBERS, MANAGE_ROOM, VIEW, room_permissions_of
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


@contextmanager
def unreachable_answered(message: str = UNREACHABLE) -> Iterator[None]:
    """A refusal raised inside, about a person asked for (a compliance officer, someone a
    barrier keeps out), is recorded as what it is but answered as ``message``, the words
    an id that names nobody gets (``rooms.errors.UnreachableError``)."""
    try:
        yield
    except Refused as refused:
        raise UnreachableError.instead_of(refused, message=message) from None


def require_open_membership(*, actor: User, room: Room) -> None:
    """Raise ``Refused`` if ``room`` is a direct conversation: its membership and roles
    are fixed for its life (nobody adds, invites or removes others, changes a role, or
    leaves, as in Slack, where a direct message is closed, never left); "add people"
    makes a new room. Only a security admin resolving a barrier removes someone."""
    if room.kind == Room.Kind.DIRECT:
        raise room_refused(
            actor=actor,
            room=room,
            reason="direct conversation",
            message=(
                "a direct conversation's membership and roles are fixed: nobody joins, leaves "
                "or changes role; start a new room to add people"
            ),
        )


def require_open_membership_first(*, actor: User, room: Room) -> None:
    """``require_open_membership``, asked before the actor's right of those who see the
    room: a participant of a direct conversation, where nobody manages members, hears
    that its membership is fixed rather than that they lack a right; anyone else is
    then refused for the right and learns nothing of the room."""
    if room.kind == Room.Kind.DIRECT and VIEW in room_permissions_of(room=room, user=actor):
        require_open_membership(actor=actor, room=room)


ELEVATED_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.MODERATOR})


def role_grant_permission(role: str) -> str:
    """The room permission whoever grants ``role`` must hold: ``manage_room`` (an owner)
    for an owner or a moderator, ``manage_members`` for a member or a read-only member."""
    return MANAGE_ROOM if role in ELEVATED_ROLES else MANAGE_MEMBERS


def require_role_grantable(*, actor: User, room: Room, role: str) -> None:
    """Raise ``Refused`` (``owner role``, ``moderator role``) unless ``actor`` may grant
    ``role``: only owners make owners and moderators, on every path (adding, inviting,
    changing a role). Before the action's transaction a quick answer; under the room's
    lock the check that holds."""
    if role in ELEVATED_ROLES:
        require_room_permission_for(
            actor=actor,
            room=room,
            permission=MANAGE_ROOM,
            reason=f"{role} role",
            message="only an owner can make someone an owner or a moderator",
        )


def require_inviter_entitled(*, actor: User, room: Room, inviter: User | None, role: str) -> None:
    """Raise ``Refused`` (``inviter no longer entitled``) unless ``inviter`` may still grant
    ``role`` on ``room`` (``role_grant_permission``), as the database says now: an
    invitation lends the invitee its sender's power only while the sender holds it
    (deactivated, read-only on chat, removed or demoted since, they do not). ``actor`` is
    the invitee accepting; under the inviter's and the room's locks it is the check that
    holds."""
    needed = role_grant_permission(role)
    if inviter is None or needed not in room_permissions_of(room=room, user=inviter):
        raise room_refused(
            actor=actor,
            room=room,
            reason="inviter no longer entitled",
            message=(
                "this invitation no longer holds: the person who sent it can no longer "
                "grant this role; ask a manager of the room to invite you again"
            ),
            inviter=inviter.pk if inviter is not None else None,
            role=role,
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
