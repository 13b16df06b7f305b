"""Information barriers (ethical walls): who may never share a room with whom."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Q, QuerySet

from accounts.models import User
from accounts.roles import MANAGE_USERS, Role
from accounts.selectors import people as accounts_people
from audit.actions import AuditAction
from audit.services import audit_record
from rooms.errors import BarrierViolationError
from rooms.models import InformationBarrier, Membership, Room
from rooms.services._common import room_refused
from safechat.actions import Refused, action, action_transaction
from safechat.locks import rows_locked

GROUP_NAME_MAX_LENGTH = 150  # django.contrib.auth's Group.name


@dataclass(frozen=True)
class BarrierConflict:
    barrier_id: int
    user_a: int
    user_b: int


def barrier_conflicts(user_ids: Iterable[int]) -> list[BarrierConflict]:
    """Every pair among ``user_ids`` that some barrier separates."""
    ids = set(user_ids)
    if len(ids) < 2:
        return []
    groups_of: dict[int, set[int]] = {}
    for user_id, group_id in User.groups.through.objects.filter(user_id__in=ids).values_list(
        "user_id", "group_id"
    ):
        groups_of.setdefault(group_id, set()).add(user_id)
    conflicts = []
    for barrier in InformationBarrier.objects.filter(
        group_a_id__in=groups_of, group_b_id__in=groups_of
    ):
        for a in sorted(groups_of[barrier.group_a_id]):
            for b in sorted(groups_of[barrier.group_b_id]):
                if a != b:
                    conflicts.append(BarrierConflict(barrier.pk, a, b))
    return conflicts


def barrier_require_allowed(
    *, actor: User, room: Room | None, user_ids: Iterable[int], newcomer: int | None = None
) -> None:
    """Raise ``BarrierViolationError`` (a ``Refused``) if a barrier separates these people
    (only the pairs that include ``newcomer``, if given).

    Before the action's transaction it is a quick answer only; the write checks again
    inside it, holding the locks of the people (and the room) concerned.
    """
    conflicts = barrier_conflicts(user_ids)
    if newcomer is not None:
        # Only the pairs the newcomer would make: a violation already in the room (being
        # resolved by a security admin) does not block adding someone unrelated.
        conflicts = [c for c in conflicts if newcomer in (c.user_a, c.user_b)]
    if conflicts:
        raise BarrierViolationError(
            "an information barrier forbids this",
            actor=actor,
            action=AuditAction.BARRIER_REFUSED,
            target=room,
            reason="information-barrier",
            extra={"barrier": conflicts[0].barrier_id},
        )


def _group_members(group_id: int) -> QuerySet[Any]:
    return User.groups.through.objects.filter(group_id=group_id).values("user_id")


def _rooms_where_groups_meet(
    group_a_id: int, group_b_id: int, *, room_ids: list[int] | None = None
) -> set[int]:
    """The rooms with a member of each group (only ``room_ids`` if given): read through
    the two groups' members, never by scanning every room."""
    side_a, side_b = _group_members(group_a_id), _group_members(group_b_id)
    meeting = Membership.objects.filter(user_id__in=side_a).filter(
        room_id__in=Membership.objects.filter(user_id__in=side_b).values("room_id")
    )
    if room_ids is not None:
        meeting = meeting.filter(room_id__in=room_ids)
    return set(meeting.values_list("room_id", flat=True))


