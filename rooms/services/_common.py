"""Checks shared by the room services. Each raises ``safechat.actions.Refused``, which the
``@action`` entry point records once, after its transaction rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models import Q

from accounts.models import User
from accounts.selectors import user_reads_chat_only
from audit.actions import AuditAction
from rooms.errors import UNREACHABLE, BarrierViolationError, UnreachableError
from rooms.models import InformationBarrier, Membership, Room
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


def require_writable(*, actor: User, room: Room, permission: str, operation: str) -> None:
    """The rule of every write in a room (``operation``, as recorded): inside the action's
    transaction, with ``room`` freshly locked, raise ``Refused`` unless ``actor`` holds
    ``permission``, the room is live, and no information barrier separates ``actor`` from
    another member (``require_unseparated``: a ``BarrierViolationError``, recorded
    ``barrier.refused``). Before the transaction it is a quick answer only.
    """
    require_room_permission(actor=actor, room=room, permission=permission)
    require_not_archived(actor=actor, room=room)
    require_unseparated(actor=actor, room=room, operation=operation)


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
    holds. An inviter an information barrier now separates from someone in the room may
    not invite (``require_writable``), so their invitation lends nothing either."""
    needed = role_grant_permission(role)
    if (
        inviter is None
        or needed not in room_permissions_of(room=room, user=inviter)
        or room_barrier_separating(room_id=room.pk, user_id=inviter.pk) is not None
    ):
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


def room_barrier_separating(*, room_id: int, user_id: int) -> int | None:
    """The id of a barrier that separates ``user_id`` from another member of the room
    (dormant members included, as the violation reports count them), or None.

    Asked at every write, so it is made cheap for the common case: the person's groups
    (one indexed look-up; none for most people: done), the barriers that name one of
    them (a small table; none: done), and only for someone a barrier names, whether
    another member of the room is in a group across one of those barriers (an indexed
    look-up of the room's members in those few groups). Short queries, never a nested
    one that would read every member's groups.
    """
    through = User.groups.through.objects
    mine = set(through.filter(user_id=user_id).values_list("group_id", flat=True))
    if not mine:
        return None
    across: dict[int, int] = {}  # a group across a barrier from one of mine: its lowest id
    for barrier_id, group_a, group_b in (
        InformationBarrier.objects.filter(Q(group_a_id__in=mine) | Q(group_b_id__in=mine))
        .order_by("-pk")
        .values_list("pk", "group_a_id", "group_b_id")
    ):
        if group_a in mine:
            across[group_b] = barrier_id
        if group_b in mine:
            across[group_a] = barrier_id
    if not across:
        return None
    met = (
        through.filter(group_id__in=list(across), user__memberships__room_id=room_id)
        .exclude(user_id=user_id)
        .values_list("group_id", flat=True)
    )
    return min((across[group] for group in set(met)), default=None)


def require_unseparated(*, actor: User, room: Room, operation: str) -> None:
    """Raise ``BarrierViolationError`` (a ``Refused``, recorded ``barrier.refused``) if an
    information barrier separates ``actor`` from another member of ``room``.

    A barrier created after two people came to share a room (or a person's groups
    changed since) leaves the room in violation until a security admin resolves it (by
    removing someone, changing a group or lifting the barrier); meanwhile neither side
    writes anything there (``operation``: a post, an edit, a reaction, an upload), and
    the others go on. Call with the room's row locked: ``barrier_create`` and every
    change of groups lock the rooms where the people they separate meet, so the check
    and the write hold together (a barrier committed first is seen; a write committed
    first commits before the barrier does).
    """
    barrier = room_barrier_separating(room_id=room.pk, user_id=actor.pk)
    if barrier is not None:
        raise BarrierViolationError(
            "an information barrier separates you from someone in this room: you can read "
            "it, but not write in it, until a security administrator resolves it",
            actor=actor,
            action=AuditAction.BARRIER_REFUSED,
            target=room,
            reason="information-barrier",
            extra={"barrier": barrier, "operation": operation},
        )
