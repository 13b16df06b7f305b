"""API-wide behaviour: errors as JSON, never a stack trace to the client."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus Django's ValidationError as a 400 (a reused idempotency key
    as a 422), a participant who cannot be reached (``rooms.errors.UnreachableError``,
    a recorded refusal) as the same 400, and a generic 500."""
    from rooms.errors import IdempotencyKeyReusedError, RateLimitedError, UnreachableError
    from safechat.keyring.errors import IntegrityFailure

    if isinstance(exc, IntegrityFailure):
        # Stored data failed its check: not the client's fault, and not to be retried
        # blindly; the keyring reported it (logged, audited once), the client is told.
        return Response(
            {
                "code": "integrity_failure",
                "detail": "Stored data failed its integrity check; the security team is "
                "notified. Nothing was changed.",
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, IdempotencyKeyReusedError):
        # The request is well-formed but conflicts with what the key stands for.
        return Response(
            {"code": "idempotency_key_reused", "detail": exc.messages[0]},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    if isinstance(exc, RateLimitedError):
        exc = exceptions.Throttled(wait=exc.retry_after, detail=str(exc))
    elif isinstance(exc, ValidationError):
        exc = exceptions.ValidationError(detail=exc.messages)
    elif isinstance(exc, UnreachableError):
        # Recorded as the refusal it is, answered as an id that names nobody (400).
        exc = exceptions.ValidationError(detail=[exc.message])
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(detail=str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error")
        return Response(
            {"detail": "Internal error. Quote the request id to support."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return response
