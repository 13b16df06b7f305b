"""The record of a refusal made at an edge rather than in a service."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services.record import Actor, audit_record


def access_refusal_record(*, actor: Actor, request: HttpRequest) -> None:
    """Record ``access.refused`` for a request answered 403 whose refusal nothing else
    recorded: a DRF permission class (a token's scope), a page's or the Django admin's
    permission check, a CSRF failure.

    ``extra`` names the route pattern and view (``request.resolver_match``: never the
    path itself, which may carry a one-time secret) and the method. Its own transaction;
    the channel, IP, request id and token come from the acting context.
    """
    match = getattr(request, "resolver_match", None)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.ACCESS_REFUSED,
            extra={
                "route": str(match.route)[:200] if match is not None else "",
                "view": str(match.view_name)[:200] if match is not None else "",
                "method": request.method or "",
            },
        )
