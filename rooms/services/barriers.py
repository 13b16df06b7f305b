"""Information barriers (ethical walls): who may never share a room with whom."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.roles import MANAGE_USERS
from audit.actions import AuditAction
from audit.services import audit_record
from rooms.errors import BarrierViolationError
from rooms.models import InformationBarrier, Membership, Room
from rooms.services._common import refuse


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


def barrier_ensure_allowed(*, actor: User, room: Room | None, user_ids: Iterable[int]) -> None:
    """Refuse (audited) if these people may not share a room."""
    conflicts = barrier_conflicts(user_ids)
    if conflicts:
        first = conflicts[0]
        raise refuse(
            actor=actor,
            room=room,
            reason="information-barrier",
            error=BarrierViolationError("an information barrier forbids this"),
            barrier=first.barrier_id,
        )


def room_barrier_violations() -> dict[int, list[BarrierConflict]]:
    """Rooms whose current members violate a barrier, with the offending pairs."""
    violations: dict[int, list[BarrierConflict]] = {}
    members: dict[int, set[int]] = {}
    for room_id, user_id in Membership.objects.values_list("room_id", "user_id"):
        members.setdefault(room_id, set()).add(user_id)
    for room_id, user_ids in members.items():
        conflicts = barrier_conflicts(user_ids)
        if conflicts:
            violations[room_id] = conflicts
    return violations


def _require_barrier_admin(actor: User) -> None:
    if not actor.has_perm(MANAGE_USERS):
        raise refuse(
            actor=actor,
            room=None,
            reason="barrier management",
            error=PermissionDenied("only security admins manage information barriers"),
        )


def barrier_create(
    *, actor: User, group_a: Group, group_b: Group, reason: str = ""
) -> tuple[InformationBarrier, dict[int, list[BarrierConflict]]]:
    """Create a barrier; returns it with the existing rooms that now violate it."""
    _require_barrier_admin(actor)
    if group_a.pk == group_b.pk:
        raise ValidationError("a barrier separates two different groups")
    low, high = sorted([group_a, group_b], key=lambda g: g.pk)
    try:
        with transaction.atomic():
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
    violations = {
        room_id: [c for c in conflicts if c.barrier_id == barrier.pk]
        for room_id, conflicts in room_barrier_violations().items()
    }
    return barrier, {room_id: c for room_id, c in violations.items() if c}


def barrier_delete(*, actor: User, barrier: InformationBarrier) -> None:
    """Lift a barrier (security admins)."""
    _require_barrier_admin(actor)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.BARRIER_DELETED,
            target=barrier,
            extra={"group_a": barrier.group_a_id, "group_b": barrier.group_b_id},
        )
        barrier.delete()
