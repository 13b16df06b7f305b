"""The socket's ephemeral signals follow the room's write rights, and the loop's socket
watch records each session end with that socket's own context."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as conf
from django.utils import timezone
from pytest_django import Settings

from accounts.models import User, UserSession
from accounts.roles import Role
from accounts.services import role_grant
from audit.models import AuditEvent
from rooms.models import Room
from rooms.services import membership_role_change, room_archive
from safechat.asgi import application
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room
from tests.rooms.test_consumers import Connect, connect, frames_until  # noqa: F401
from tests.support.fixtures import session_cookie_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
db = database_sync_to_async


async def typing_frames(socket: WebsocketCommunicator) -> list[dict[str, Any]]:
    got = []
    while not await socket.receive_nothing(timeout=0.5):
        frame = await socket.receive_json_from()
        if frame["type"] == "typing":
            got.append(frame)
    return got


async def test_a_compliance_officer_in_a_room_does_not_show_as_typing(
    connect: Connect,  # noqa: F811
) -> None:
    # given a room whose member was made a compliance officer (read-only on chat)
    def given() -> tuple[User, User, Room]:
        owner, carol = make_user(), make_user()
        room = make_room(owner=owner, members=(carol,))
        role_grant(
            actor=grant_role(make_user(), Role.SECURITY_ADMIN),
            user=carol,
            role=Role.COMPLIANCE_OFFICER,
        )
        return owner, carol, room

    owner, carol, room = await db(given)()
    owner_socket, carol_socket = await connect(owner), await connect(carol)

    # when the compliance officer's socket says they are typing
    await carol_socket.send_json_to({"type": "typing", "room_id": room.pk})

    # then they are answered "forbidden", and the owner hears nothing of it
    (error,) = [f for f in await frames_until(carol_socket, "error") if f["type"] == "error"]
    assert error["code"] == "forbidden"
    assert await typing_frames(owner_socket) == []


async def test_a_read_only_member_does_not_show_as_typing(connect: Connect) -> None:  # noqa: F811
    def given() -> tuple[User, User, Room]:
        owner, reader = make_user(), make_user()
        room = make_room(owner=owner, members=(reader,))
        membership_role_change(actor=owner, room=room, member=reader, role="read_only")
        return owner, reader, room

    # given a read-only member
    owner, reader, room = await db(given)()
    owner_socket, reader_socket = await connect(owner), await connect(reader)

    # when their socket says they are typing
    await reader_socket.send_json_to({"type": "typing", "room_id": room.pk})

    # then nobody hears of it
    assert await typing_frames(owner_socket) == []


async def test_nobody_types_in_an_archived_room(connect: Connect) -> None:  # noqa: F811
    def given() -> tuple[User, User, Room]:
        owner, member = make_user(), make_user()
        room = make_room(owner=owner, members=(member,))
        room_archive(actor=owner, room=room)
        return owner, member, room

    # given an archived room
    owner, member, room = await db(given)()
    owner_socket, member_socket = await connect(owner), await connect(member)

    # when a member's socket says they are typing
    await member_socket.send_json_to({"type": "typing", "room_id": room.pk})

    # then nobody hears of it
    assert await typing_frames(owner_socket) == []


async def test_a_member_who_may_post_still_shows_as_typing(connect: Connect) -> None:  # noqa: F811
    # given a live room
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    owner_socket, member_socket = await connect(owner), await connect(member)

    # when the member types
    await member_socket.send_json_to({"type": "typing", "room_id": room.pk})

    # then the owner hears it
    assert [f["user_id"] for f in await typing_frames(owner_socket)] == [member.pk]


async def test_a_session_ended_by_the_socket_watch_is_recorded_with_its_own_sockets_context(
    settings: Settings,
) -> None:
    # given two people's sockets on one server process, Alice's opened first (her socket
    # starts the process's socket watch), each with its own user agent
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.2
    alice, bob = await db(lambda: (make_user(), make_user()))()

    async def open_socket(user: User, agent: bytes) -> WebsocketCommunicator:
        cookie = await db(session_cookie_for)(user, verified=True)
        socket = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[
                (b"origin", b"http://localhost:8000"),
                (b"user-agent", agent),
                (b"cookie", f"{conf.SESSION_COOKIE_NAME}={cookie}".encode()),
            ],
        )
        connected, _ = await socket.connect()
        assert connected
        return socket

    alice_socket = await open_socket(alice, b"alice-laptop")
    bob_socket = await open_socket(bob, b"bob-phone")
    try:
        # when Bob's session goes idle and the watch ends it
        await db(
            lambda: UserSession.objects.filter(user=bob).update(
                last_seen_at=timezone.now() - dt.timedelta(hours=3)
            )
        )()
        while (await bob_socket.receive_output(timeout=5))["type"] != "websocket.close":
            pass

        # then the session end is on the record with Bob's socket's context, not Alice's
        events = await db(
            lambda: list(
                AuditEvent.objects.filter(action="session.ended").values(
                    "channel", "user_agent", "request_id"
                )
            )
        )()
        assert [(e["channel"], e["user_agent"]) for e in events] == [("websocket", "bob-phone")]
        assert events[0]["request_id"]
    finally:
        await alice_socket.disconnect()
