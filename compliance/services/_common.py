"""Refusals of retention and legal holds: each a ``Refused``, recorded once by the action
that raised it (``safechat.actions``), with nothing changed."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services.record import Target
from safechat.actions import Refused

MANAGE_RETENTION = "compliance.manage_retention"
MANAGE_LEGAL_HOLDS = "compliance.manage_legal_holds"


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