def _barrier_violations(
    barrier: InformationBarrier, *, room_ids: Iterable[int] | None = None
) -> dict[int, list[BarrierConflict]]:
    """The rooms where members of the barrier's two groups meet (``_rooms_where_groups_meet``),
    with the pairs that do."""
    rooms = _rooms_where_groups_meet(
        barrier.group_a_id,
        barrier.group_b_id,
        room_ids=None if room_ids is None else list(room_ids),
    )
    side_a, side_b = _group_members(barrier.group_a_id), _group_members(barrier.group_b_id)
    if not rooms:
        return {}
    in_a: dict[int, set[int]] = {}
    in_b: dict[int, set[int]] = {}
    for room_id, user_id in Membership.objects.filter(
        room_id__in=rooms, user_id__in=side_a
    ).values_list("room_id", "user_id"):
        in_a.setdefault(room_id, set()).add(user_id)
    for room_id, user_id in Membership.objects.filter(
        room_id__in=rooms, user_id__in=side_b
    ).values_list("room_id", "user_id"):
        in_b.setdefault(room_id, set()).add(user_id)
    violations: dict[int, list[BarrierConflict]] = {}
    for room_id in sorted(rooms):
        pairs = [
            BarrierConflict(barrier.pk, a, b)
            for a in sorted(in_a.get(room_id, ()))
            for b in sorted(in_b.get(room_id, ()))
            if a != b
        ]
        if pairs:
            violations[room_id] = pairs
    return violations


def room_barrier_violations(
    *,
    barriers: Iterable[InformationBarrier] | None = None,
    room_ids: Iterable[int] | None = None,
) -> dict[int, list[BarrierConflict]]:
    """Rooms whose current members violate a barrier (every one, or ``barriers``), with
    the offending pairs; only ``room_ids`` if given."""
    rooms = None if room_ids is None else list(room_ids)
    violations: dict[int, list[BarrierConflict]] = {}
    for barrier in InformationBarrier.objects.all() if barriers is None else barriers:
        for room_id, pairs in _barrier_violations(barrier, room_ids=rooms).items():
            violations.setdefault(room_id, []).extend(pairs)
    return violations


def user_barrier_violations(*, user: User) -> dict[int, list[BarrierConflict]]:
    """The rooms ``user`` is in that violate a barrier involving one of their groups."""
    groups = list(user.groups.values_list("pk", flat=True))
    barriers = InformationBarrier.objects.filter(
        Q(group_a_id__in=groups) | Q(group_b_id__in=groups)
    )
    rooms = Membership.objects.filter(user=user).values_list("room_id", flat=True)
    violations = room_barrier_violations(barriers=barriers, room_ids=rooms)
    return {
        room_id: kept
        for room_id, pairs in violations.items()
        if (kept := [p for p in pairs if user.pk in (p.user_a, p.user_b)])
    }


def user_groups_lock(*, actor: User, user: User, group_ids: Iterable[int]) -> None:
    """Inside the transaction that changes ``user``'s groups: take its locks in the
    project's order (the groups, the actor and the user, then every room the user is
    in), so no membership or barrier change of theirs can interleave with the re-check
    after it; the actor's right is checked again under its lock (``barrier_admin_locked``).
    """
    rows_locked(Group, group_ids)
    barrier_admin_locked(actor=actor, user_ids=[user.pk])
    user_rooms_lock(user=user)


def user_rooms_lock(*, user: User) -> None:
    """Lock every room ``user`` is in (the lock order's rooms step), after the groups and
    the user's row that the caller locked."""
    rows_locked(Room, Membership.objects.filter(user=user).values_list("room_id", flat=True))


def people_rooms_lock(*, users: Iterable[User]) -> None:
    """Lock every room any of ``users`` is in, in ascending id order (the lock order's
    rooms step), after the groups and the users' rows that the caller locked."""
    rows_locked(
        Room,
        Membership.objects.filter(user_id__in=[u.pk for u in users]).values_list(
            "room_id", flat=True
        ),
    )


