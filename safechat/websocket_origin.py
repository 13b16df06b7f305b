"""The WebSocket handshake's origin check: scheme, host and port must match exactly.

A socket from any other origin is refused before the application sees it (HTTP 403 at
the handshake: a foreign page never gets an accepted socket, RFC 6455 section 10.2),
as is a handshake without an ``Origin`` header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from safechat.origins import Origin, origin_parse

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
                await send({"type": "websocket.close", "code": 1008})  # HTTP 403 to the client
            return
        await self.app(scope, receive, send)
