"""Refusals of retention, legal holds and exports: each a ``Refused``, recorded once by the
action that raised it (``safechat.actions``), with nothing changed; and the checks and the
creation step that a hold and an export request share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple, TypeVar

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from audit.services.record import Target
from compliance.models import ExportRequest, LegalHold
from rooms.models import Room
from safechat.actions import Refused

MANAGE_RETENTION = "compliance.manage_retention"
MANAGE_LEGAL_HOLDS = "compliance.manage_legal_holds"
MATTER_MAX = 120
REASON_MAX = 2000

# A row that names a matter and the rooms and custodians it covers.
Scoped = TypeVar("Scoped", ExportRequest, LegalHold)


class ComplianceRefused(Refused):
    """Bad input or no right: a clear message, nothing changed, the attempt audited."""


class RetentionBusyError(ComplianceRefused):
    """Another retention run is working."""


class RetentionRightWithdrawnError(ComplianceRefused):
    """The person a retention run acts for may no longer run retention: the run stops
    before its next batch (what it committed stands)."""


def refused(
    *,
    actor: User | SystemActor,
    action: AuditAction,
    reason: str,
    message: str,
    target: Target = None,
    **extra: Any,
) -> ComplianceRefused:
    return ComplianceRefused(
        message, actor=actor, action=action, target=target, reason=reason, extra=extra
    )


def require_permission(*, actor: User, permission: str, action: AuditAction) -> None:
    """Refuse (audited) unless ``actor`` is active and holds ``permission``."""
    if not (actor.is_active and actor.has_perm(permission)):
        raise refused(
            actor=actor,
            action=action,
            reason="not allowed",
            message="only a compliance officer can do this",
            permission=permission,
        )


def require_text(value: object, *, actor: User, action: AuditAction, field: str, limit: int) -> str:
    """``value`` stripped; refused (audited) if empty or longer than ``limit``."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise refused(
            actor=actor,
            action=action,
            reason=f"empty {field}",
            message=f"a {field} is required",
        )
    if len(text) > limit:
        raise refused(
            actor=actor,
            action=action,
            reason=f"{field} too long",
            message=f"the {field} is longer than {limit} characters",
        )
    return text


class Scope(NamedTuple):
    """A hold's or an export request's matter and reason (stripped) and the ids of the
    rooms and custodians it names (sorted, without repeats)."""

    matter: str
    reason: str
    room_ids: list[int]
    custodian_ids: list[int]


def require_scope(
    *,
    actor: User,
    action: AuditAction,
    matter: object,
    reason: object,
    rooms: Sequence[Room],
    custodians: Sequence[User],
    nothing_reason: str,
    nothing_message: str,
) -> Scope:
    """``matter``, ``reason``, ``rooms`` and ``custodians`` checked, in that order.

    Raises ``ComplianceRefused`` (audited as ``action``) for an empty matter or reason, one
    longer than ``MATTER_MAX`` or ``REASON_MAX`` characters, or when rooms and custodians
    are both empty (``nothing_reason``, ``nothing_message``).
    """
    matter = require_text(matter, actor=actor, action=action, field="matter", limit=MATTER_MAX)
    reason = require_text(reason, actor=actor, action=action, field="reason", limit=REASON_MAX)
    room_ids = sorted({room.pk for room in rooms})
    custodian_ids = sorted({person.pk for person in custodians})
    if not room_ids and not custodian_ids:
        raise refused(
            actor=actor,
            action=action,
            reason=nothing_reason,
            message=nothing_message,
            matter=matter,
        )
    return Scope(matter, reason, room_ids, custodian_ids)


def require_ordered_range(
    *,
    actor: User,
    action: AuditAction,
    matter: str,
    starts_on: date | None,
    ends_on: date | None,
    noun: str,
) -> None:
    """Raises ``ComplianceRefused`` (audited as ``action``) when both days are given and
    ``ends_on`` is before ``starts_on``; the message names "the ``noun``'s range"."""
    if starts_on is not None and ends_on is not None and ends_on < starts_on:
        raise refused(
            actor=actor,
            action=action,
            reason="range ends before it starts",
            message=f"the {noun}'s range ends before it starts",
            matter=matter,
            starts_on=starts_on.isoformat(),
            ends_on=ends_on.isoformat(),
        )


def scoped_create(
    model: type[Scoped],
    *,
    actor: User,
    action: AuditAction,
    room_ids: list[int],
    custodian_ids: list[int],
    extra: dict[str, Any],
    **fields: Any,
) -> Scoped:
    """Create a ``model`` row from ``fields`` (its ``matter`` among them), link it to
    ``room_ids`` and ``custodian_ids``, and record ``action`` on it with its matter, rooms,
    custodians and ``extra``.

    A step of the action that calls it: runs inside the caller's transaction, after any
    lock the caller takes; the audit chain last.
    """
    row = model.objects.create(**fields)
    row.rooms.set(room_ids)
    row.custodians.set(custodian_ids)
    audit_record(
        actor=actor,
        action=action,
        target=row,
        extra={
            "matter": fields["matter"],
            "rooms": room_ids,
            "custodians": custodian_ids,
            **extra,
        },
    )
    return row
