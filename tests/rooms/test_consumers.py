"""The room stream over the WebSocket: delivery, removal, resync, bad frames, flooding."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction

from accounts.models import User
from rooms.models import Membership, Message, Room
from rooms.services import membership_remove, message_post
from rooms.services.epochs import room_epoch_start, room_keys_revoke
from safechat.asgi import application
from safechat.keyring.models import RoomEpoch
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.fixtures import session_cookie_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

Connect = Callable[[User], Awaitable[WebsocketCommunicator]]
db = database_sync_to_async


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[Connect]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(user: User) -> WebsocketCommunicator:
        cookie = await db(session_cookie_for)(user, verified=True)
        communicator = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[
                (b"origin", b"http://localhost:8000"),
                (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
            ],
        )
        connected, _ = await communicator.connect()
        assert connected
        opened.append(communicator)
        return communicator

    yield open_socket
    for communicator in opened:
        # A socket the server already closed (or whose test failed) ends with the
        # application's own outcome; the clean-up must not fail the fixtures after it.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await communicator.disconnect()


async def frames_until(
    socket: WebsocketCommunicator, wanted: str, *, wait: float = 3
) -> list[dict[str, Any]]:
    """Frames received up to and including the first of type ``wanted``."""
    frames = []
    while True:
        frame = await socket.receive_json_from(timeout=wait)
        frames.append(frame)
        if frame["type"] == wanted:
            return frames


async def next_presence_of(socket: WebsocketCommunicator, user: User) -> str:
    """The state in the next presence frame about ``user``."""
    while True:
        frame = (await frames_until(socket, "presence"))[-1]
        if frame["user_id"] == user.pk:
            return str(frame["state"])


async def nothing_arrives(socket: WebsocketCommunicator) -> bool:
    return bool(await socket.receive_nothing(timeout=0.3))


async def test_members_receive_a_new_message_decrypted_and_strangers_nothing(
    connect: Connect,
) -> None:
    owner, member, stranger = await db(lambda: (make_user(), make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    member_socket, stranger_socket = await connect(member), await connect(stranger)

    await db(message_post)(sender=owner, room=room, text="Fill at 99.5")

    frames = await frames_until(member_socket, "message.new")
    assert frames[-1]["room_id"] == room.pk
    assert frames[-1]["message"]["text"] == "Fill at 99.5"
    assert frames[-1]["message"]["seq"] == 1
    assert await nothing_arrives(stranger_socket)


async def test_a_removed_member_stops_receiving_at_once(connect: Connect) -> None:
    owner, leaver = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(leaver,))
    socket = await connect(leaver)

    await db(membership_remove)(actor=owner, room=room, member=leaver)
    revoked = await frames_until(socket, "room.revoked")
    await db(message_post)(sender=owner, room=room, text="after you left")

    assert revoked[-1] == {"type": "room.revoked", "room_id": room.pk}
    assert await nothing_arrives(socket)


async def test_a_long_message_arrives_rendered(connect: Connect) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    socket = await connect(member)
    text = "**Term sheet**\n\n" + "clause " * 2000  # past the inline rendering limit

    await db(message_post)(sender=owner, room=room, text=text)
    frames = await frames_until(socket, "message.new")

    assert frames[-1]["message"]["text"] == text
    assert frames[-1]["message"]["html"].startswith("<p><strong>Term sheet</strong></p>")


async def test_the_channel_layer_carries_ciphertext_never_the_text(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    socket = await connect(member)
    layer = get_channel_layer()
    sent: list[dict[str, Any]] = []
    group_send = layer.group_send

    async def recording_group_send(group: str, message: dict[str, Any]) -> None:
        sent.append(message)
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", recording_group_send)
    marker = "MARKER-7f3a9c-layer"

    posted = await db(message_post)(sender=owner, room=room, text=f"quote {marker}")
    frames = await frames_until(socket, "message.new")

    assert frames[-1]["message"]["text"] == f"quote {marker}"
    (event,) = [m for m in sent if m.get("event") == "message.new"]
    wire = msgpack.packb(event, use_bin_type=True)  # what channels-redis puts into Redis
    assert marker.encode() not in wire
    assert event["sealed"]["ciphertext"] == bytes(posted.ciphertext)


async def test_a_socket_without_the_epoch_key_cannot_open_a_new_message(
    connect: Connect,
) -> None:
    # Given a subscribed socket whose user removal has just taken out of the room and its
    # keys (a new epoch without them), before the revocation event reaches the socket
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    socket = await connect(member)
    await frames_until(socket, "presence")  # its own arrival

    @transaction.atomic
    def remove_without_telling_the_socket() -> None:
        Membership.objects.filter(room=room, user=member).delete()
        room_keys_revoke(room=room, user=member)
        room_epoch_start(room=room, reason=RoomEpoch.Reason.MEMBER_REMOVED)

    await db(remove_without_telling_the_socket)()

    # When the owner posts under the new epoch
    await db(message_post)(sender=owner, room=room, text="not for you")

    # Then the still-subscribed socket delivers nothing
    assert await nothing_arrives(socket)


async def test_presence_get_names_who_in_the_room_is_online_or_away(connect: Connect) -> None:
    owner, member, absent = await db(lambda: (make_user(), make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member, absent))
    owner_socket = await connect(owner)
    await owner_socket.send_json_to({"type": "presence", "state": "away"})
    assert await next_presence_of(owner_socket, owner) == "online"  # its arrival
    assert await next_presence_of(owner_socket, owner) == "away"  # recorded
    member_socket = await connect(member)

    await member_socket.send_json_to({"type": "presence.get", "room_id": room.pk})
    frames = await frames_until(member_socket, "presence.snapshot")

    assert frames[-1] == {
        "type": "presence.snapshot",
        "room_id": room.pk,
        "states": {str(owner.pk): "away", str(member.pk): "online"},
    }


async def test_a_user_stays_online_while_another_tab_is_open(connect: Connect) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    await db(make_room)(owner=owner, members=(member,))
    observer = await connect(owner)
    first_tab = await connect(member)
    assert await next_presence_of(observer, member) == "online"
    second_tab = await connect(member)
    assert await next_presence_of(observer, member) == "online"

    await first_tab.disconnect()
    after_one = await next_presence_of(observer, member)
    await second_tab.disconnect()
    after_both = await next_presence_of(observer, member)

    assert (after_one, after_both) == ("online", "offline")


async def test_a_reconnecting_client_receives_what_it_missed_in_order(connect: Connect) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    seen = await db(message_post)(sender=owner, room=room, text="seen")
    for text in ("missed 1", "missed 2", "missed 3"):
        await db(message_post)(sender=owner, room=room, text=text)
    socket = await connect(member)

    await socket.send_json_to({"type": "sync", "rooms": {str(room.pk): seen.pk}})
    frames = await frames_until(socket, "sync.done")

    texts = [f["message"]["text"] for f in frames if f["type"] == "message.new"]
    assert texts == ["missed 1", "missed 2", "missed 3"]


async def test_posting_over_the_socket_acks_and_reaches_the_room(connect: Connect) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    owner_socket, member_socket = await connect(owner), await connect(member)

    await owner_socket.send_json_to(
        {"type": "message.post", "room_id": room.pk, "text": "via socket", "client_id": "c1"}
    )
    ack = await frames_until(owner_socket, "ack")
    received = await frames_until(member_socket, "message.new")

    assert ack[-1]["client_id"] == "c1"
    assert received[-1]["message"]["id"] == ack[-1]["message_id"]
    assert received[-1]["message"]["text"] == "via socket"


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(connect: Connect) -> None:
    owner, stranger = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner)
    socket = await connect(stranger)

    await socket.send_to(text_data="{not json")
    bad_json = await socket.receive_json_from()
    await socket.send_json_to({"type": "teleport"})
    unknown = await socket.receive_json_from()
    await socket.send_json_to({"type": "message.post", "room_id": room.pk, "text": "intrusion"})
    not_mine = await socket.receive_json_from()
    await socket.send_json_to({"type": "message.post", "room_id": "x", "text": 5})
    malformed = await socket.receive_json_from()
    await socket.send_json_to({"type": "ping"})
    pong = await socket.receive_json_from()

    assert bad_json["code"] == "bad_frame"
    assert unknown["code"] == "unknown_type"
    assert not_mine["code"] == "not_found"
    assert malformed["code"] == "bad_frame"
    assert pong == {"type": "pong"}
    assert not await db(Message.objects.filter(room=room).exists)()


async def test_a_frame_naming_a_member_twice_is_a_bad_frame_and_stores_nothing(
    connect: Connect,
) -> None:
    # (as the API refuses such a body: which "text" counts would be a guess)
    owner = await db(make_user)()
    room: Room = await db(make_room)(owner=owner)
    socket = await connect(owner)

    await socket.send_to(
        text_data=f'{{"type": "message.post", "room_id": {room.pk}, "text": "shown", '
        '"text": "stored", "client_id": "d1"}'
    )
    error = await frames_until(socket, "error")

    assert error[-1]["code"] == "bad_frame"
    assert not await db(Message.objects.filter(room=room).exists)()


async def test_an_oversized_message_is_refused_and_nothing_is_stored(connect: Connect) -> None:
    owner = await db(make_user)()
    room: Room = await db(make_room)(owner=owner)
    socket = await connect(owner)

    await socket.send_json_to(
        {"type": "message.post", "room_id": room.pk, "text": "x" * (16 * 1024 + 1)}
    )
    error = await frames_until(socket, "error")

    assert error[-1]["code"] == "invalid"
    assert not await db(Message.objects.filter(room=room).exists)()


async def test_a_flooding_client_is_rate_limited_then_disconnected(connect: Connect) -> None:
    user = await db(make_user)()
    socket = await connect(user)

    for _ in range(200):
        await socket.send_json_to({"type": "ping"})
    frames = []
    closed_with = None
    while True:
        output = await socket.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            closed_with = output.get("code")
            break
        frames.append(output)

    assert any('"rate_limited"' in f.get("text", "") for f in frames)
    assert closed_with == 4429
    await asyncio.sleep(0)


WS_ROLES = ["non_member", "compliance_officer", "read_only", "member", "moderator", "owner"]
# action -> (frame builder, roles that succeed, the frame type a success answers with or None)
WS_ACTIONS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], set[str], str | None]] = {
    "post": (
        lambda w: {"type": "message.post", "room_id": w["room"], "text": "hi", "client_id": "x"},
        {"member", "moderator", "owner"},
        "ack",
    ),
    "edit another's": (
        lambda w: {"type": "message.edit", "message_id": w["message"], "text": "forged"},
        set(),
        None,
    ),
    "delete another's": (
        lambda w: {"type": "message.delete", "message_id": w["message"]},
        {"moderator", "owner"},
        None,
    ),
    "read": (
        lambda w: {"type": "read", "room_id": w["room"], "message_id": w["message"]},
        {"read_only", "member", "moderator", "owner"},
        None,
    ),
    "sync": (
        lambda w: {"type": "sync", "rooms": {str(w["room"]): 0}},
        {"read_only", "member", "moderator", "owner"},
        "sync.done",
    ),
    "presence.get": (
        lambda w: {"type": "presence.get", "room_id": w["room"]},
        {"read_only", "member", "moderator", "owner"},
        "presence.snapshot",
    ),
}


def _ws_world() -> tuple[dict[str, User], dict[str, Any]]:
    from rooms.services import membership_add
    from tests.accounts.factories import grant_role

    users = {role: make_user() for role in WS_ROLES}
    grant_role(users["compliance_officer"], "compliance_officer")
    author = make_user()
    room = make_room(owner=users["owner"], members=(author,))
    for role in ("read_only", "member", "moderator"):
        membership_add(actor=users["owner"], room=room, user=users[role], role=role)
    message = message_post(sender=author, room=room, text="the author's words")
    return users, {"room": room.pk, "message": message.pk}


def _ws_state(room_id: int) -> tuple[Any, ...]:
    return (
        sorted(Message.objects.filter(room_id=room_id).values_list("id", "revision", "deleted_at")),
        sorted(
            Membership.objects.filter(room_id=room_id).values_list(
                "user_id", "last_read_message_id"
            )
        ),
    )


@pytest.mark.parametrize("role", WS_ROLES)
@pytest.mark.parametrize("action", list(WS_ACTIONS))
async def test_websocket_action_matrix(connect: Connect, action: str, role: str) -> None:
    users, world = await db(_ws_world)()
    build, allowed, answer = WS_ACTIONS[action]
    socket = await connect(users[role])
    before = await db(_ws_state)(world["room"])

    await socket.send_json_to(build(world))
    await socket.send_json_to({"type": "ping"})
    frames = await frames_until(socket, "pong")
    types = [f["type"] for f in frames]

    if role in allowed:
        assert "error" not in types, frames
        if answer:
            assert answer in types
    else:
        errors = [f for f in frames if f["type"] == "error"]
        assert errors, frames
        assert errors[0]["code"] in {"not_found", "forbidden"}
        assert await db(_ws_state)(world["room"]) == before
        assert "message.new" not in types
        assert "presence.snapshot" not in types


async def test_a_resync_naming_a_room_lost_while_offline_still_resyncs_the_others(
    connect: Connect,
) -> None:
    # given a member who left one room and missed a message in another
    owner, member = await db(lambda: (make_user(), make_user()))()
    kept = await db(make_room)(owner=owner, members=(member,))
    lost = await db(make_room)(owner=owner, members=(member,), name="Gone")
    seen = await db(message_post)(sender=owner, room=kept, text="seen")
    await db(membership_remove)(actor=owner, room=lost, member=member)
    await db(message_post)(sender=owner, room=kept, text="missed")
    socket = await connect(member)

    # when it resyncs both rooms, the lost one first
    await socket.send_json_to({"type": "sync", "rooms": {str(lost.pk): 0, str(kept.pk): seen.pk}})
    frames = await frames_until(socket, "sync.done")

    # then the lost room is not found, and the kept room's missed message still arrives
    errors = [f for f in frames if f["type"] == "error"]
    assert errors == [
        {"type": "error", "code": "not_found", "detail": "no such room", "room_id": lost.pk}
    ]
    assert [f["message"]["text"] for f in frames if f["type"] == "message.new"] == ["missed"]
