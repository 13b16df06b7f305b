"""Helpers shared by the account services: refusals that are audited, client details."""

from __future__ import annotations

from typing import Any, NoReturn

from axes.helpers import get_client_ip_address
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import HttpRequest

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record


class InvalidLink(Exception):
    """An invitation, bootstrap or reset link that is unknown, used or expired.

    One exception and one message for every case, so the answer reveals nothing.
    """


def refuse(
    *,
    actor: User | None,
    action: AuditAction,
    target: models.Model | None = None,
    extra: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    message: str = "You are not allowed to do that.",
) -> NoReturn:
    """Record the refusal in its own transaction (it must survive), then raise PermissionDenied."""
    with transaction.atomic():
        audit_record(actor=actor, action=action, target=target, extra=extra, request=request)
    raise PermissionDenied(message)


def ensure_permission(
    *,
    actor: User,
    permission: str,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    target: models.Model | None = None,
    operation: str,
    request: HttpRequest | None = None,
) -> None:
    """Raise (audited) unless ``actor`` is active and holds ``permission``."""
    if not (actor.is_active and actor.has_perm(permission)):
        refuse(
            actor=actor,
            action=action,
            target=target,
            extra={"operation": operation, "reason": "permission"},
            request=request,
        )


def ensure_not_self(
    *,
    actor: User,
    user: User,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    operation: str,
    request: HttpRequest | None = None,
) -> None:
    """Nobody administers their own account: another administrator must."""
    if actor.pk == user.pk:
        refuse(
            actor=actor,
            action=action,
            target=user,
            extra={"operation": operation, "reason": "self"},
            request=request,
            message="You cannot do that to your own account; ask another administrator.",
        )


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    ip = get_client_ip_address(request)
    return str(ip) if ip else None


def client_user_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("HTTP_USER_AGENT", ""))[:255]
