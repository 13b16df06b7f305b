"""Request bodies refused before they are read: an ASGI wrapper in front of Django.

Django's ASGI handler reads a whole body (spooling past 2.5 MiB to a temporary file)
before any middleware or view runs, so without this an unauthenticated 200 MB POST
is read whole before its 401. This wrapper, outermost for HTTP (``safechat.asgi``):

- answers **413** at once, reading nothing, when ``Content-Length`` is over
  ``SAFECHAT_MAX_BODY_BYTES``, and **400** when ``Content-Length`` is not one
  non-negative integer (RFC 9110, section 8.6);
- reads a body sent **without** ``Content-Length`` (chunked transfer coding) itself,
  stopping with a 413 as soon as it passes the limit, and hands it to Django with its
  ``Content-Length`` set: Django and DRF treat a body without one as empty, so a chunked
  JSON body is now read, never silently dropped;
- applies to every path it serves: the resumable uploads, which stream large bodies
  under their own limits, are served by their own application in front of this one
  (``files.asgi.upload_mount``), and only on the paths that application serves. A path
  that merely looks like an upload path reaches Django, so it is limited here like any
  other (a looser rule here than there once let such a path read a 200 MB body whole).

Errors are problem details (``safechat.problems``) under ``/api/``, plain text elsewhere;
their security headers (``nosniff``, the CSP, ...) are added by the layer outside this one
(``safechat.security_headers``), as to every answer.
The limit applies to everyone alike, before authentication: nothing is read to decide.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

from safechat.problems import PROBLEM_CONTENT_TYPE, is_api_path, problem
from safechat.request_context import current_request_id, new_request_id

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Django's handler and Channels' types spell the same signature differently.
ASGIApp = Callable[..., Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Wraps an ASGI HTTP application; see the module's docstring for what it guarantees."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = int(settings.SAFECHAT_MAX_BODY_BYTES)
        lengths = [
            value for name, value in scope.get("headers", []) if name.lower() == b"content-length"
        ]
        if lengths:
            declared = _declared_length(lengths)
            if declared is None:
                await _refuse(scope, send, 400, "bad_request", "Content-Length is not valid.")
                return
            if declared > limit:
                await _refuse(scope, send, 413, "payload_too_large", _too_large(limit))
                return
            await self.app(scope, receive, send)
            return
        try:
            body, pending = await _read_bounded(receive, limit)
        except BodyTooLarge:
            await _refuse(scope, send, 413, "payload_too_large", _too_large(limit))
            return
        if pending is not None:  # the client went away while sending
            return
        headers = [(n, v) for n, v in scope.get("headers", []) if n.lower() != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app({**scope, "headers": headers}, replay, send)


def _declared_length(values: list[bytes]) -> int | None:
    """The one ``Content-Length`` (repeats must agree), or None if not valid."""
    distinct = {value.strip() for value in values}
    if len(distinct) != 1:
        return None
    (value,) = distinct
    return int(value) if value.isdigit() else None


async def _read_bounded(receive: Receive, limit: int) -> tuple[bytes, Message | None]:
    """The body, read until its end; ``BodyTooLarge`` as soon as it passes ``limit``.
    A disconnect is returned as the pending message (the body is then incomplete)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _too_large(limit: int) -> str:
    return f"The request body is over the limit of {limit} bytes."


async def _refuse(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
    """Answer without reading the body, and close the connection after the answer (the
    unread body must not be taken for the next request)."""
    request_id = new_request_id()
    path = str(scope.get("path", ""))
    logger.warning("request body refused (%s %s): %s", status, code, path[:200])
    token = current_request_id.set(request_id)
    try:
        if is_api_path(path):
            content = json.dumps(
                problem(status=status, code=code, detail=detail, instance=path)
            ).encode()
            content_type = PROBLEM_CONTENT_TYPE.encode()
        else:
            content = detail.encode()
            content_type = b"text/plain; charset=utf-8"
    finally:
        current_request_id.reset(token)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(content)).encode()),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content, "more_body": False})
