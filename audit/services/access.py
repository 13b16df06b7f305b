"""The record of a refusal made at an edge rather than in a service."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services.record import Actor, audit_record

# The methods recorded by name; anything else a client sends is "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def access_refusal_record(*, actor: Actor, request: HttpRequest, throttled: bool = False) -> None:
    """Record ``access.refused`` for a request answered 403 whose refusal nothing else
    recorded: a DRF permission class (a token's scope), a page's or the Django admin's
    permission check, a CSRF failure.

    ``extra`` names the route pattern and view (``request.resolver_match``: never the
    path itself, which may carry a one-time secret) and the method (one of HTTP's, else
    ``other``). ``throttled``: this person's later refusals in the edge's window are
    not recorded (``SAFECHAT_ACCESS_REFUSAL_AUDIT_LIMIT``). Its own transaction; the
    channel, IP, request id and token come from the acting context.
    """
    method = (request.method or "").upper()
    match = getattr(request, "resolver_match", None)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.ACCESS_REFUSED,
            extra={
                "route": str(match.route)[:200] if match is not None else "",
                "view": str(match.view_name)[:200] if match is not None else "",
                "method": method if method in _METHODS else "other",
                **({"throttled": True} if throttled else {}),
            },
        )
