"""Reading what a WebSocket consumer sent, for tests (``WebsocketCommunicator``)."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator


async def closed_with(
    communicator: WebsocketCommunicator, *, wait: float = 5
) -> tuple[int, list[dict[str, Any]]]:
    """The close code the server sent, and the frames it sent before closing."""
    frames: list[dict[str, Any]] = []
    while True:
        message = await communicator.receive_output(timeout=wait)
        if message["type"] == "websocket.close":
            return int(message["code"]), frames
        assert message["type"] == "websocket.send", message
        frames.append(json.loads(message["text"]))


async def handshake_outcome(
    communicator: WebsocketCommunicator, *, wait: float = 5
) -> tuple[str, object]:
    """How a handshake ended: ``("refused", code)`` before accepting (HTTP 403),
    ``("closed", code)`` accepted and then closed, or ``("open", <reply to a ping>)``."""
    connected, detail = await communicator.connect(timeout=wait)
    if not connected:
        return "refused", detail
    await communicator.send_json_to({"type": "ping"})
    message = await communicator.receive_output(timeout=wait)
    if message["type"] == "websocket.close":
        return "closed", int(message["code"])
    return "open", json.loads(message["text"])


async def open_verified_socket(user: object, *, origin: bytes = b"http://localhost:8000") -> Any:
    """A connected ``WebsocketCommunicator`` on ``/ws/`` for a fresh verified session of
    ``user``, from the portal's origin."""
    from channels.db import database_sync_to_async
    from django.conf import settings

    from safechat.asgi import application
    from tests.support.fixtures import session_cookie_for

    cookie = await database_sync_to_async(session_cookie_for)(user, verified=True)
    socket = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[
            (b"origin", origin),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    connected, _ = await socket.connect()
    assert connected
    return socket