@action
def user_groups_change(
    *,
    actor: User,
    user: User,
    add: Iterable[Group] = (),
    remove: Iterable[Group] = (),
) -> dict[int, list[BarrierConflict]]:
    """Put ``user`` into and out of groups (security admins); returns the rooms they are
    in that now violate a barrier, as ``barrier_create`` does: resolve them by removing
    members. Each change is audited, with the number of rooms in violation. A role's
    group is refused (``role group``): roles change through ``role_grant`` alone.

    Locks: the groups, then the user, then every room the user is in
    (``user_groups_lock``); the audit chain last.
    """
    _require_barrier_admin(actor)
    added, removed = list(add), list(remove)
    _require_group_change_allowed(
        actor=actor, people=[user], groups=[*added, *removed], operation="user.groups.change"
    )
    with action_transaction():
        user_groups_lock(actor=actor, user=user, group_ids=[g.pk for g in [*added, *removed]])
        current = set(user.groups.values_list("pk", flat=True))
        added = [g for g in added if g.pk not in current]
        removed = [g for g in removed if g.pk in current]
        _require_not_lifting_own_wall(
            actor=actor, groups=[g.pk for g in removed], operation="user.groups.change"
        )
        user.groups.add(*added)
        user.groups.remove(*removed)
        violations = user_barrier_violations(user=user)
        for action, groups in (
            (AuditAction.ACCOUNT_ROLE_GRANTED, added),
            (AuditAction.ACCOUNT_ROLE_REVOKED, removed),
        ):
            for group in groups:
                audit_record(
                    actor=actor,
                    action=action,
                    target=user,
                    extra={"group": group.name, "rooms_in_violation": len(violations)},
                )
    return violations


@action
def group_members_set(
    *,
    actor: User,
    group: Group,
    add: Iterable[User] = (),
    remove: Iterable[User] = (),
) -> dict[int, list[BarrierConflict]]:
    """Put people into ``group`` and take others out of it, in one transaction (security
    admins); returns the rooms of the people added that now violate a barrier, as
    ``barrier_create`` does. A role's group is refused (``role group``): roles change
    through ``role_grant`` alone.

    Locks, all at the top in the project's order: the group, then every person
    concerned in id order, then every room they are in; then every change is made,
    and the audit events (one per person changed) are appended last. So a page that
    changes many people at once never locks anything after its first audit append.
    """
    _require_barrier_admin(actor)
    add, remove = list(add), list(remove)
    _require_group_change_allowed(
        actor=actor, people=[*add, *remove], groups=[group], operation="group.members.set"
    )
    adding = {person.pk for person in add}
    removing = {person.pk for person in remove} - adding
    with action_transaction():
        rows_locked(Group, [group.pk])
        people = barrier_admin_locked(actor=actor, user_ids=adding | removing)
        rows_locked(
            Room,
            Membership.objects.filter(user_id__in=[p.pk for p in people]).values_list(
                "room_id", flat=True
            ),
        )
        current = set(
            group.user_set.filter(pk__in=[p.pk for p in people]).values_list("pk", flat=True)
        )
        added = [p for p in people if p.pk in adding and p.pk not in current]
        removed = [p for p in people if p.pk in removing and p.pk in current]
        if removed:
            _require_not_lifting_own_wall(
                actor=actor, groups=[group.pk], operation="group.members.set"
            )
        group.user_set.add(*added)
        group.user_set.remove(*removed)
        found: dict[int, dict[int, None]] = {}  # per person: their rooms in violation
        violations: dict[int, list[BarrierConflict]] = {}
        for person in added:
            for room_id, pairs in user_barrier_violations(user=person).items():
                found.setdefault(person.pk, {})[room_id] = None
                known = violations.setdefault(room_id, [])
                known.extend(pair for pair in pairs if pair not in known)
        for action, changed in (
            (AuditAction.ACCOUNT_ROLE_GRANTED, added),
            (AuditAction.ACCOUNT_ROLE_REVOKED, removed),
        ):
            for person in changed:
                audit_record(
                    actor=actor,
                    action=action,
                    target=person,
                    extra={
                        "group": group.name,
                        "rooms_in_violation": len(found.get(person.pk, {})),
                    },
                )
    return violations


