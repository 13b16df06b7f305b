"""Over the WebSocket, a repeated ``message.post`` with one ``client_id`` is stored once."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from audit.models import AuditEvent
from rooms.models import Message
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.sockets import open_verified_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
db = database_sync_to_async


async def _acks(socket: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    acks: list[dict[str, Any]] = []
    while len(acks) < count:
        frame = await socket.receive_json_from(timeout=5)
        if frame["type"] in ("ack", "error"):
            acks.append(frame)
    return acks


async def test_the_same_post_frame_sent_twice_is_acked_twice_with_one_message() -> None:
    # given a member's open socket
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    socket = await open_verified_socket(owner)

    # when the portal sends one post twice ("Send again" after a lost connection)
    frame = {"type": "message.post", "room_id": room.pk, "text": "buy", "client_id": "c7-x"}
    await socket.send_json_to(frame)
    await socket.send_json_to(frame)
    acks = await _acks(socket, 2)
    await socket.disconnect()

    # then both are acknowledged with the one message that was stored and audited
    ids = Message.objects.filter(room=room).values_list("pk", flat=True)
    stored = await db(lambda: list(ids))()
    posted = await db(AuditEvent.objects.filter(action="message.posted").count)()
    assert [a["type"] for a in acks] == ["ack", "ack"]
    assert [a["message_id"] for a in acks] == stored * 2
    assert posted == 1


async def test_one_client_id_with_another_text_is_an_invalid_frame_and_stores_nothing() -> None:
    # given a member's open socket and a post already made with a client id
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    socket = await open_verified_socket(owner)
    await socket.send_json_to(
        {"type": "message.post", "room_id": room.pk, "text": "buy", "client_id": "c8-y"}
    )

    # when a frame reuses that client id for another text
    await socket.send_json_to(
        {"type": "message.post", "room_id": room.pk, "text": "sell", "client_id": "c8-y"}
    )
    acks = await _acks(socket, 2)
    await socket.disconnect()

    # then the second is refused as invalid, and only the first was stored and audited
    stored = await db(Message.objects.filter(room=room).count)()
    posted = await db(AuditEvent.objects.filter(action="message.posted").count)()
    assert [a["type"] for a in acks] == ["ack", "error"]
    assert acks[1]["code"] == "invalid"
    assert "different message" in acks[1]["detail"]
    assert (stored, posted) == (1, 1)


async def test_an_empty_client_id_is_an_invalid_frame_and_stores_nothing() -> None:
    # given a member's open socket
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    socket = await open_verified_socket(owner)

    # when a post carries an empty client id (the API's empty Idempotency-Key rule)
    await socket.send_json_to(
        {"type": "message.post", "room_id": room.pk, "text": "buy", "client_id": ""}
    )
    acks = await _acks(socket, 1)
    await socket.disconnect()

    # then it is refused as invalid, and nothing was stored or audited
    stored = await db(Message.objects.filter(room=room).count)()
    posted = await db(AuditEvent.objects.filter(action="message.posted").count)()
    assert [a["type"] for a in acks] == ["error"]
    assert acks[0]["code"] == "invalid"
    assert "idempotency key" in acks[0]["detail"]
    assert (stored, posted) == (0, 0)


async def test_an_invisible_only_text_over_the_socket_is_refused_as_on_the_api() -> None:
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    socket = await open_verified_socket(owner)

    await socket.send_json_to(
        {"type": "message.post", "room_id": room.pk, "text": "\u200b\ufeff", "client_id": "c-z"}
    )
    acks = await _acks(socket, 1)
    await socket.disconnect()

    stored = await db(Message.objects.filter(room=room).count)()
    assert [(a["type"], a["code"]) for a in acks] == [("error", "invalid")]
    assert "empty" in acks[0]["detail"]
    assert stored == 0
