"""Who is in a room. Every change moves keys and permissions in the same transaction."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Max
from django.http import Http404

from accounts.models import User
from accounts.roles import MANAGE_USERS
from accounts.selectors import person_active_get
from audit.actions import AuditAction
from audit.services import audit_record
from rooms import permissions as perms
from rooms.models import Membership, Message, Room, RoomInvitation
from rooms.permissions import room_permissions_set
from rooms.ratelimit import Write, write_rate_check
from rooms.services._common import (
    archived_refused,
    last_owner_refused,
    require_chat_writer,
    require_not_archived,
    require_open_membership,
    require_owner_over,
    require_room_permission,
    require_writable,
    room_refused,
)
from rooms.services.barriers import barrier_require_allowed
from rooms.services.epochs import room_epoch_start, room_keys_grant, room_keys_revoke
from safechat.actions import action, action_transaction
from safechat.events import Event, publish
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import user_key_create
from safechat.locks import rows_locked


def _member_ids(room: Room) -> list[int]:
    return list(Membership.objects.filter(room=room).values_list("user_id", flat=True))


def _other_owner_exists(membership: Membership) -> bool:
    """Whether the room has another owner who can act (a deactivated one cannot)."""
    return (
        Membership.objects.filter(
            room_id=membership.room_id, role=Membership.Role.OWNER, user__is_active=True
        )
        .exclude(pk=membership.pk)
        .exists()
    )


def rooms_owned_only_by(*, user: User) -> list[Room]:
    """The rooms ``user`` is the only active owner of, for a deactivation to refuse.

    A helper, not an action: call it inside the deactivation's transaction, with the
    user's row locked; it locks those rooms (in id order, after the user, as the lock
    order has it), so an owner demoted, removed or leaving at the same instant is
    serialised with the deactivation and a room never ends with no owner who can act.
    """
    owned = Membership.objects.filter(user=user, role=Membership.Role.OWNER)
    rooms = rows_locked(Room, owned.values_list("room_id", flat=True))
    others = (
        Membership.objects.filter(room__in=rooms, role=Membership.Role.OWNER, user__is_active=True)
        .exclude(user=user)
        .values_list("room_id", flat=True)
    )
    covered = set(others)
    return [room for room in rooms if room.pk not in covered]


def _pickable(user: User | None) -> User:
    """``user`` if it is an active person (never guardian's anonymous row), else a
    ValidationError: asked only after the actor's right, so an id says nothing."""
    person = person_active_get(user_id=user.pk) if user is not None else None
    if person is None:
        raise ValidationError("this person cannot be added")
    return person


def _check_role(role: str, *, actor: User, room: Room) -> None:
    if role not in Membership.Role.values:
        raise ValidationError(f"unknown role {role!r}")
    # Only an owner makes owners.
    if role == Membership.Role.OWNER and not perms.has_room_permission(
        room=room, user=actor, permission=perms.MANAGE_ROOM
    ):
        raise room_refused(
            actor=actor,
            room=room,
            reason="owner role",
            message="only an owner can make someone an owner",
        )


def _joining_marks(room: Room) -> dict[str, int]:
    """Where a newcomer's reading starts, taken under the room's row lock (posting holds it
    too, so no message falls between): nothing unread from before they joined, and in a
    room that hides history, nothing shown from before they joined."""
    newest = Message.objects.filter(room=room).aggregate(newest=Max("id"))["newest"] or 0
    return {
        "last_read_message_id": newest,
        "visible_from_seq": 0 if room.history_visible else room.message_seq,
    }


def _membership_insert(
    *, actor: User, room: Room, user: User, role: str, permission: str | None
) -> Membership:
    """Add ``user`` under the locks (user, then room), with every check made under them.

    The barrier check and the insert are one step: two people added at the same
    instant are serialised on the room's row, and the second sees the first. A
    refusal rolls everything back and is recorded once, after the rollback
    (``action_transaction``). The inner step of ``membership_add`` and
    ``room_invitation_accept``: it opens the action's transaction.
    """
    with action_transaction():
        person = rows_locked(User, [user.pk])
        if not person or not person[0].is_active:  # deactivated at the same instant
            raise ValidationError("this person cannot be added")
        locked = rows_locked(Room, [room.pk])
        if not locked:
            raise Http404("no such room")
        room = locked[0]
        # Under the person's row: a role granted at the same instant locks it too.
        require_chat_writer(actor=actor, room=room, person=person[0])
        require_open_membership(actor=actor, room=room)
        if permission is not None:
            require_writable(actor=actor, room=room, permission=permission)
            if role == Membership.Role.OWNER:  # only an owner makes owners
                require_room_permission(actor=actor, room=room, permission=perms.MANAGE_ROOM)
        elif room.is_archived:
            raise archived_refused(actor=actor, room=room)
        barrier_require_allowed(
            actor=actor, room=room, user_ids=[*_member_ids(room), user.pk], newcomer=user.pk
        )
        membership, created = Membership.objects.get_or_create(
            room=room, user=user, defaults={"role": role, **_joining_marks(room)}
        )
        if not created:
            return membership
        room_permissions_set(room=room, user=user, role=role)
        RoomInvitation.objects.filter(room=room, invitee=user).delete()
        granted = room_keys_grant(room=room, user=user)
        audit_record(
            actor=actor,
            action=AuditAction.ROOM_MEMBER_ADDED,
            target=room,
            extra={"member": user.pk, "role": role, "epochs_granted": granted},
        )
        publish(Event.ROOM_GRANTED, to_user=user.pk, room_id=room.pk)
        publish(Event.MEMBER_ADDED, room_id=room.pk, user_id=user.pk)
        if permission is None:  # the invitee joined on their own invitation
            audit_record(
                actor=actor, action=AuditAction.ROOM_INVITATION_ACCEPTED, target=room, extra={}
            )
        return membership


@action
def membership_add(
    *, actor: User, room: Room, user: User | None, role: str = Membership.Role.MEMBER
) -> Membership:
    """Add ``user`` (``manage_members``); they receive the keys the room's policy allows.

    ``user`` is None when the edge found nobody by the id it was given: the actor's
    right is checked first, so someone without it is refused (audited) alike whether
    the id names a person or not; with it, a ValidationError. Only active people are
    added (``accounts.selectors.people_active``), never a compliance officer (refused)
    and never into a direct conversation (its membership is fixed: refused) or an
    archived room (refused). Refused, and recorded once, if an information barrier
    separates them from a member, also one added at the same instant. Counted against
    ``SAFECHAT_MEMBERSHIP_RATE_LIMIT``. Locks: the user, then the room.
    """
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
    require_not_archived(actor=actor, room=room)
    require_open_membership(actor=actor, room=room)
    _check_role(role, actor=actor, room=room)
    user = _pickable(user)
    require_chat_writer(actor=actor, room=room, person=user)
    write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    user_key_create(user=user)  # before any lock: it appends to the audit chain
    return _membership_insert(
        actor=actor, room=room, user=user, role=role, permission=perms.MANAGE_MEMBERS
    )


@action
def membership_remove(*, actor: User, room: Room, member: User | None) -> None:
    """Remove a member: their permissions and sealed keys go, the room moves to a new epoch,
    and their live sockets stop receiving the room at once (after commit).

    Members may leave a live room; removing someone else needs ``manage_members`` on
    the room, and an owner (``manage_room``) to remove an owner or a moderator; nobody
    removes others from a direct conversation (its membership is fixed) or anyone from
    an archived room (refused). A security admin (the right to manage users) may remove
    anyone, anywhere, to resolve an information barrier. ``member`` is None when the
    edge found nobody by the id it was given: after the actor's right is checked (a
    refusal answers alike whether the id exists or not), nothing happens. Refused
    (``last owner``) if the room would be left without an owner, also when two owners
    leave at the same instant. Locks: the room (every check is made again under it),
    then the membership, then key rows; the audit chain last.
    """
    security_admin = actor.has_perm(MANAGE_USERS)
    leaving = member is not None and actor.pk == member.pk
    if not security_admin:
        if not leaving:
            require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
        require_not_archived(actor=actor, room=room)
        if not leaving:
            require_open_membership(actor=actor, room=room)
    if member is None:
        return
    if not security_admin:  # resolving a barrier violation never waits
        write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    with action_transaction():
        _membership_delete(
            actor=actor, room=room, member=member, leaving=leaving, security_admin=security_admin
        )


def _membership_delete(
    *, actor: User, room: Room, member: User, leaving: bool, security_admin: bool
) -> None:
    # Lock order: the room, then the membership, then keys, the audit chain last (a
    # post takes them in the same order, so a removal and a post never deadlock).
    locked = rows_locked(Room, [room.pk])
    if not locked:
        return
    if not security_admin:  # a moderator demoted, a room archived at the same instant
        if not leaving:
            require_room_permission(actor=actor, room=locked[0], permission=perms.MANAGE_MEMBERS)
            require_open_membership(actor=actor, room=locked[0])
        require_not_archived(actor=actor, room=locked[0])
    # FOR UPDATE: the row is deleted below.
    membership = Membership.objects.select_for_update().filter(room=room, user=member).first()
    if membership is None:
        return
    if not security_admin and not leaving:
        require_owner_over(actor=actor, room=locked[0], membership=membership)
    if membership.role == Membership.Role.OWNER and not _other_owner_exists(membership):
        raise last_owner_refused(actor=actor, room=locked[0])
    membership.delete()
    room_permissions_set(room=room, user=member, role=None)
    room_keys_revoke(room=room, user=member)
    room_epoch_start(room=room, reason=RoomEpoch.Reason.MEMBER_REMOVED, actor=actor)
    audit_record(
        actor=actor,
        action=AuditAction.ROOM_MEMBER_REMOVED,
        target=room,
        extra={"member": member.pk},
    )
    # Delivery to the removed member stops first, then the others hear of it.
    publish(Event.ROOM_REVOKED, to_user=member.pk, room_id=room.pk)
    publish(Event.MEMBER_REMOVED, room_id=room.pk, user_id=member.pk)


@action
def membership_role_change(
    *, actor: User, room: Room, member: User | None, role: str
) -> Membership:
    """Give a member another room role (``manage_members``); never one's own.

    Only an owner (``manage_room``) makes or unmakes an owner or a moderator; a
    moderator moves people between member and read-only. Refused in an archived room,
    and for a compliance officer any role but read-only. ``member`` is None when the
    edge found nobody by the id it was given: after the actor's right is checked, a
    ValidationError. A room keeps at least one owner (refused, ``last owner``): two
    owners demoting each other at the same instant are serialised on the room's row,
    and the second is refused. Locks: the room (every check made again under it), then
    the membership; audit last.
    """
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
    require_not_archived(actor=actor, room=room)
    _check_role(role, actor=actor, room=room)
    if member is None:
        raise ValidationError("this person is not a member of the room")
    if actor.pk == member.pk:
        raise room_refused(
            actor=actor, room=room, reason="own role", message="nobody changes their own role"
        )
    write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    with action_transaction():
        return _membership_role_set(actor=actor, room=room, member=member, role=role)


def _membership_role_set(*, actor: User, room: Room, member: User, role: str) -> Membership:
    # The room, then the membership: the checks below hold until the commit.
    locked = rows_locked(Room, [room.pk])
    if not locked:
        raise Http404("no such room")
    room = locked[0]
    require_writable(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
    if role == Membership.Role.OWNER:  # only an owner makes owners
        require_room_permission(actor=actor, room=room, permission=perms.MANAGE_ROOM)
    membership = (
        Membership.objects.select_for_update(no_key=True).filter(room=room, user=member).first()
    )
    if membership is None:
        raise ValidationError("this person is not a member of the room")
    # Only owners change owners and moderators, promotions to moderator included.
    require_owner_over(actor=actor, room=room, membership=membership)
    require_owner_over(actor=actor, room=room, membership=Membership(role=role))
    if role != Membership.Role.READ_ONLY:
        require_chat_writer(actor=actor, room=room, person=member)
    if membership.role == role:
        return membership
    if membership.role == Membership.Role.OWNER and not _other_owner_exists(membership):
        raise last_owner_refused(actor=actor, room=room)
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    room_permissions_set(room=room, user=member, role=role)
    audit_record(
        actor=actor,
        action=AuditAction.ROOM_MEMBER_ROLE_CHANGED,
        target=room,
        extra={"member": member.pk, "from": previous, "to": role},
    )
    publish(Event.MEMBER_UPDATED, room_id=room.pk, user_id=member.pk)
    return membership


@action
def room_invitation_send(
    *, actor: User, room: Room, invitee: User, role: str = Membership.Role.MEMBER
) -> RoomInvitation:
    """Invite someone (``manage_members``); barriers are checked now and again on acceptance.

    The same people as ``membership_add``: active, not a compliance officer, not into
    a direct conversation or an archived room (each refused).

    Locks: the room (the permission and the archive are checked again under it), then
    the invitation; the audit chain last. The acceptance (``room_invitation_accept``)
    re-checks the barrier under the invitee's and the room's locks.
    """
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
    require_not_archived(actor=actor, room=room)
    require_open_membership(actor=actor, room=room)
    _check_role(role, actor=actor, room=room)
    invitee = _pickable(invitee)
    require_chat_writer(actor=actor, room=room, person=invitee)
    barrier_require_allowed(
        actor=actor, room=room, user_ids=[*_member_ids(room), invitee.pk], newcomer=invitee.pk
    )
    write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    with action_transaction():
        locked = rows_locked(Room, [room.pk])
        if not locked:
            raise Http404("no such room")
        room = locked[0]
        require_writable(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
        if role == Membership.Role.OWNER:  # only an owner makes owners
            require_room_permission(actor=actor, room=room, permission=perms.MANAGE_ROOM)
        invitation, _ = RoomInvitation.objects.update_or_create(
            room=room, invitee=invitee, defaults={"invited_by": actor, "role": role}
        )
        audit_record(
            actor=actor,
            action=AuditAction.ROOM_INVITATION_SENT,
            target=room,
            extra={"invitee": invitee.pk, "role": role},
        )
    return invitation


@action
def room_invitation_accept(*, actor: User, invitation: RoomInvitation) -> Membership:
    """The invitee joins with the invited role, unless a barrier now forbids it (recorded).

    Locks: the invitee, then the room; the audit chain last.
    """
    if invitation.invitee_id != actor.pk:
        raise room_refused(
            actor=actor,
            room=invitation.room,
            reason="invitation of another",
            message="this invitation is not yours",
        )
    room = invitation.room
    require_not_archived(actor=actor, room=room)
    require_chat_writer(actor=actor, room=room, person=actor)
    user_key_create(user=actor)
    return _membership_insert(
        actor=actor, room=room, user=actor, role=invitation.role, permission=None
    )