def _require_group_change_allowed(
    *, actor: User, people: Iterable[User], groups: Iterable[Group], operation: str
) -> None:
    """Refuse (``Refused``, audited ``account.role.refused``, nothing changed) a change
    of groups for anyone who is not a person (django-guardian's internal anonymous user
    row, by the one selector of people), that touches a role, or the actor's own groups.

    Roles are groups that carry permissions: they are granted and revoked through the
    role services (``accounts.services.role_grant``) only. And nobody changes their own
    groups (separation of duties): leaving a group would lift a barrier from oneself.
    """
    people = list(people)
    ids = {person.pk for person in people}
    roles = sorted(g.name for g in groups if g.name in {role.value for role in Role})
    reason = None
    if accounts_people().filter(pk__in=ids).count() != len(ids):
        reason, message = "not a person", "There is no such person."
    elif roles:
        reason, message = "role", "Roles are granted and revoked on the person's page."
    elif any(person.pk == actor.pk for person in people):
        reason = "self"
        message = "Nobody changes their own groups; ask another security administrator."
    if reason is not None:
        raise Refused(
            message,
            actor=actor,
            action=AuditAction.ACCOUNT_ROLE_REFUSED,
            target=actor if reason == "self" else None,
            reason=reason,
            extra={
                "operation": operation,
                "groups": sorted(g.name for g in groups),
                "people": sorted(p.pk for p in people),
            },
        )


@action
def group_create(*, actor: User, name: str) -> Group:
    """Create a group (of people that barriers separate), empty: security admins only.

    Roles are groups too, but made by migrations and kept by ``accounts.roles``; a new
    group's name must be free. Audited ``group.created``. Raises ``Refused`` (audited)
    without ``accounts.manage_users``; ``ValidationError`` for an empty or taken name
    (a group created under the same name at the same instant wins).
    """
    _require_barrier_admin(actor)
    name = name.strip()
    if not name or len(name) > GROUP_NAME_MAX_LENGTH:
        raise ValidationError("A group needs a name of at most 150 characters.")
    try:
        with action_transaction():
            barrier_admin_locked(actor=actor, user_ids=[])
            group = Group.objects.create(name=name)
            audit_record(
                actor=actor, action=AuditAction.GROUP_CREATED, target=group, extra={"name": name}
            )
    except IntegrityError:
        raise ValidationError("A group with this name exists already.") from None
    return group


def lifts_own_wall(*, actor: User, groups: Iterable[int]) -> bool:
    """Whether taking someone out of one of ``groups`` would lift a barrier from
    ``actor``: a barrier sets that group against one of the actor's own."""
    mine = set(actor.groups.values_list("pk", flat=True))
    touched = set(groups)
    if not mine or not touched:
        return False
    return InformationBarrier.objects.filter(
        Q(group_a_id__in=touched, group_b_id__in=mine)
        | Q(group_b_id__in=touched, group_a_id__in=mine)
    ).exists()


def _require_not_lifting_own_wall(*, actor: User, groups: Iterable[int], operation: str) -> None:
    """Refuse (``Refused``, ``room.access_denied`` with reason ``own barrier``) a change
    that would lift an information barrier from ``actor`` themselves: lifting a barrier
    one of whose groups they are in, or taking someone out of a group (``groups``) that a
    barrier sets against one of theirs. Separation of duties, as for one's own groups
    (``_require_group_change_allowed``): another security admin does it. Made under the
    locks of the change (the groups, then the actor's row), so the actor's groups and the
    barriers read here are the ones the change meets.
    """
    if lifts_own_wall(actor=actor, groups=groups):
        raise room_refused(
            actor=actor,
            room=None,
            reason="own barrier",
            message=(
                "This would lift an information barrier from you; ask another security "
                "administrator."
            ),
            operation=operation,
        )


