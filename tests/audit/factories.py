"""Audit test helpers: events, officers and verified admin/API clients."""

from __future__ import annotations

from typing import Any

from django.db import connection

from accounts.models import User
from accounts.roles import Role
from audit import triggers
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.services import audit_record
from tests.accounts.factories import grant_role, make_user


def make_event(**fields: Any) -> AuditEvent:
    """An event recorded through the one service; defaults to a system login failure."""
    fields.setdefault("actor", SystemActor("tests"))
    fields.setdefault("action", AuditAction.AUTH_LOGIN_FAILED)
    return audit_record(**fields)


def make_events(count: int, **fields: Any) -> list[AuditEvent]:
    return [make_event(extra={"n": number}, **fields) for number in range(count)]


def make_officer(**fields: Any) -> User:
    """A user in the compliance_officer role (which grants audit.view_auditevent)."""
    officer = grant_role(make_user(**fields), Role.COMPLIANCE_OFFICER)
    return User.objects.get(pk=officer.pk)  # fresh: permission caches are per instance


def log_state() -> tuple[int, int, str]:
    """(event count, head seq, head hash): equal before and after = nothing written."""
    head = AuditChainHead.objects.filter(pk=1).first()
    return (
        AuditEvent.objects.count(),
        head.last_seq if head else 0,
        head.last_hash if head else "",
    )


def actions_since(state: tuple[int, int, str]) -> list[str]:
    """The actions appended since ``log_state()`` returned ``state``, in order."""
    return list(
        AuditEvent.objects.filter(seq__gt=state[1]).order_by("seq").values_list("action", flat=True)
    )


def checkpoint_count() -> int:
    return AuditCheckpoint.objects.count()


def tamper(sql: str, params: list[Any] | None = None) -> None:
    """Run ``sql`` with the triggers off, as an insider with owner rights would."""
    with triggers.suspended(connection), connection.cursor() as cursor:
        cursor.execute(sql, params)
