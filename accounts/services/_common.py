"""Helpers shared by the account services: refusals (``safechat.actions.Refused``,
recorded by the ``@action`` entry point that raised them), client details."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_ip_address
from django.db import models
from django.http import HttpRequest

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import Refused, action_transaction

INVALID_LINK = "This link is not valid: it is unknown, already used or expired."


class InvalidLink(Refused):
    """An invitation, bootstrap or reset link that is unknown, used or expired.

    One exception and one message for every case, so the answer reveals nothing; the
    reason is recorded as ``action`` (the refusal of that kind of link).
    """

    def __init__(
        self, *, action: AuditAction, reason: str, request: HttpRequest | None = None
    ) -> None:
        super().__init__(INVALID_LINK, actor=None, action=action, reason=reason, request=request)


def ensure_permission(
    *,
    actor: User,
    permission: str,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    target: models.Model | None = None,
    operation: str,
    extra: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> None:
    """Raise ``Refused`` unless ``actor`` is active and holds ``permission``."""
    if not (actor.is_active and actor.has_perm(permission)):
        raise Refused(
            actor=actor,
            action=action,
            target=target,
            reason="permission",
            extra={"operation": operation, **(extra or {})},
            request=request,
        )


def actor_and_people_locked(
    *,
    actor: User,
    users: Iterable[User],
    permission: str,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    target: models.Model | None = None,
    operation: str,
    extra: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> dict[int, User]:
    """Lock the rows of ``actor`` and ``users`` (ascending id, ``FOR NO KEY UPDATE``: the
    users step of the lock order, docs/architecture.md) and check again, under those
    locks, that ``actor`` is active and holds ``permission``.

    Inside the caller's transaction. Returns the locked rows, fresh from the database,
    by id. The check before the transaction answers early; this one decides: two
    administrators acting on each other at the same instant are serialised on their
    rows, and the second one's right is read after the first one's change committed
    (a deactivated or demoted administrator acts no more). Raises ``Refused``
    (``permission``, audited ``action`` after the rollback).
    """
    from safechat.locks import rows_locked

    rows = {row.pk: row for row in rows_locked(User, [actor.pk, *(u.pk for u in users)])}
    fresh = rows.get(actor.pk)
    ensure_permission(
        actor=fresh if fresh is not None else actor,
        permission=permission,
        action=action,
        target=target,
        operation=operation,
        extra=extra,
        request=request,
    )
    return rows


def _refused_about(
    user: User,
    *,
    actor: User,
    action: AuditAction,
    operation: str,
    request: HttpRequest | None,
    reason: str,
    message: str,
) -> Refused:
    """The refusal of an administrative ``operation`` on ``user``: one shape for the
    ``ensure_*`` checks below (audited ``action`` after the rollback)."""
    return Refused(
        message,
        actor=actor,
        action=action,
        target=user,
        reason=reason,
        extra={"operation": operation},
        request=request,
    )


def security_admins_locked() -> None:
    """Lock the security admins' role group (``FOR NO KEY UPDATE``: the groups step of
    the lock order, docs/architecture.md), creating it if a fresh database has none yet.

    Whatever may leave the bank with fewer active security admins (a deactivation, a
    revocation of the role) takes it first, so ``ensure_not_last_security_admin`` counts
    the others with no such change in flight: check and write are one step.
    """
    from django.contrib.auth.models import Group

    from accounts.roles import Role
    from safechat.locks import rows_locked

    group, _ = Group.objects.get_or_create(name=Role.SECURITY_ADMIN.value)
    rows_locked(Group, [group.pk])


def ensure_not_last_security_admin(
    *,
    actor: User,
    user: User,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    operation: str,
    request: HttpRequest | None = None,
) -> None:
    """Raise ``Refused`` (``last security admin``) if ``user`` is the only active
    security admin, whom a deactivation or the revocation of the role would leave the
    bank without anyone to administer people (nothing could repair it).

    Call it under ``security_admins_locked()`` (taken at the top of the transaction):
    the count is then exact until the caller's write commits.
    """
    from accounts.roles import Role

    admins = User.objects.filter(is_active=True, groups__name=Role.SECURITY_ADMIN.value)
    if not admins.filter(pk=user.pk).exists() or admins.exclude(pk=user.pk).exists():
        return
    raise _refused_about(
        user, actor=actor, action=action, operation=operation, request=request,
        reason="last security admin",
        message="This is the last active security administrator: appoint another one first.",
    )  # fmt: skip


def ensure_not_self(
    *,
    actor: User,
    user: User,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    operation: str,
    request: HttpRequest | None = None,
) -> None:
    """Nobody administers their own account: another administrator must (``Refused``)."""
    if actor.pk == user.pk:
        raise _refused_about(
            user, actor=actor, action=action, operation=operation, request=request,
            reason="self",
            message="You cannot do that to your own account; ask another administrator.",
        )  # fmt: skip


def ensure_person(
    *,
    actor: User,
    user: User,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    operation: str,
    request: HttpRequest | None = None,
) -> None:
    """Raise ``Refused`` unless ``user`` is a person's account (active or not).

    django-guardian's internal anonymous user row is no one: nobody grants it a role,
    resets, deactivates or reactivates it, or ends its sessions. The one selector of
    people (``accounts.selectors.person_get``) decides.
    """
    from accounts.selectors import person_get

    if person_get(user_id=user.pk) is None:
        raise _refused_about(
            user, actor=actor, action=action, operation=operation, request=request,
            reason="not a person", message="There is no such person.",
        )  # fmt: skip


def failure_count(*, request: HttpRequest, user: User, step: str, sender: object) -> bool:
    """Count one failed credential of ``user`` (a wrong second-factor code, a wrong current
    password) with django-axes, per username and IP as at sign-in; returns whether the
    account is now locked out.

    The failure that locks it out is recorded ``auth.lockout`` (``username``, ``step``),
    in its own transaction: call it from an action with no transaction open, after the
    failure itself was recorded. A caller refuses an account already locked out before
    checking anything, so this records each lockout once.
    """
    AxesProxyHandler.user_login_failed(
        sender=sender, credentials={"username": user.username}, request=request
    )
    if not getattr(request, "axes_locked_out", False):
        return False
    with action_transaction():
        audit_record(
            actor=None,
            action=AuditAction.AUTH_LOCKOUT,
            target=user,
            extra={"username": user.username, "step": step},
            request=request,
        )
    return True


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    ip = get_client_ip_address(request)
    return str(ip) if ip else None


def client_user_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("HTTP_USER_AGENT", ""))[:255]
