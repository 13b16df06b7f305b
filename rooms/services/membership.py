"""Who is in a room. Every change moves keys and permissions in the same transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from django.core.exceptions import ValidationError
from django.db.models import Max, QuerySet
from django.http import Http404

from accounts.models import User
from accounts.roles import MANAGE_USERS
from accounts.selectors import CHAT_READ_ONLY_ROLES, person_active_get
from audit.actions import AuditAction
from audit.services import audit_record
from rooms import permissions as perms
from rooms.errors import (
    NO_SUCH_ROOM,
    NOT_ADDABLE,
    AlreadyMemberError,
    NotAMemberError,
    RoomHiddenError,
)
from rooms.models import Membership, Message, Room, RoomChange, RoomInvitation
from rooms.permissions import room_permissions_set
from rooms.ratelimit import Write, write_rate_check
from rooms.services._changes import room_change_append
from rooms.services._common import (
    last_owner_refused,
    permission_refused,
    require_chat_writer,
    require_inviter_entitled,
    require_not_archived,
    require_open_membership,
    require_open_membership_first,
    require_owner_over,
    require_role_grantable,
    require_room_permission,
    require_writable,
    room_refused,
    unreachable_answered,
)
from rooms.services.barriers import barrier_require_allowed, room_barrier_violations
from rooms.services.epochs import (
    room_epoch_start,
    room_keys_grant,
    room_keys_revoke,
    room_rekey_mark,
)
from safechat.actions import Refused, action, action_transaction
from safechat.events import Event, MemberChange, publish
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import user_key_create
from safechat.locks import rows_locked


def _member_ids(room: Room) -> list[int]:
    return list(Membership.objects.filter(room=room).values_list("user_id", flat=True))


def acting_owners() -> QuerySet[Membership]:
    """The owner memberships whose holder can act for their room: the one definition of
    the owner a room keeps. An owner acts while their account is active and they hold
    no role that is read-only on chat (``accounts.selectors.CHAT_READ_ONLY_ROLES``: a
    compliance officer keeps ``view_room`` only, ``rooms.permissions``)."""
    return Membership.objects.filter(role=Membership.Role.OWNER, user__is_active=True).exclude(
        user__groups__name__in=CHAT_READ_ONLY_ROLES
    )


def _other_owner_exists(membership: Membership) -> bool:
    """Whether the room has another owner who can act (``acting_owners``)."""
    return acting_owners().filter(room_id=membership.room_id).exclude(pk=membership.pk).exists()


def rooms_left_without_owner(*, user_ids: Collection[int]) -> list[Room]:
    """The channels one of ``user_ids`` owns that no acting owner outside ``user_ids``
    would keep: the rooms left with nobody to manage them if these people stopped
    acting (deactivated, or made read-only on chat), for that change to refuse.

    Direct conversations are not counted: their membership and roles are fixed for
    their life, so there is nobody to appoint and nothing an owner could manage but
    their name. A helper, not an action: call it inside the change's transaction, with
    the people's rows (and their groups) locked; it locks those rooms (in id order,
    after the users, as the lock order has it), so an owner demoted, removed or leaving
    at the same instant is serialised with the change and a room never ends with no
    owner who can act.
    """
    owned = Membership.objects.filter(
        user_id__in=list(user_ids), role=Membership.Role.OWNER, room__kind=Room.Kind.CHANNEL
    )
    rooms = rows_locked(Room, owned.values_list("room_id", flat=True))
    covered = set(
        acting_owners()
        .filter(room__in=rooms)
        .exclude(user_id__in=list(user_ids))
        .values_list("room_id", flat=True)
    )
    return [room for room in rooms if room.pk not in covered]


def rooms_owned_only_by(*, user: User) -> list[Room]:
    """The channels ``user`` is the only acting owner of (``rooms_left_without_owner``);
    locks them."""
    return rooms_left_without_owner(user_ids=[user.pk])


def _pickable(user: User | None) -> User:
    """``user`` if it is an active person (never guardian's anonymous row), else a
    ValidationError: asked only after the actor's right, so an id says nothing."""
    person = person_active_get(user_id=user.pk) if user is not None else None
    if person is None:
        raise ValidationError(NOT_ADDABLE)
    return person


def _check_role(role: str, *, actor: User, room: Room) -> None:
    """The role is known, and ``actor`` may grant it (``require_role_grantable``)."""
    if role not in Membership.Role.values:
        raise ValidationError(f"unknown role {role!r}")
    require_role_grantable(actor=actor, room=room, role=role)


def _joining_marks(room: Room) -> dict[str, int]:
    """Where a newcomer's reading starts, taken under the room's row lock (posting holds it
    too, so no message falls between): nothing unread from before they joined, and in a
    room that hides history, nothing shown from before they joined."""
    newest = Message.objects.filter(room=room).aggregate(newest=Max("id"))["newest"] or 0
    return {
        "last_read_message_id": newest,
        "visible_from_seq": 0 if room.history_visible else room.message_seq,
    }


def _member_enter(*, room: Room, user: User, membership: Membership) -> int:
    """What a person entering ``room`` receives under the room's history rule, a newcomer
    and a reactivated member alike: where their reading starts (``_joining_marks``) and
    the epoch keys the rule allows (``room_keys_grant``). Returns how many keys were
    sealed. With the room's row and the membership locked (or just created)."""
    marks = _joining_marks(room)
    Membership.objects.filter(pk=membership.pk).update(**marks)
    for field, value in marks.items():
        setattr(membership, field, value)
    return room_keys_grant(room=room, user=user)


def memberships_suspend(*, user: User) -> dict[int, int]:
    """A deactivation's part in the rooms: ``user``'s memberships stay, dormant (a
    deactivated account holds no room permission, ``rooms.permissions``), but every
    sealed copy of their rooms' epoch keys is deleted and each room is marked so its
    next message or file key starts a new epoch without them (``member-deactivated``):
    nothing posted from then on is readable with a key they might have kept. Returns,
    per room, how many copies were deleted.

    Inside the deactivation's transaction, with the user's row and their rooms locked
    (the rooms step, ``user_rooms_lock``); then key rows. Not an action; asked through
    ``accounts.hooks``.
    """
    room_ids = Membership.objects.filter(user=user).values_list("room_id", flat=True)
    revoked: dict[int, int] = {}
    for room in rows_locked(Room, room_ids):  # already held: returns them
        revoked[room.pk] = room_keys_revoke(room=room, user=user)
        room_rekey_mark(room=room, reason=RoomEpoch.Reason.MEMBER_DEACTIVATED)
    return revoked


def member_renamed_publish(*, user: User) -> list[int]:
    """A display name change's part in the rooms: every room ``user`` is a member of hears
    ``member.updated`` (``change: name``) once the caller's transaction commits, so the
    members' clients show the new name. Returns the room ids told.

    Inside the change's transaction, with the user's row locked; takes no lock of its own
    (a room joined or left meanwhile is told by its own ``member.*`` event). Not an
    action; asked through ``accounts.hooks``.
    """
    room_ids = sorted(Membership.objects.filter(user=user).values_list("room_id", flat=True))
    for room_id in room_ids:
        publish(
            Event.MEMBER_UPDATED,
            room_id=room_id,
            user_id=user.pk,
            change=MemberChange.NAME.value,
        )
    return room_ids


def memberships_resume(*, user: User) -> dict[int, int]:
    """A reactivation's part in the rooms: ``user``'s dormant memberships and room roles
    come back (the administrator's decision, audited by the caller), but for reading the
    person returns as a newcomer does (``_member_enter``, the path ``membership_add``
    takes): in a room that hides history they see nothing posted before their return,
    and they receive only the epoch keys the room's rule gives a newcomer (in a room
    that shows history, every unshredded one; otherwise at most an epoch nothing is
    encrypted under yet, and the next content starts one they hold). Returns, per room,
    how many keys were sealed to them.

    Inside the reactivation's transaction, with the user's row and their rooms locked
    (``user_rooms_lock``); locks the memberships, then key rows. Not an action; asked
    through ``accounts.hooks``.
    """
    rooms = {
        room.pk: room
        for room in rows_locked(
            Room, Membership.objects.filter(user=user).values_list("room_id", flat=True)
        )
    }
    memberships = list(
        Membership.objects.select_for_update(no_key=True)
        .filter(user=user, room_id__in=list(rooms))
        .order_by("pk")
    )
    return {
        membership.room_id: _member_enter(
            room=rooms[membership.room_id], user=user, membership=membership
        )
        for membership in memberships
    }


def _about_the_person(permission: str | None) -> AbstractContextManager[None]:
    """How a refusal about the person joining is answered: a manager adding someone
    (``permission`` given) learns nothing of their role or barriers, it is answered as
    an id that names nobody; the invitee accepting their own invitation is told why."""
    return unreachable_answered(NOT_ADDABLE) if permission is not None else nullcontext()


def _membership_insert(
    *,
    actor: User,
    room: Room,
    user: User,
    role: str,
    permission: str | None,
    inviter: User | None = None,
) -> tuple[Membership, bool]:
    """Add ``user`` under the locks (the user and the inviter, then the room), with every
    check made under them.

    The barrier check and the insert are one step: two people added at the same
    instant are serialised on the room's row, and the second sees the first. An
    invitation (``permission`` None) is accepted only while its ``inviter`` may still
    grant its role (``require_inviter_entitled``). A refusal rolls everything back and
    is recorded once, after the rollback (``action_transaction``). The inner step of
    ``membership_add`` and ``room_invitation_accept``: it opens the action's transaction.
    """
    with action_transaction():
        # The inviter's row too: a deactivation or a role grant of theirs at the same
        # instant locks it, so it is serialised with the re-check below.
        people = {p.pk: p for p in rows_locked(User, [user.pk, *([inviter.pk] if inviter else [])])}
        person = people.get(user.pk)
        if person is None or not person.is_active:  # deactivated at the same instant
            raise ValidationError(NOT_ADDABLE)
        locked = rows_locked(Room, [room.pk])
        if not locked:
            raise Http404("no such room")
        room = locked[0]
        # Under the person's row: a role granted at the same instant locks it too.
        with _about_the_person(permission):
            require_chat_writer(actor=actor, room=room, person=person)
        require_open_membership(actor=actor, room=room)
        if permission is not None:
            require_writable(
                actor=actor, room=room, permission=permission, operation="room.member.add"
            )
            require_role_grantable(actor=actor, room=room, role=role)
        else:
            require_not_archived(actor=actor, room=room)
            require_inviter_entitled(
                actor=actor, room=room, inviter=people.get(inviter.pk) if inviter else None,
                role=role,
            )  # fmt: skip
        with _about_the_person(permission):
            barrier_require_allowed(
                actor=actor, room=room, user_ids=[*_member_ids(room), user.pk], newcomer=user.pk
            )
        membership = _membership_write(actor=actor, room=room, user=user, role=role)
        if membership is None:  # a member already: nothing written
            existing = Membership.objects.get(room=room, user=user)
            if permission is not None and existing.role != role:
                raise AlreadyMemberError(Membership.Role(existing.role).label.lower())
            return existing, False
        if permission is None:  # joined on their own invitation
            audit_record(
                actor=actor, action=AuditAction.ROOM_INVITATION_ACCEPTED, target=room, extra={}
            )
        return membership, True


def _membership_write(
    *, actor: User, room: Room, user: User, role: str, joined: bool = False
) -> Membership | None:
    """Under the room's lock, every check made: the new membership, its permissions, its
    keys (as the history rule allows), the audit event, the change feed and the events.
    None, with nothing written, if ``user`` is a member already (the state that won)."""
    membership, created = Membership.objects.get_or_create(
        room=room, user=user, defaults={"role": role}
    )
    if not created:
        return None
    room_permissions_set(room=room, user=user, role=role)
    RoomInvitation.objects.filter(room=room, invitee=user).delete()
    granted = _member_enter(room=room, user=user, membership=membership)
    extra: dict[str, object] = {"member": user.pk, "role": role, "epochs_granted": granted}
    if joined:
        extra["joined"] = True
    audit_record(actor=actor, action=AuditAction.ROOM_MEMBER_ADDED, target=room, extra=extra)
    room_change_append(
        room_id=room.pk, kind=RoomChange.Kind.MEMBER_ADDED, user_id=user.pk, role=role
    )
    publish(Event.ROOM_GRANTED, to_user=user.pk, room_id=room.pk)
    publish(Event.MEMBER_ADDED, room_id=room.pk, user_id=user.pk)
    return membership


@action
def membership_add(
    *, actor: User, room: Room, user: User | None, role: str = Membership.Role.MEMBER
) -> tuple[Membership, bool]:
    """Add ``user`` (``manage_members``); they receive the keys the room's policy allows.
    Returns ``(membership, created)``, as Django's ``get_or_create`` does: someone who is
    a member already under ``role`` answers their membership and nothing is written (a
    retried request is harmless); under another role, ``AlreadyMemberError`` (a
    ``ValidationError``; a role changes through ``membership_role_change``).

    ``user`` is None when the edge found nobody by the id it was given: the actor's
    right is checked first, so someone without it is refused (audited) alike whether
    the id names a person or not; with it, a ValidationError (``NOT_ADDABLE``). Only
    active people are added (``accounts.selectors.people_active``), never into a direct
    conversation (its membership is fixed: refused) or an archived room (refused); only
    an owner adds an owner or a moderator (refused, ``owner role``, ``moderator role``,
    checked again under the room's lock). A compliance officer, or someone an
    information barrier separates from a member (also one added at the same instant),
    is refused and recorded as such (``read-only role``, ``barrier.refused``) but
    answered exactly as an id that names nobody (``UnreachableError`` with
    ``NOT_ADDABLE``: 400 on the API), so a room manager learns nothing of anyone's role
    or barriers. Counted against ``SAFECHAT_MEMBERSHIP_RATE_LIMIT`` (after those checks,
    as for an unknown id). Locks: the user, then the room.
    """
    require_open_membership_first(actor=actor, room=room)
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
    require_not_archived(actor=actor, room=room)
    require_open_membership(actor=actor, room=room)
    _check_role(role, actor=actor, room=room)
    user = _pickable(user)
    with unreachable_answered(NOT_ADDABLE):  # quick answers; checked again under the locks
        require_chat_writer(actor=actor, room=room, person=user)
        barrier_require_allowed(
            actor=actor, room=room, user_ids=[*_member_ids(room), user.pk], newcomer=user.pk
        )
    write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    user_key_create(user=user)  # before any lock: it appends to the audit chain
    return _membership_insert(
        actor=actor, room=room, user=user, role=role, permission=perms.MANAGE_MEMBERS
    )


@action
def membership_remove(*, actor: User, room: Room, member: User | None) -> None:
    """Remove a member: their permissions and sealed keys go, the room moves to a new epoch,
    and their live sockets stop receiving the room at once (after commit).

    Members may leave a live channel; removing someone else needs ``manage_members`` on
    the room, and an owner (``manage_room``) to remove an owner or a moderator; nobody
    removes others from a direct conversation or leaves one (its membership is fixed),
    and nobody removes anyone from an archived room (refused). A security admin (the
    right to manage users) holds one more power, to resolve an information barrier:
    removing a member whom a barrier violation in this very room names
    (``room_barrier_violations``), from any room, archived or direct included, whatever
    their room role; the event names the barriers (``barriers``). Without such a
    violation a security admin has the room rights of any member (refused otherwise,
    ``room.access.denied``). ``member`` is None when the edge found nobody by the id it
    was given: after the actor's right is checked (a refusal answers alike whether the
    id exists or not) and the write counted (``SAFECHAT_MEMBERSHIP_RATE_LIMIT``, as for
    any id), nothing happens. Refused (``last owner``) if the room would be
    left without an acting owner (``acting_owners``), also when two owners leave at the
    same instant. Locks: the actor's row (a barrier resolution: the right is read again
    under it), the room (every check, the violation included, is made again under it),
    then the membership, then key rows; the audit chain last.
    """
    leaving = member is not None and actor.pk == member.pk
    barriers = _barriers_naming(actor=actor, room=room, member=member, leaving=leaving)
    if not barriers:
        if not leaving:
            require_open_membership_first(actor=actor, room=room)
            require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
        require_not_archived(actor=actor, room=room)
        require_open_membership(actor=actor, room=room)
    if not barriers:  # resolving a barrier violation never waits
        # Counted whether or not the id names someone, as a role change is.
        write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    if member is None:
        return
    with action_transaction():
        if barriers:
            # The users step of the lock order: the resolver's right, read again.
            fresh = rows_locked(User, [actor.pk])
            if not (fresh and fresh[0].is_active and fresh[0].has_perm(MANAGE_USERS)):
                barriers = []
        _membership_delete(
            actor=actor, room=room, member=member, leaving=leaving, barriers=barriers
        )


def _barriers_naming(*, actor: User, room: Room, member: User | None, leaving: bool) -> list[int]:
    """The barriers whose violation in ``room`` names ``member``, if ``actor`` may resolve
    barriers (``accounts.manage_users``) and is not leaving; else none. None at all in a
    room where a violation names the actor too: resolving it would lift a wall from
    oneself (separation of duties; another security admin resolves it)."""
    if member is None or leaving or not actor.has_perm(MANAGE_USERS):
        return []
    pairs = room_barrier_violations(room_ids=[room.pk]).get(room.pk, [])
    if any(actor.pk in (p.user_a, p.user_b) for p in pairs):
        return []
    return sorted({p.barrier_id for p in pairs if member.pk in (p.user_a, p.user_b)})


def _membership_delete(
    *, actor: User, room: Room, member: User, leaving: bool, barriers: list[int]
) -> None:
    # Lock order: the room, then the membership, then keys, the audit chain last (a
    # post takes them in the same order, so a removal and a post never deadlock).
    locked = rows_locked(Room, [room.pk])
    if not locked:
        return
    if barriers:  # a barrier lifted, the other side removed at the same instant
        barriers = _barriers_naming(actor=actor, room=locked[0], member=member, leaving=leaving)
    if not barriers:  # a moderator demoted, a room archived at the same instant
        if not leaving:
            require_writable(
                actor=actor,
                room=locked[0],
                permission=perms.MANAGE_MEMBERS,
                operation="room.member.remove",
            )
        require_open_membership(actor=actor, room=locked[0])
        require_not_archived(actor=actor, room=locked[0])
    # FOR UPDATE: the row is deleted below.
    membership = Membership.objects.select_for_update().filter(room=room, user=member).first()
    if membership is None:
        return
    if not barriers and not leaving:
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
        extra={"member": member.pk, **({"barriers": barriers} if barriers else {})},
    )
    room_change_append(room_id=room.pk, kind=RoomChange.Kind.MEMBER_REMOVED, user_id=member.pk)
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
    in a direct conversation (its roles are fixed), and for a compliance officer any
    role but read-only. ``member`` is None when the edge found nobody by the id it was
    given: after the actor's right is checked and the write counted against
    ``SAFECHAT_MEMBERSHIP_RATE_LIMIT`` (as for any id), ``NotAMemberError``. A room keeps
    at least one acting owner (``acting_owners``; refused, ``last owner``): two owners
    demoting each other at the same instant are serialised on the room's row, and the
    second is refused. Locks: the room (every check made again under it), then
    the membership; audit last.
    """
    require_open_membership_first(actor=actor, room=room)
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
    require_not_archived(actor=actor, room=room)
    require_open_membership(actor=actor, room=room)
    _check_role(role, actor=actor, room=room)
    # Counted whether or not the id names someone: counting only for a person would tell
    # the caller which ids name people (those the directory never lists too).
    write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    if member is None:
        raise NotAMemberError()
    if actor.pk == member.pk:
        raise room_refused(
            actor=actor, room=room, reason="own role", message="nobody changes their own role"
        )
    with action_transaction():
        return _membership_role_set(actor=actor, room=room, member=member, role=role)


def _membership_role_set(*, actor: User, room: Room, member: User, role: str) -> Membership:
    # The room, then the membership: the checks below hold until the commit.
    locked = rows_locked(Room, [room.pk])
    if not locked:
        raise Http404("no such room")
    room = locked[0]
    require_writable(
        actor=actor, room=room, permission=perms.MANAGE_MEMBERS, operation="room.member.role"
    )
    require_open_membership(actor=actor, room=room)
    require_role_grantable(actor=actor, room=room, role=role)
    membership = (
        Membership.objects.select_for_update(no_key=True).filter(room=room, user=member).first()
    )
    if membership is None:
        raise NotAMemberError()
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
    room_change_append(
        room_id=room.pk, kind=RoomChange.Kind.MEMBER_ROLE_CHANGED, user_id=member.pk, role=role
    )
    publish(
        Event.MEMBER_UPDATED, room_id=room.pk, user_id=member.pk, change=MemberChange.ROLE.value
    )
    return membership


@action
def room_invitation_send(
    *, actor: User, room: Room, invitee: User, role: str = Membership.Role.MEMBER
) -> RoomInvitation:
    """Invite someone (``manage_members``); barriers are checked now and again on acceptance.

    The same people as ``membership_add``: active, not into a direct conversation or an
    archived room (each refused); a compliance officer or someone a barrier separates
    from a member is refused on the record but answered as an id that names nobody
    (``UnreachableError``, ``NOT_ADDABLE``). Only an owner invites an owner or a
    moderator (``owner role``, ``moderator role``), and the acceptance checks again that
    the inviter still may.

    Locks: the room (the permission and the archive are checked again under it), then
    the invitation; the audit chain last. The acceptance (``room_invitation_accept``)
    re-checks the barrier under the invitee's and the room's locks.
    """
    require_open_membership_first(actor=actor, room=room)
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_MEMBERS)
    require_not_archived(actor=actor, room=room)
    require_open_membership(actor=actor, room=room)
    _check_role(role, actor=actor, room=room)
    invitee = _pickable(invitee)
    with unreachable_answered(NOT_ADDABLE):
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
        require_writable(
            actor=actor, room=room, permission=perms.MANAGE_MEMBERS, operation="room.invite"
        )
        require_role_grantable(actor=actor, room=room, role=role)
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

    The invitation is the inviter's act, so it holds only while the inviter could still
    do it: an inviter deactivated, made read-only on chat, removed from the room or
    demoted below the power the invited role needs (``manage_room`` for an owner or a
    moderator, ``manage_members`` otherwise) no longer lends it (refused, ``inviter
    no longer entitled``; the invitation stays, for a current manager to send again).

    Locks: the invitee and the inviter (in id order), then the room; the audit chain
    last. The inviter's right, the barrier and the archive are checked again under them.
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
    inviter = invitation.invited_by
    require_inviter_entitled(actor=actor, room=room, inviter=inviter, role=invitation.role)
    user_key_create(user=actor)
    membership, _created = _membership_insert(
        actor=actor,
        room=room,
        user=actor,
        role=invitation.role,
        permission=None,
        inviter=inviter,
    )
    return membership


@contextmanager
def _hidden_answered() -> Iterator[None]:
    """A refusal raised inside, about a room one may not know of, is answered as an
    unknown room (``RoomHiddenError``), and recorded as what it is."""
    try:
        yield
    except Refused as refused:
        raise RoomHiddenError.instead_of(refused) from None


def _require_listed(*, actor: User, room: Room) -> None:
    """Raise ``Refused`` (``not listed``) unless ``room`` is a listed channel: a private
    room or a direct conversation is joined by invitation (or added to) only."""
    if room.kind != Room.Kind.CHANNEL or not room.is_listed:
        raise room_refused(
            actor=actor, room=room, reason="not listed", message="this room is not listed"
        )


def _require_may_join(*, actor: User, person: User, room: Room) -> None:
    """Every rule of a self-join that must not tell the person anything, each refusal
    answered as an unknown room: not read-only on chat, a listed channel, and no
    information barrier between ``person`` and any current member."""
    with _hidden_answered():
        require_chat_writer(actor=actor, room=room, person=person)
        _require_listed(actor=actor, room=room)
        barrier_require_allowed(
            actor=actor, room=room, user_ids=[*_member_ids(room), person.pk], newcomer=person.pk
        )


@action
def room_join(*, actor: User, room: Room | None) -> Membership:
    """``actor`` joins a listed room on their own, as a member; they receive the keys the
    room's history setting allows, as anyone added does (``Membership.visible_from_seq``,
    ``Room.rekey_reason``: docs/rooms.md, "History and joining").

    ``room`` is None when the edge found no room by the id it was given (``Http404``).
    A member already answers their membership, and nothing is written. Refused, and
    answered exactly as an unknown room (``rooms.errors.RoomHiddenError``, a 404) so that
    nothing leaks: a compliance officer (read-only on chat: ``read-only role``), a
    private room or a direct conversation (``not listed``), a person an information
    barrier separates from a current member (``barrier.refused``), an account
    deactivated at the same instant (``inactive``). An archived listed room is refused as
    archived (its existence is no secret to those it was listed to). Counted against
    ``SAFECHAT_MEMBERSHIP_RATE_LIMIT``.

    Locks: the person's row, then the room's (as ``membership_add`` takes them), and every
    rule is checked again under them: two people a barrier separates, joining the same
    room at the same instant, are serialised on the room's row, and the second is refused.
    """
    if room is None:
        raise Http404(NO_SUCH_ROOM)
    existing = Membership.objects.filter(room=room, user=actor).first()
    if existing is not None:
        return existing
    _require_may_join(actor=actor, person=actor, room=room)
    require_not_archived(actor=actor, room=room)
    write_rate_check(user_id=actor.pk, write=Write.MEMBERSHIP)
    user_key_create(user=actor)  # before any lock: it appends to the audit chain
    with action_transaction():
        people = rows_locked(User, [actor.pk])
        locked = rows_locked(Room, [room.pk])
        if not locked:
            raise Http404(NO_SUCH_ROOM)
        room = locked[0]
        if not people or not people[0].is_active:  # deactivated at the same instant
            with _hidden_answered():
                raise room_refused(
                    actor=actor, room=room, reason="inactive", message="account deactivated"
                )
        existing = Membership.objects.filter(room=room, user=actor).first()
        if existing is not None:  # joined at the same instant, in another tab
            return existing
        _require_may_join(actor=actor, person=people[0], room=room)
        require_not_archived(actor=actor, room=room)
        membership = _membership_write(
            actor=actor, room=room, user=actor, role=Membership.Role.MEMBER, joined=True
        )
        return membership or Membership.objects.get(room=room, user=actor)


@action
def membership_mute_set(*, actor: User, room: Room, mute: str) -> Membership:
    """Set how ``room`` notifies ``actor`` (``Membership.Mute``): ``off``; ``messages``,
    unread shown muted and nothing notifying but a mention; ``all``, mentions included.

    The member's own setting, like a read marker: any member may set it (``view_room``),
    read-only members and archived rooms included. It changes what their clients show,
    never what they may read. Recorded as ``room.member.mute_changed`` (a change of
    nothing is not recorded); every tab of the person hears ``room.muted``. Counted
    against ``SAFECHAT_ROOM_SETTINGS_RATE_LIMIT``.

    Locks: the room (the member's right is checked again under it), then the membership;
    the audit chain last.
    """
    if mute not in Membership.Mute.values:
        raise ValidationError(f"unknown mute setting {mute!r}")
    require_room_permission(actor=actor, room=room, permission=perms.VIEW)
    write_rate_check(user_id=actor.pk, write=Write.ROOM_SETTINGS)
    with action_transaction():
        locked = rows_locked(Room, [room.pk])
        if not locked:
            raise Http404(NO_SUCH_ROOM)
        room = locked[0]
        require_room_permission(actor=actor, room=room, permission=perms.VIEW)
        membership = (
            Membership.objects.select_for_update(no_key=True).filter(room=room, user=actor).first()
        )
        if membership is None:  # removed at the same instant
            raise permission_refused(actor=actor, room=room, permission=perms.VIEW)
        if membership.mute == mute:
            return membership
        previous = membership.mute
        membership.mute = mute
        membership.save(update_fields=["mute"])
        audit_record(
            actor=actor,
            action=AuditAction.ROOM_MEMBER_MUTE_CHANGED,
            target=room,
            extra={"from": previous, "to": mute},
        )
        publish(Event.ROOM_MUTED, to_user=actor.pk, room_id=room.pk, mute=mute)
        return membership
