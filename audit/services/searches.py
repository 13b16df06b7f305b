"""Officers' searches of the audit log are themselves audited."""

from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services.record import Actor, audit_record

MAX_RECORDED_FILTERS = 16
MAX_RECORDED_VALUE = 100


def audit_search_record(
    *,
    actor: Actor,
    query: str,
    filters: Iterable[tuple[str, str]],
    model: str,
    request: HttpRequest | None = None,
) -> None:
    """Record a search and its filters (bounded in size); nothing when there is neither."""
    # Pairs, not a dict: a parameter named like a secret must not break the page.
    kept = [[name[:64], value[:MAX_RECORDED_VALUE]] for name, value in filters]
    if not query and not kept:
        return
    audit_record(
        actor=actor,
        action=AuditAction.AUDIT_SEARCHED,
        request=request,
        extra={"q": query[:200], "filters": kept[:MAX_RECORDED_FILTERS], "model": model},
    )
