"""Retention policies: the organisation's default and per-room overrides."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from compliance import locks
from compliance.models import RetentionPolicy
from compliance.services._common import MANAGE_RETENTION, refused, require_permission
from rooms.models import Room
from safechat.actions import action, action_transaction

# The longest finite policy: a hundred years. Longer is "forever" (``keep_days`` None);
# a number of days a date cannot count back from today is refused, never stored.
KEEP_DAYS_MAX = 36500


@action
def retention_policy_set(
    *, actor: User, room: Room | None, keep_days: int | None
) -> RetentionPolicy:
    """Set how many days content is kept: the organisation default (``room`` None) or a
    room's override; ``keep_days`` None keeps it forever.

    Refused (audited, nothing changed) for anyone without ``compliance.manage_retention``,
    and for a number of days that is not a whole number from
    ``SAFECHAT_RETENTION_MINIMUM_DAYS`` to ``KEEP_DAYS_MAX`` (36500, a hundred years).
    Locks: the legal-hold ledger (exclusive: a purge batch in progress finishes first,
    and every later batch reads the new policy); the audit chain last.
    """
    action_name = AuditAction.RETENTION_POLICY_REFUSED
    require_permission(actor=actor, permission=MANAGE_RETENTION, action=action_name)
    minimum = settings.SAFECHAT_RETENTION_MINIMUM_DAYS
    if keep_days is not None and (
        isinstance(keep_days, bool)
        or not isinstance(keep_days, int)
        or not minimum <= keep_days <= KEEP_DAYS_MAX
    ):
        below = not isinstance(keep_days, int) or keep_days < minimum
        raise refused(
            actor=actor,
            action=action_name,
            target=room,
            reason="below the organisation minimum" if below else "above the longest finite policy",
            message=(
                f"a policy keeps content at least {minimum} days (the organisation minimum) "
                f"and at most {KEEP_DAYS_MAX} days, or forever"
            ),
            keep_days=keep_days if isinstance(keep_days, int) else None,
            minimum=minimum,
        )
    with action_transaction():
        locks.ledger_lock_exclusive()
        policy = RetentionPolicy.objects.filter(room=room).first()
        created = policy is None
        before = None if policy is None else policy.keep_days
        if policy is None:
            policy = RetentionPolicy(room=room)
        policy.keep_days = keep_days
        policy.updated_by = actor
        policy.updated_at = timezone.now()
        policy.save()
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_POLICY_SET,
            target=policy,
            extra={
                "scope": "organisation" if room is None else "room",
                "room": None if room is None else room.pk,
                "keep_days": keep_days,
                "before": before,
                "created": created,
            },
        )
    return policy