def barrier_admin_locked(*, actor: User, user_ids: Iterable[int]) -> list[User]:
    """The lock order's users step for a barrier or group change: lock ``actor`` with the
    people ``user_ids`` (ascending ids) and check again, on the actor's row as it is now,
    that they may manage barriers (active, ``accounts.manage_users``): an administrator
    deactivated or demoted while their request ran changes nothing (``Refused``).

    Returns the rows of ``user_ids`` (the actor's own only if it is among them).
    """
    wanted = set(user_ids)
    rows = rows_locked(User, {actor.pk, *wanted})
    fresh = next((row for row in rows if row.pk == actor.pk), actor)
    _require_barrier_admin(fresh)
    return [row for row in rows if row.pk in wanted]


def _require_barrier_admin(actor: User) -> None:
    if not actor.has_perm(MANAGE_USERS):
        raise room_refused(
            actor=actor,
            room=None,
            reason="barrier management",
            message="only security admins manage information barriers",
        )


@action
def barrier_create(
    *, actor: User, group_a: Group, group_b: Group, reason: str = ""
) -> tuple[InformationBarrier, dict[int, list[BarrierConflict]]]:
    """Create a barrier between two groups of people (never a role's group: refused,
    ``role group``); returns it with the existing rooms that now violate it.

    Locks the two groups, then their members, so a person added to a room or to
    one of the groups at the same instant is either refused or in the report; then
    the rooms where members of the two groups meet, so a post, an edit, a reaction or
    an upload there by someone the barrier separates (``require_unseparated``, checked
    under the room's lock) either commits before the barrier or sees it and is refused.
    """
    _require_barrier_admin(actor)
    if group_a.pk == group_b.pk:
        raise ValidationError("a barrier separates two different groups")
    roles = {role.value for role in Role}
    if group_a.name in roles or group_b.name in roles:
        # A role is a power, not a side of a wall: a barrier naming one would make every
        # grant or revocation of it (and the security admins' own role) a change of walls.
        raise room_refused(
            actor=actor,
            room=None,
            reason="role group",
            message="A barrier separates groups of people, never a role.",
            groups=sorted(g.name for g in (group_a, group_b)),
        )
    low, high = sorted([group_a, group_b], key=lambda g: g.pk)
    try:
        with action_transaction():
            rows_locked(Group, [low.pk, high.pk])
            members = User.groups.through.objects.filter(group_id__in=[low.pk, high.pk])
            barrier_admin_locked(actor=actor, user_ids=members.values_list("user_id", flat=True))
            # The groups and their members are held: the rooms they meet in cannot change.
            rows_locked(Room, _rooms_where_groups_meet(low.pk, high.pk))
            barrier = InformationBarrier.objects.create(
                group_a=low, group_b=high, reason=reason[:200], created_by=actor
            )
            audit_record(
                actor=actor,
                action=AuditAction.BARRIER_CREATED,
                target=barrier,
                extra={"group_a": low.pk, "group_b": high.pk},
            )
    except IntegrityError:
        raise ValidationError("this barrier already exists") from None
    return barrier, room_barrier_violations(barriers=[barrier])


@action
def barrier_delete(*, actor: User, barrier: InformationBarrier) -> None:
    """Lift a barrier (security admins), never one whose groups include the actor
    (refused, ``own barrier``: separation of duties). Locks: its two groups, then the
    actor's row; the audit chain last."""
    _require_barrier_admin(actor)
    with action_transaction():
        rows_locked(Group, [barrier.group_a_id, barrier.group_b_id])
        barrier_admin_locked(actor=actor, user_ids=[])
        if not InformationBarrier.objects.filter(pk=barrier.pk).exists():
            return  # lifted at the same instant by someone else
        if actor.groups.filter(pk__in=[barrier.group_a_id, barrier.group_b_id]).exists():
            raise room_refused(
                actor=actor,
                room=None,
                reason="own barrier",
                message=(
                    "This barrier separates you from others; ask another security "
                    "administrator to lift it."
                ),
                operation="barrier.delete",
            )
        audit_record(
            actor=actor,
            action=AuditAction.BARRIER_DELETED,
            target=barrier,
            extra={"group_a": barrier.group_a_id, "group_b": barrier.group_b_id},
        )
        barrier.delete()
