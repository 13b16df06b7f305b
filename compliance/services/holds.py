"""Legal holds: placed and released by compliance officers, never deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from compliance import locks
from compliance.models import LegalHold
from compliance.services._common import (
    MANAGE_LEGAL_HOLDS,
    REASON_MAX,
    refused,
    require_ordered_range,
    require_permission,
    require_scope,
    require_text,
    scoped_create,
)
from rooms.models import Room
from safechat.actions import action, action_transaction


@action
def legal_hold_place(
    *,
    actor: User,
    matter: str,
    reason: str,
    rooms: Sequence[Room] = (),
    custodians: Sequence[User] = (),
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> LegalHold:
    """Place a hold on ``rooms`` and/or ``custodians`` (their messages and files in every
    room, and their direct conversations, even one they were removed from), optionally
    only on what was written from ``starts_on`` to ``ends_on`` (inclusive UTC days). From
    its commit on, nothing it covers is purged or shredded.

    Refused (audited, nothing changed) without ``compliance.manage_legal_holds``, with an
    empty matter or reason, with neither rooms nor custodians, or with a range that ends
    before it starts. Locks: the legal-hold ledger (exclusive: a purge batch or shred in
    progress finishes first, and the next one sees the hold); the audit chain last.
    """
    refusal = AuditAction.LEGAL_HOLD_REFUSED
    require_permission(actor=actor, permission=MANAGE_LEGAL_HOLDS, action=refusal)
    matter, reason, room_ids, custodian_ids = require_scope(
        actor=actor,
        action=refusal,
        matter=matter,
        reason=reason,
        rooms=rooms,
        custodians=custodians,
        nothing_reason="nothing held",
        nothing_message="a hold names at least one room or custodian",
    )
    require_ordered_range(
        actor=actor,
        action=refusal,
        matter=matter,
        starts_on=starts_on,
        ends_on=ends_on,
        noun="hold",
    )
    with action_transaction():
        locks.ledger_lock_exclusive()
        hold = scoped_create(
            LegalHold,
            actor=actor,
            action=AuditAction.LEGAL_HOLD_PLACED,
            room_ids=room_ids,
            custodian_ids=custodian_ids,
            extra={
                "starts_on": starts_on.isoformat() if starts_on else None,
                "ends_on": ends_on.isoformat() if ends_on else None,
            },
            matter=matter,
            reason=reason,
            starts_on=starts_on,
            ends_on=ends_on,
            placed_by=actor,
            placed_at=timezone.now(),
        )
    return hold


@action
def legal_hold_release(*, actor: User, hold: LegalHold, reason: str) -> LegalHold:
    """Release an active hold, recording who, when and why; what it covered becomes
    subject to its retention policy again (the next run purges what has expired).

    Refused (audited, nothing changed) without ``compliance.manage_legal_holds``, with an
    empty reason, or for a hold already released (by someone else at the same instant
    too: decided under the hold's row lock). Locks: the legal-hold ledger (exclusive),
    then the hold's row (``FOR NO KEY UPDATE``: it is changed in place, never deleted);
    the audit chain last.
    """
    refusal = AuditAction.LEGAL_HOLD_REFUSED
    require_permission(actor=actor, permission=MANAGE_LEGAL_HOLDS, action=refusal)
    reason = require_text(
        reason, actor=actor, action=refusal, field="release reason", limit=REASON_MAX
    )
    with action_transaction():
        locks.ledger_lock_exclusive()
        locked = LegalHold.objects.select_for_update(no_key=True).get(pk=hold.pk)
        if locked.released_at is not None:
            raise refused(
                actor=actor,
                action=refusal,
                target=locked,
                reason="already released",
                message="this hold was already released",
                matter=locked.matter,
            )
        locked.released_at = timezone.now()
        locked.released_by = actor
        locked.release_reason = reason
        locked.save(update_fields=["released_at", "released_by", "release_reason"])
        audit_record(
            actor=actor,
            action=AuditAction.LEGAL_HOLD_RELEASED,
            target=locked,
            extra={"matter": locked.matter},
        )
    hold.released_at, hold.released_by, hold.release_reason = (
        locked.released_at,
        actor,
        reason,
    )
    return locked
