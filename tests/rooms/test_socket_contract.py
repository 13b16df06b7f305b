"""Every frame a client receives is a registered event carrying its registered type.

The services' side of the contract is in tests/safechat/test_events.py; here sockets
are driven through a room's life, and every frame they receive is checked against
``safechat.events.FRAMES`` (and a message against ``rooms.wire.WireMessage``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from accounts.models import User
from accounts.services.sessions import session_end_all
from files.services import file_scan, upload_append, upload_create
from rooms.models import Membership, Message, Room
from rooms.services import (
    membership_add,
    membership_mute_set,
    membership_remove,
    membership_role_change,
    reaction_toggle,
    room_archive,
    room_update,
)
from rooms.wire import WireMessage
from safechat.events import FRAMES, Event, Frame
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room, make_room_admin
from tests.support.clamd import OwnClamd
from tests.support.payloads import mismatches
from tests.support.sockets import closed_with, open_verified_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

db = database_sync_to_async


class Tab:
    """A socket and every frame it received, each checked as it arrives."""

    def __init__(self, socket: WebsocketCommunicator) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []

    async def until(self, wanted: str, *, wait: float = 3) -> dict[str, Any]:
        while True:
            frame = await self._next(wait=wait)
            if frame["type"] == wanted:
                return frame

    async def until_all(self, *wanted: str) -> list[dict[str, Any]]:
        """The first frame of each type in ``wanted``, whatever order they arrive in."""
        found: dict[str, dict[str, Any]] = {}
        while len(found) < len(wanted):
            frame = await self._next()
            if frame["type"] in wanted:
                found.setdefault(frame["type"], frame)
        return [found[w] for w in wanted]

    async def _next(self, *, wait: float = 3) -> dict[str, Any]:
        frame: dict[str, Any] = await self.socket.receive_json_from(timeout=wait)
        self.frames.append(frame)
        _check(frame)
        return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send_json_to(frame)


def _check(frame: dict[str, Any]) -> None:
    assert frame["type"] in {e.value for e in Event}, frame
    event = Event(frame["type"])
    payload = {k: v for k, v in frame.items() if k != "type"}
    assert event in FRAMES, f"{event} never reaches a client"
    assert mismatches(payload, FRAMES[event]) == [], frame
    if "message" in payload:
        assert mismatches(payload["message"], WireMessage) == [], frame


@pytest_asyncio.fixture
async def tabs() -> AsyncIterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await tab.socket.disconnect()


async def _open(tabs: list[Tab], user: User) -> Tab:
    tab = Tab(await open_verified_socket(user))
    tabs.append(tab)
    await tab.send({"type": Frame.PING})
    await tab.until(Event.PONG)
    return tab


def _file_shared(*, owner: User, room: Room, clamd_socket: str) -> None:
    """``owner`` uploads a file to ``room`` and it scans clean: it is shared as a message."""
    with override_settings(SAFECHAT_CLAMD_SOCKET="", SAFECHAT_CLAMD_HOST=""):
        stored = upload_create(actor=owner, room=room, length=5, name="note.txt")
        stored = upload_append(actor=owner, stored=stored, offset=0, body=[b"hello"])
    with override_settings(SAFECHAT_CLAMD_SOCKET=clamd_socket, SAFECHAT_CLAMD_HOST=""):
        file_scan(file_id=stored.pk)


async def test_every_frame_of_a_rooms_life_is_registered_and_typed(
    tabs: list[Tab], shared_clamd: OwnClamd
) -> None:
    owner, member, newcomer = await db(
        lambda: (make_room_admin(), make_user(username="member"), make_user())
    )()
    room = await db(make_room)(owner=owner, members=(member,))
    owner_tab, member_tab, newcomer_tab = (
        await _open(tabs, owner),
        await _open(tabs, member),
        await _open(tabs, newcomer),
    )

    # posting, typing, presence, resync, reading, and a mistake, from the sockets
    await owner_tab.send(
        {"type": Frame.MESSAGE_POST, "room_id": room.pk, "text": "hi @member", "client_id": "c1"}
    )
    await owner_tab.until(Event.ACK)
    new, _ = await member_tab.until_all(Event.MESSAGE_NEW, Event.MENTION)
    message_id = new["message"]["id"]
    await member_tab.send({"type": Frame.TYPING, "room_id": room.pk})
    await owner_tab.until(Event.TYPING)
    await member_tab.send({"type": Frame.PRESENCE, "state": "away"})
    await owner_tab.until(Event.PRESENCE)
    await member_tab.send({"type": Frame.PRESENCE_GET, "room_id": room.pk})
    await member_tab.until(Event.PRESENCE_SNAPSHOT)
    await member_tab.send({"type": Frame.SYNC, "rooms": {str(room.pk): 0}})
    await member_tab.until(Event.SYNC_DONE)
    await member_tab.send({"type": Frame.READ, "room_id": room.pk, "message_id": message_id})
    await owner_tab.until(Event.READ_MARKER)
    await member_tab.send({"type": Frame.SESSION_EXTEND})
    await member_tab.until(Event.SESSION_EXTENDED)
    await member_tab.send({"type": Frame.MESSAGE_EDIT, "message_id": "x", "text": "y"})
    await member_tab.until(Event.ERROR)
    await owner_tab.send({"type": Frame.MESSAGE_EDIT, "message_id": message_id, "text": "hello"})
    await member_tab.until(Event.MESSAGE_EDITED)

    # what services publish
    await db(_file_shared)(owner=owner, room=room, clamd_socket=shared_clamd.socket_path)
    shared = await member_tab.until(Event.MESSAGE_NEW)
    assert shared["message"]["attachment"]["name"] == "note.txt"
    assert shared["message"]["attachment"]["size"] == 5
    message = await db(Message.objects.get)(pk=message_id)
    await db(reaction_toggle)(actor=member, message=message, emoji="👌")
    await member_tab.until(Event.MESSAGE_REACTIONS)
    await owner_tab.send({"type": Frame.MESSAGE_DELETE, "message_id": message.pk})
    await member_tab.until(Event.MESSAGE_DELETED)
    await db(membership_add)(actor=owner, room=room, user=newcomer)
    await newcomer_tab.until(Event.ROOM_GRANTED)
    await member_tab.until(Event.MEMBER_ADDED)
    await db(membership_role_change)(
        actor=owner, room=room, member=newcomer, role=Membership.Role.MODERATOR
    )
    await member_tab.until(Event.MEMBER_UPDATED)
    await db(membership_remove)(actor=owner, room=room, member=newcomer)
    await newcomer_tab.until(Event.ROOM_REVOKED)
    await member_tab.until(Event.MEMBER_REMOVED)
    await db(room_update)(actor=owner, room=room, topic="rates")
    await member_tab.until(Event.ROOM_UPDATED)
    await db(membership_mute_set)(actor=member, room=room, mute="messages")
    muted = await member_tab.until(Event.ROOM_MUTED)
    assert muted == {"type": "room.muted", "room_id": room.pk, "mute": "messages"}
    await db(room_archive)(actor=owner, room=room)
    await member_tab.until(Event.ROOM_ARCHIVED)
    await db(session_end_all)(actor=newcomer, user=newcomer)
    code, last = await closed_with(newcomer_tab.socket)
    for frame in last:
        _check(frame)
    newcomer_tab.frames += last

    # then every frame was registered and typed, and the life covered these events
    seen = {frame["type"] for tab in tabs for frame in tab.frames}
    assert code == 4410
    assert seen == {e.value for e in Event} - {
        Event.ACCESS_CHANGED,  # heard by the socket, never sent on
        Event.SESSION_EXPIRING,  # at a session's deadline (tests/rooms/test_socket_lifecycle.py)
    }
