"""The WebSocket handshake's origin check: scheme, host and port must match exactly.

A socket from any other origin is refused before the application sees it (HTTP 403 at
the handshake: a foreign page never gets an accepted socket, RFC 6455 section 10.2),
as is a handshake without an ``Origin`` header. Where the server offers the ASGI
``websocket.http.response`` extension (uvicorn does), the 403 is sent as a response of
ours, with the security headers every HTTP answer carries (``safechat.security_headers``);
otherwise the server's own 403 (``websocket.close`` before accept).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from safechat.origins import Origin, origin_parse
from safechat.security_headers import security_headers

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def handshake_origin(scope: Scope) -> Origin | None:
    """The normalised ``Origin`` of a handshake, or None if missing, repeated or malformed."""
    values = [v for k, v in scope.get("headers", []) if k == b"origin"]
    if len(values) != 1:
        return None
    try:
        return origin_parse(values[0].decode("latin-1"))
    except UnicodeDecodeError:  # latin-1 decodes every byte; kept for clarity
        return None


class ExactOriginValidator:
    """ASGI middleware: pass a WebSocket scope on only from an allowed origin."""

    def __init__(self, app: App, allowed: frozenset[Origin]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and handshake_origin(scope) not in self.allowed:
            message = await receive()
            if message["type"] == "websocket.connect":
                await _refuse(scope, send)
            return
        await self.app(scope, receive, send)


REFUSED_BODY = b"Forbidden: this origin may not open a socket here.\n"


async def _refuse(scope: Scope, send: Send) -> None:
    """Answer the handshake 403: with our security headers where the server lets us send
    the response (the ``websocket.http.response`` extension), else by closing."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})  # the server answers 403
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(REFUSED_BODY)).encode()),
                (b"cache-control", b"no-store"),
                *security_headers(scope),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": REFUSED_BODY})
