"""Request correlation: every request, log line and audit event shares one id."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.middleware import common
from django.shortcuts import render

from safechat.error_pages import method_not_allowed
from safechat.problems import is_api_path, problem_response
from safechat.ratelimit import Rate, RateState, rate_exceeded, rate_hit, rate_states_observed
from safechat.request_context import (
    ActingContext,
    acting,
    clean_user_agent,
    client_ip,
    current_request_id,
    http_channel,
    new_request_id,
)

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy-supplied id is kept only if it is short and harmless in logs.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# Where the ASGI wrapper leaves the id it chose, for RequestIdMiddleware to serve under.
SCOPE_REQUEST_ID = "safechat.request_id"

__all__ = [
    "RequestIdMiddleware",
    "current_request_id",
    "http_channel",
    "new_request_id",
    "request_id_asgi",
    "request_id_from",
]


def request_id_from(supplied: str) -> str:
    """The request id to serve under: the one in ``X-Request-ID`` only when the deployment
    says a trusted proxy sets that header on every request (``SAFECHAT_TRUST_REQUEST_ID_HEADER``,
    deploy/nginx overwrites whatever the client sent) and it is well-formed; otherwise a new
    one, so a client can never choose the id its actions are audited under."""
    trusted = bool(getattr(settings, "SAFECHAT_TRUST_REQUEST_ID_HEADER", False))
    if trusted and _ACCEPTABLE_REQUEST_ID.match(supplied):
        return supplied
    return new_request_id()


AsgiScope = MutableMapping[str, Any]
AsgiApp = Callable[..., Awaitable[None]]


def request_id_asgi(app: AsgiApp) -> AsgiApp:
    """Wrap an ASGI app so that each HTTP request's id is chosen once, before anything of
    it runs, and is current for all of it (``current_request_id``): Django's middleware
    serves under the same id (``SCOPE_REQUEST_ID`` in the scope), and the server's access
    line, written while the response is sent, carries it too. The id is chosen as
    :func:`request_id_from` says. Other scopes (the socket's) pass through: the consumer
    gives every frame an id of its own."""

    async def wrapped(scope: AsgiScope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        supplied = ""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"x-request-id":
                supplied = value.decode("latin-1")
        request_id = request_id_from(supplied)
        token = current_request_id.set(request_id)
        try:
            await app({**scope, SCOPE_REQUEST_ID: request_id}, receive, send)
        finally:
            current_request_id.reset(token)

    return wrapped


class RequestIdMiddleware:
    """Serves each request under its acting context (``safechat.request_context``): the
    channel by path, the client's IP and user agent, and the request id (returned in
    ``X-Request-ID``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        scope = getattr(request, "scope", None)  # an ASGI request: the wrapper chose it
        chosen = scope.get(SCOPE_REQUEST_ID) if isinstance(scope, dict) else None
        request_id = chosen or request_id_from(request.headers.get(REQUEST_ID_HEADER, ""))
        request.request_id = request_id  # type: ignore[attr-defined]
        context = ActingContext(
            channel=http_channel(request.path_info),
            ip=client_ip(request.META.get("REMOTE_ADDR")),
            user_agent=clean_user_agent(str(request.META.get("HTTP_USER_AGENT", ""))),
            request_id=request_id,
        )
        with acting(context):
            response = self.get_response(request)
            if response.status_code == 403 and not context.refusals_recorded:
                _refusal_record(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _refusal_record(request: HttpRequest) -> None:
    """A signed-in person's 403 that no service recorded (a DRF permission class, a page's
    or the admin's check, CSRF) goes on the record as ``access.refused``. Anonymous 403s
    are not: they name nobody, and token failures are recorded where they are checked."""
    from audit.services import access_refusal_record

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return
    # One person's refusals cannot flood the audit chain: past the limit the window's
    # first extra one is recorded as throttled, the rest are not recorded.
    rate = Rate.of(settings.SAFECHAT_ACCESS_REFUSAL_AUDIT_LIMIT)
    if rate_exceeded(rate, "access-refusals", str(user.pk)) is not None:
        return
    rate_hit(rate, "access-refusals", str(user.pk))
    throttled = rate_exceeded(rate, "access-refusals", str(user.pk)) is not None
    access_refusal_record(actor=user, request=request, throttled=throttled)


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


class MethodNotAllowedMiddleware:
    """A path that does not take the request's method, answered by Django's method
    decorators (``require_POST``, ``require_GET``...: an empty ``HttpResponseNotAllowed``),
    gets the portal's own 405 page (``safechat.error_pages.method_not_allowed``), and
    under ``/api/`` problem details (``method_not_allowed``), as the API's own views
    answer; both keep the decorator's ``Allow`` header (RFC 9110, 15.5.6). Listed after
    the session, authentication and message middleware, so the page has its navigation.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = [m.strip() for m in str(response.get("Allow", "")).split(",") if m.strip()]
        if is_api_path(request.path_info):
            return problem_response(
                status=405,
                code="method_not_allowed",
                detail=f'Method "{request.method}" not allowed.',
                request=request,
                headers={"Allow": ", ".join(allowed)},
            )
        return method_not_allowed(request, allowed=allowed)


def _rate_limit_fields(states: list[RateState]) -> tuple[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers):
    each policy's quota ``q`` in a window of ``w`` seconds, and its remaining ``r`` with
    ``t`` seconds until the oldest counted request leaves the window."""
    policies = ", ".join(f'"{s.policy}";q={s.limit};w={s.seconds}' for s in states)
    current = ", ".join(f'"{s.policy}";r={s.remaining};t={s.reset}' for s in states)
    return policies, current


class ApiResponseMiddleware:
    """Every API response: never stored by a cache (``Cache-Control: no-store``: a
    browser's cache is a disk, and the API answers decrypted messages), and the state of
    each rate limit the request counted against, as ``RateLimit`` headers from the
    limiter itself."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path_info):
            return self.get_response(request)
        with rate_states_observed() as states:
            response = self.get_response(request)
        response["Cache-Control"] = "no-store"
        if states:
            policies, current = _rate_limit_fields(list(states.values()))
            response["RateLimit-Policy"] = policies
            response["RateLimit"] = current
        return response


class ContentCodingMiddleware:
    """An API request whose body is in a content coding (``Content-Encoding: gzip``, or
    any but ``identity``) is refused before anything parses it: 415
    ``unsupported_content_encoding`` with ``Accept-Encoding: identity``, as RFC 9110
    (sections 15.5.16 and 12.5.3) asks, so a client can tell it from an unsupported media
    type. Unrefused, the coded bytes would reach the JSON parser as a malformed body, or
    a form's as fields. Listed after the middleware that add the security headers, so
    the refusal carries them as every answer does.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        coding = str(request.META.get("HTTP_CONTENT_ENCODING", ""))
        codings = {c.strip().lower() for c in coding.split(",")} - {"", "identity"}
        if codings and is_api_path(request.path_info):
            return problem_response(
                status=415,
                code="unsupported_content_encoding",
                detail=f'Content-Encoding "{coding[:64]}" is not supported: send the body '
                "as it is (identity).",
                request=request,
                headers={"Accept-Encoding": "identity"},
            )
        return self.get_response(request)


def query_string_is_utf8(query_string: str) -> bool:
    """Whether every parameter name and value of ``query_string`` (as ``QUERY_STRING``
    holds it) is UTF-8 once percent-decoded (``+`` a space, as in a form)."""
    for part in query_string.replace("+", " ").replace(";", "&").split("&"):
        for piece in part.split("=", 1):
            try:
                unquote_to_bytes(piece).decode("utf-8")
            except UnicodeDecodeError:
                return False
    return True


class QueryStringMiddleware:
    """An API request whose query string is not UTF-8 once percent-decoded (``?q=%FFann``)
    is refused, as such a body is: 400 ``malformed_utf8``, never read with replacement
    characters (Django's default) as another text than was sent. The one check of every
    API query string, before any view reads one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query_string = str(request.META.get("QUERY_STRING", ""))
        if (
            query_string
            and is_api_path(request.path_info)
            and not query_string_is_utf8(query_string)
        ):
            return problem_response(
                status=400,
                code="malformed_utf8",
                detail="The query string is not valid UTF-8 once percent-decoded.",
                request=request,
            )
        return self.get_response(request)


class CommonMiddleware(common.CommonMiddleware):
    """Django's ``CommonMiddleware``, except that an API path missing its trailing slash
    is never redirected: a 301 turns a POST into a GET on the next hop and answers with
    HTML. It is answered 404 as problem details naming the path meant
    (``safechat.api.api_error_handler``); the portal keeps ``APPEND_SLASH``.
    """

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        if is_api_path(request.path):
            return False
        return bool(super().should_redirect_with_slash(request))
