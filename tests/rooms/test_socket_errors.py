"""Error frames name the frame they answer, and a client going away is not an error.

* Every ``error`` frame answering a frame that carried a ``client_id`` carries it back
  (the portal marks that very post refused instead of leaving it pending); a
  ``rate_limited`` one also says ``retry_after``, in whole seconds.
* A client that disconnects while the server sends to it is logged at INFO without a
  traceback; a fault of ours is still an ERROR with its traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from pytest_django import Settings
from uvicorn.protocols.utils import ClientDisconnected

from audit.models import AuditEvent
from rooms.models import Message, Room
from rooms.services import message_post
from rooms.socket import protocol
from safechat.asgi import application
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.fixtures import session_cookie_for
from tests.support.sockets import closed_with, open_verified_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
db = database_sync_to_async


async def _next(socket: WebsocketCommunicator, *types: str, wait: float = 5) -> dict[str, Any]:
    """The next frame of one of ``types`` (presence and the like are skipped)."""
    while True:
        frame: dict[str, Any] = await socket.receive_json_from(timeout=wait)
        if frame["type"] in types:
            return frame


async def _frames_for(socket: WebsocketCommunicator, seconds: float) -> list[dict[str, Any]]:
    """Every frame that arrives within ``seconds``."""
    frames = []
    while not await socket.receive_nothing(timeout=seconds):
        frames.append(dict(await socket.receive_json_from()))
    return frames


async def _stored(room: Room) -> list[int]:
    ids: list[int] = await db(
        lambda: list(Message.objects.filter(room=room).values_list("pk", flat=True))
    )()
    return ids


async def test_a_post_refused_by_the_rate_limit_names_its_client_id_and_when_to_retry(
    settings: Settings,
) -> None:
    # given a member allowed one post a second, who has just posted, and another member
    settings.SAFECHAT_POST_RATE_LIMIT = (1, 1)
    owner, reader = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(reader,))
    socket = await open_verified_socket(owner)
    other = await open_verified_socket(reader)
    first = {"type": "message.post", "room_id": room.pk, "text": "first", "client_id": "c1-a"}
    await socket.send_json_to(first)
    assert (await _next(socket, "ack", "error"))["type"] == "ack"
    assert (await _next(other, "message.new"))["message"]["text"] == "first"
    posted_before = await db(AuditEvent.objects.filter(action="message.posted").count)()

    # when they post again at once
    second = {"type": "message.post", "room_id": room.pk, "text": "second", "client_id": "c2-b"}
    await socket.send_json_to(second)
    refused = await _next(socket, "ack", "error")

    # then the refusal names that post and when to try again, and nothing is stored or sent
    assert refused["type"] == "error"
    assert refused["code"] == "rate_limited"
    assert refused["client_id"] == "c2-b"
    assert refused["retry_after"] == 1
    assert len(await _stored(room)) == 1
    posted = await db(AuditEvent.objects.filter(action="message.posted").count)()
    assert posted == posted_before
    assert "message.new" not in [f["type"] for f in await _frames_for(other, 0.3)]

    # and the same post sent again after the wait is stored, once
    await asyncio.sleep(refused["retry_after"] + 0.1)
    await socket.send_json_to(second)
    ack = await _next(socket, "ack", "error")
    assert ack["type"] == "ack"
    assert ack["client_id"] == "c2-b"
    assert len(await _stored(room)) == 2
    await socket.disconnect()
    await other.disconnect()


async def test_a_flooded_post_is_refused_with_its_client_id_and_retry_after() -> None:
    # given a member whose socket has used up its frames for the window
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    socket = await open_verified_socket(owner)
    for _ in range(protocol.FRAMES_PER_WINDOW):
        await socket.send_json_to({"type": "ping"})

    # when they post
    await socket.send_json_to(
        {"type": "message.post", "room_id": room.pk, "text": "too fast", "client_id": "c9-f"}
    )
    refused = await _next(socket, "error", "ack")

    # then the refusal names the post and how long the window needs
    assert refused["code"] == "rate_limited"
    assert refused["client_id"] == "c9-f"
    assert 1 <= refused["retry_after"] <= protocol.FRAME_WINDOW_SECONDS
    assert await _stored(room) == []
    await socket.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "no.such.frame", "client_id": "c3-u"}, "unknown_type"),
        ({"type": 7, "client_id": "c3-u"}, "bad_frame"),
        ({"type": "message.post", "room_id": "ROOM", "text": "", "client_id": "c3-u"}, "invalid"),
        ({"type": "message.post", "room_id": "ROOM", "text": 5, "client_id": "c3-u"}, "bad_frame"),
        ({"type": "message.post", "room_id": 0, "text": "hi", "client_id": "c3-u"}, "not_found"),
    ],
    ids=["unknown-type", "type-not-a-string", "empty-text", "text-not-a-string", "no-room"],
)
async def test_every_error_answering_a_frame_with_a_client_id_carries_it(
    frame: dict[str, Any], code: str
) -> None:
    # given a member's open socket
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    socket = await open_verified_socket(owner)

    # when they send a frame the server refuses
    if frame.get("room_id") == "ROOM":
        frame = {**frame, "room_id": room.pk}
    await socket.send_json_to(frame)
    refused = await _next(socket, "error", "ack")

    # then the error carries the frame's client_id, and nothing was stored
    assert refused["code"] == code
    assert refused["client_id"] == "c3-u"
    assert "retry_after" not in refused
    assert await _stored(room) == []
    await socket.disconnect()


# --- a client going away --------------------------------------------------------------------
class GoneClient:
    """An ASGI server's side of one socket whose client disconnects: from ``gone_at`` on
    (``websocket.accept``, or ``websocket.send``: the first frame), sending raises
    uvicorn's ``ClientDisconnected``, as uvicorn does on a closed connection (ASGI: an
    ``OSError`` subclass)."""

    def __init__(self, cookie: str, gone_at: str = "websocket.send") -> None:
        self.gone_at = gone_at
        self.scope = {
            "type": "websocket",
            "path": "/ws/",
            "raw_path": b"/ws/",
            "query_string": b"",
            "root_path": "",
            "scheme": "ws",
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "subprotocols": [],
            "headers": [
                (b"origin", b"http://localhost:8000"),
                (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
            ],
        }
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.accepted = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "websocket.accept":
            self.accepted.set()
        if message["type"] == self.gone_at or self.gone_at == "websocket.accept":
            raise ClientDisconnected()


async def test_a_client_gone_while_the_server_sends_is_logged_at_info_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a socket whose client disconnects right after the handshake
    owner = await db(make_user)()
    await db(make_room)(owner=owner)
    cookie = await db(session_cookie_for)(owner, verified=True)
    server = GoneClient(cookie)
    caplog.set_level(logging.INFO)
    run = asyncio.create_task(application(server.scope, server.receive, server.send))
    await server.incoming.put({"type": "websocket.connect"})
    await asyncio.wait_for(server.accepted.wait(), 5)

    # when the server answers a frame and the client is no longer there
    await server.incoming.put({"type": "websocket.receive", "text": json.dumps({"type": "ping"})})
    await asyncio.wait_for(run, 5)

    # then the socket ended quietly: one INFO line, no traceback, nothing at ERROR
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in gone] == [(logging.INFO, None)]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [m["type"] for m in server.sent] == ["websocket.accept", "websocket.send"]


async def test_a_client_gone_during_the_handshake_is_not_a_layer_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a client that disconnects as the server accepts its socket
    owner = await db(make_user)()
    cookie = await db(session_cookie_for)(owner, verified=True)
    server = GoneClient(cookie, gone_at="websocket.accept")
    caplog.set_level(logging.INFO)

    # when the handshake runs
    run = asyncio.create_task(application(server.scope, server.receive, server.send))
    await server.incoming.put({"type": "websocket.connect"})
    await asyncio.wait_for(run, 5)

    # then the socket ended quietly, not as "the channel layer is unavailable"
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in gone] == [(logging.INFO, None)]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_fault_of_ours_outside_a_frame_is_still_an_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a member's open socket, and a bug in delivering new messages
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    socket = await open_verified_socket(member)
    await socket.send_json_to({"type": "ping"})
    await _next(socket, "pong")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in delivery")

    monkeypatch.setattr("rooms.socket.fanout.message_new_for", broken)

    # when a message is delivered to it
    await db(message_post)(sender=owner, room=room, text="triggers the bug")
    code, _ = await closed_with(socket)

    # then it is closed with 1011 and the fault is logged at ERROR with its traceback
    assert code == 1011
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert failed[0].exc_info[0] is RuntimeError
    assert not [r for r in caplog.records if "went away" in r.getMessage()]
