"""Request correlation: every request, log line and audit event shares one id."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from safechat.request_context import current_request_id

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy-supplied id is kept only if it is short and harmless in logs.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

__all__ = ["RequestIdMiddleware", "current_request_id", "new_request_id"]


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = supplied if _ACCEPTABLE_REQUEST_ID.match(supplied) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


INTEGRITY_FAILURE_MESSAGE = (
    "Stored key data failed its integrity check, so nothing was changed; the security "
    "team is notified. Try again later or contact them."
)


class IntegrityFailureMiddleware:
    """A portal page whose stored key data failed its integrity check answers with a page
    saying so (503), never a server error: the keyring logged and audited the failure where
    it raised it, and the request's transaction rolled back. The API answers the same
    through its exception handler (safechat/api.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from safechat.keyring.errors import IntegrityFailure

        if not isinstance(exception, IntegrityFailure):
            return None
        return render(
            request,
            "integrity_failure.html",
            {"reason": INTEGRITY_FAILURE_MESSAGE},
            status=503,
        )
