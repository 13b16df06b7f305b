"""A socket's right to live is re-derived from the database for as long as it is open.

Each test is one reproduction from the socket-lifecycle review (numbered as there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.test import Client
from pytest_django import Settings

from accounts.models import User, UserSession
from audit.models import AuditEvent
from rooms import consumers, presence
from rooms.models import Message, Room
from rooms.services import message_post
from safechat.asgi import application
from safechat.events import room_group, user_group
from safechat.keyring.models import SealedEpochKey
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room
from tests.support.layers import age_membership, in_group
from tests.support.sockets import closed_with, handshake_outcome

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
db = database_sync_to_async
ORIGIN = (b"origin", b"http://localhost:8000")
PASSWORD = "correct horse battery staple"


class Tab:
    """One browser tab: its session's HTTP client and its socket."""

    def __init__(self, client: Client, socket: WebsocketCommunicator) -> None:
        self.client = client
        self.socket = socket

    async def ping(self) -> dict[str, Any]:
        await self.socket.send_json_to({"type": "ping"})
        return await self.next_frame("pong")

    async def frames_for(self, seconds: float) -> list[dict[str, Any]]:
        """Every frame that arrives within ``seconds``."""
        frames = []
        while not await self.socket.receive_nothing(timeout=seconds):
            frames.append(dict(await self.socket.receive_json_from()))
        return frames

    async def next_frame(self, wanted: str, *, wait: float = 5) -> dict[str, Any]:
        while True:
            frame = await self.socket.receive_json_from(timeout=wait)
            if frame["type"] == wanted:
                return dict(frame)


Open = Callable[..., Awaitable[Tab]]


@pytest_asyncio.fixture
async def open_tab() -> AsyncIterator[Open]:
    opened: list[WebsocketCommunicator] = []

    async def open_one(user: User, client: Client | None = None) -> Tab:
        if client is None:
            client = Client()
            await db(sign_in_client)(client, user, verified=True)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        socket = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())],
        )
        connected, _ = await socket.connect()
        assert connected
        opened.append(socket)
        tab = Tab(client, socket)
        await tab.ping()  # subscriptions are in place
        return tab

    yield open_one
    for socket in opened:
        # A socket the server already closed (or whose test failed) ends with the
        # application's own outcome; the clean-up must not fail the fixtures after it.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await socket.disconnect()


async def socket_channel(user: User) -> str:
    """The channel name of the one socket ``user`` has open (from the presence registry)."""
    (channel,) = await db(presence.presence_sockets_of)(user_id=user.pk)
    return str(channel)


async def stored_messages(room: Room) -> int:
    count: int = await db(Message.objects.filter(room=room).count)()
    return count


# --- 1. group expiry -------------------------------------------------------------------
async def test_a_socket_open_past_the_group_expiry_still_receives_and_still_closes_on_sign_out(
    open_tab: Open, settings: Settings
) -> None:
    # given a member's socket, with a frequent timer and (for now) no group refresh
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.2
    settings.SAFECHAT_SOCKET_GROUP_REFRESH_SECONDS = 3600
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    tab = await open_tab(member)
    layer = get_channel_layer()
    channel = await socket_channel(member)
    groups = [room_group(room.pk), user_group(member.pk)]

    await tab.frames_for(0.3)  # its own arrival
    # when an hour and a second pass for its group memberships (past the layer's expiry)
    for group in groups:
        await age_membership(layer, group, channel, seconds=layer.group_expiry + 1)

    # then, without a refresh, the layer no longer delivers to it (the failure seen)
    await db(message_post)(sender=owner, room=room, text="lost to expiry")
    assert not [f for f in await tab.frames_for(0.5) if f["type"] == "message.new"]

    # when the socket's timer refreshes its groups
    settings.SAFECHAT_SOCKET_GROUP_REFRESH_SECONDS = 0.1
    for _ in range(50):
        if all([await in_group(layer, g, channel) for g in groups]):
            break
        await asyncio.sleep(0.1)

    # then it receives again, and signing out still closes it
    await db(message_post)(sender=owner, room=room, text="after the refresh")
    frame = await tab.next_frame("message.new")
    assert frame["message"]["text"] == "after the refresh"
    await db(tab.client.post)("/accounts/sign-out/")
    code, frames = await closed_with(tab.socket)
    assert code == 4410
    assert {"type": "session.ended", "reason": "ended"} in frames
    assert not await in_group(layer, room_group(room.pk), channel)


# --- 2. session limits ------------------------------------------------------------------
async def test_a_socket_sending_only_pings_is_closed_at_the_idle_limit_and_the_session_ends(
    open_tab: Open, settings: Settings
) -> None:
    settings.SAFECHAT_SESSION_IDLE_SECONDS = 2
    user = await db(make_user)()
    tab = await open_tab(user)

    # when only keepalive pings arrive for longer than the idle limit
    code = None
    frames: list[dict[str, Any]] = []
    for _ in range(12):
        try:
            await tab.socket.send_json_to({"type": "ping"})
        except AssertionError:
            break
        output = await tab.socket.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            code = output["code"]
            break
        frames.append(json.loads(output["text"]))
        await asyncio.sleep(0.3)

    # then the socket was closed with 4410, said why, and the session row is ended
    assert code == 4410
    assert {"type": "session.ended", "reason": "idle"} in frames
    row = await db(UserSession.objects.get)(user=user)
    assert row.end_reason == "idle"
    assert row.ended_at is not None
    ended = await db(lambda: list(AuditEvent.objects.filter(action="session.ended")))()
    assert [e.extra["reason"] for e in ended] == ["idle"]
    assert (await db(tab.client.get)("/accounts/factors/")).status_code == 302


async def test_a_socket_is_closed_at_the_absolute_limit_even_while_active(
    open_tab: Open, settings: Settings
) -> None:
    settings.SESSION_COOKIE_AGE = 2
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    tab = await open_tab(owner)

    frames: list[dict[str, Any]] = []
    code = None
    for _ in range(20):  # typing is activity: it moves the idle clock, never the absolute one
        await tab.socket.send_json_to({"type": "typing", "room_id": room.pk})
        await asyncio.sleep(0.2)
        while not await tab.socket.receive_nothing(timeout=0.01):
            output = await tab.socket.receive_output()
            if output["type"] == "websocket.close":
                code = output["code"]
                break
            frames.append(json.loads(output["text"]))
        if code is not None:
            break

    assert code == 4410
    assert {"type": "session.ended", "reason": "absolute"} in frames
    assert (await db(UserSession.objects.get)(user=owner)).end_reason == "absolute"


async def test_chatting_over_the_socket_moves_the_idle_clock_for_the_pages_too(
    open_tab: Open, settings: Settings
) -> None:
    # An idle limit well above a post's time on a busy machine: what is measured is that the
    # posts move the clock, so only a gap between two of them longer than this would fail.
    settings.SAFECHAT_SESSION_IDLE_SECONDS = 3
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    tab = await open_tab(owner)

    # when the person posts over the socket for twice the idle limit, with no page load
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 2 * settings.SAFECHAT_SESSION_IDLE_SECONDS:
        await tab.socket.send_json_to(
            {"type": "message.post", "room_id": room.pk, "text": f"still here {n}"}
        )
        await tab.next_frame("ack")
        await asyncio.sleep(0.5)
        n += 1

    # then the socket is open, and the next page load is not signed out
    assert await tab.ping() == {"type": "pong"}
    response = await db(tab.client.get)("/accounts/factors/")
    assert response.status_code == 200
    assert (await db(UserSession.objects.get)(user=owner)).ended_at is None


async def test_the_socket_warns_before_the_idle_sign_out_and_the_person_can_stay(
    open_tab: Open, settings: Settings
) -> None:
    settings.SAFECHAT_SESSION_IDLE_SECONDS = 4
    settings.SAFECHAT_SESSION_WARNING_SECONDS = 3
    user = await db(make_user)()
    tab = await open_tab(user)

    # when the warning arrives (about a second in) and the person chooses to stay
    warning = await tab.next_frame("session.expiring", wait=4)
    assert warning["reason"] == "idle"
    assert warning["extendable"] is True
    assert 0 <= warning["seconds"] <= 3
    await tab.socket.send_json_to({"type": "session.extend"})
    await tab.next_frame("session.extended")
    await asyncio.sleep(2.5)  # past the first deadline

    # then the socket is still open, and the page too
    assert await tab.ping() == {"type": "pong"}
    assert (await db(tab.client.get)("/accounts/factors/")).status_code == 200


# --- 3. password change, then sign-out ---------------------------------------------------
async def test_a_password_change_keeps_this_sessions_socket_which_then_closes_on_sign_out(
    open_tab: Open,
) -> None:
    user = await db(make_user)()
    here = await open_tab(user)
    elsewhere = await open_tab(user)
    here_socket = here.socket

    # when the user changes their password in this session (its key rotates)
    response = await db(here.client.post)(
        "/accounts/password/",
        {"current_password": PASSWORD, "new_password1": "n3w passw0rd for the desk!",
         "new_password2": "n3w passw0rd for the desk!"},
    )  # fmt: skip
    assert response.status_code in (200, 302)

    # then the other session's socket closes, this one lives on
    code, _ = await closed_with(elsewhere.socket)
    assert code == 4410
    await here_socket.send_json_to({"type": "ping"})
    assert (await here_socket.receive_json_from(timeout=3))["type"] == "pong"

    # and signing out later (under the rotated key) still closes it
    await db(here.client.post)("/accounts/sign-out/")
    code, frames = await closed_with(here_socket)
    assert code == 4410
    assert frames[-1] == {"type": "session.ended", "reason": "ended"}


# --- 4. the user object is re-read ----------------------------------------------------------
async def test_a_user_deactivated_behind_the_sockets_back_is_refused_at_the_next_frame(
    open_tab: Open, settings: Settings
) -> None:
    # given a member's socket, and a deactivation that sends no hint (a direct update)
    settings.SAFECHAT_SOCKET_VERDICT_SECONDS = 0
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    tab = await open_tab(member)
    await db(User.objects.filter(pk=member.pk).update)(is_active=False)

    # when the socket posts
    await tab.socket.send_json_to({"type": "message.post", "room_id": room.pk, "text": "hi"})

    # then it is closed as deactivated, and nothing was stored or acked
    code, frames = await closed_with(tab.socket)
    assert code == 4410
    assert frames[-1] == {"type": "session.ended", "reason": "deactivated"}
    assert not [f for f in frames if f["type"] in ("ack", "message.new")]
    assert await stored_messages(room) == 0


async def test_the_timer_closes_a_socket_whose_user_was_deactivated_without_a_hint(
    open_tab: Open, settings: Settings
) -> None:
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.3
    user = await db(make_user)()
    tab = await open_tab(user)

    await db(User.objects.filter(pk=user.pk).update)(is_active=False)

    code, _ = await closed_with(tab.socket, wait=3)
    assert code == 4410


async def test_the_post_service_refuses_a_sender_deactivated_since_the_object_was_read() -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    await db(User.objects.filter(pk=member.pk).update)(is_active=False)  # ``member`` is stale

    with pytest.raises(PermissionDenied):
        await db(message_post)(sender=member, room=room, text="from a stale object")

    assert await stored_messages(room) == 0


# --- 7. every way a socket ends cleans up -------------------------------------------------
async def test_a_socket_closed_for_flooding_leaves_its_groups_and_presence(
    open_tab: Open,
) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    tab = await open_tab(member)
    channel = await socket_channel(member)
    layer = get_channel_layer()

    # when the client floods the socket until the server closes it
    for _ in range(200):
        await tab.socket.send_json_to({"type": "ping"})
    code, _ = await closed_with(tab.socket)

    # then the channel is in no group, and the user is offline at once
    assert code == 4429
    assert not await in_group(layer, room_group(room.pk), channel)
    assert not await in_group(layer, user_group(member.pk), channel)
    assert await db(presence.presence_of)(user_ids=[member.pk]) == {}
    assert await db(presence.presence_sockets_of)(user_id=member.pk) == []


async def test_a_socket_whose_handler_fails_is_closed_with_1011_and_cleaned_up(
    open_tab: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    tab = await open_tab(member)
    channel = await socket_channel(member)
    layer = get_channel_layer()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in delivery")

    monkeypatch.setattr("rooms.socket.fanout.message_new_for", broken)
    await db(message_post)(sender=owner, room=room, text="triggers the bug")

    code, _ = await closed_with(tab.socket)
    assert code == 1011
    assert not await in_group(layer, room_group(room.pk), channel)
    assert await db(presence.presence_sockets_of)(user_id=member.pk) == []


# --- 8. frames that once crashed the consumer ---------------------------------------------
@pytest.mark.parametrize(
    ("frame_text", "code"),
    [
        ('{"type": "message.post", "room_id": ROOM, "text": "x\\ud800y"}', "invalid"),
        ('{"type": "message.post", "room_id": ROOM, "text": "x\\u0000y"}', "invalid"),
        ('{"type": "message.post", "room_id": ROOM, "text": "x", "\\udc00": 1}', "invalid"),
        ('{"type": "message.post", "room_id": ROOM, "text": "x", "y": ["\\ud83d"]}', "invalid"),
        ("[" * 5000 + "]" * 5000, "bad_frame"),
        ('{"type": "message.post", "room_id": ROOM, "text": "' + "[" * 3000 + '"}', None),
    ],
    ids=[
        "lone-surrogate",
        "nul",
        "lone-surrogate-in-a-name",
        "lone-surrogate-anywhere",
        "deep-nesting",
        "brackets-in-text-are-fine",
    ],
)
async def test_hostile_frames_get_an_error_frame_and_store_nothing(
    open_tab: Open, frame_text: str, code: str | None
) -> None:
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    tab = await open_tab(owner)

    await tab.socket.send_to(text_data=frame_text.replace("ROOM", str(room.pk)))
    reply = await tab.next_frame("error" if code else "ack")

    if code is None:
        assert await stored_messages(room) == 1
        return
    assert reply["code"] == code
    assert await stored_messages(room) == 0
    assert await tab.ping() == {"type": "pong"}  # the socket is still open


async def test_a_nul_is_refused_alike_by_the_api_and_the_socket(open_tab: Open) -> None:
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    tab = await open_tab(owner)

    response = await db(tab.client.post)(
        f"/api/v1/rooms/{room.pk}/messages/", {"text": "a\x00b"}, content_type="application/json"
    )
    await tab.socket.send_json_to({"type": "message.post", "room_id": room.pk, "text": "a\x00b"})
    reply = await tab.next_frame("error")

    assert response.status_code == 400
    assert reply["code"] == "invalid"
    assert await stored_messages(room) == 0


# --- 9. integrity failures -------------------------------------------------------------------
async def corrupt_key_copy(room: Room, user: User) -> None:
    def corrupt() -> None:
        copy = SealedEpochKey.objects.filter(epoch__room=room, user=user).latest("epoch__number")
        sealed = bytearray(copy.sealed)
        sealed[-5] ^= 0x01  # one bit, inside the ciphertext
        SealedEpochKey.objects.filter(pk=copy.pk).update(sealed=bytes(sealed))

    await db(corrupt)()
    from safechat.keyring.services import clear_key_caches

    clear_key_caches()


async def integrity_events() -> list[AuditEvent]:
    found: list[AuditEvent] = await db(
        lambda: list(AuditEvent.objects.filter(action="key.integrity.failed"))
    )()
    return found


async def test_a_corrupt_key_copy_is_an_integrity_failure_on_the_socket_and_the_api(
    open_tab: Open,
) -> None:
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)
    tab = await open_tab(owner)
    await corrupt_key_copy(room, owner)

    await tab.socket.send_json_to({"type": "message.post", "room_id": room.pk, "text": "hi"})
    reply = await tab.next_frame("error")
    response = await db(tab.client.post)(
        f"/api/v1/rooms/{room.pk}/messages/", {"text": "hi"}, content_type="application/json"
    )

    assert reply["code"] == "integrity_failure"
    assert response.status_code == 503
    assert response.json()["code"] == "integrity_failure"
    assert "Traceback" not in response.content.decode()
    assert await stored_messages(room) == 0
    assert await tab.ping() == {"type": "pong"}
    (event,) = await integrity_events()  # audited once, though met twice
    assert event.extra["kind"] == "epoch-copy"


async def test_a_tampered_message_reads_as_an_integrity_failure_not_as_shredded(
    open_tab: Open,
) -> None:
    owner, member = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(member,))
    posted = await db(message_post)(sender=owner, room=room, text="the real text")
    tampered = bytearray(posted.ciphertext)
    tampered[-1] ^= 0x80
    await db(Message.objects.filter(pk=posted.pk).update)(ciphertext=bytes(tampered))
    tab = await open_tab(member)

    listing = await db(tab.client.get)(f"/api/v1/rooms/{room.pk}/messages/")
    again = await db(tab.client.get)(f"/api/v1/rooms/{room.pk}/messages/")

    (item,) = listing.json()["results"] if "results" in listing.json() else listing.json()
    assert item["text"] is None
    assert item["text_status"] == "integrity_failure"
    assert again.status_code == 200
    (event,) = await integrity_events()
    assert event.extra["kind"] == "message"


# --- 13. catch-up is paged and bounded ------------------------------------------------------
async def room_with_messages(open_tab: Open, count: int) -> tuple[Room, Tab]:
    """A room of one owner holding ``count`` messages m0, m1, ..., and the owner's tab."""
    owner = await db(make_user)()
    room = await db(make_room)(owner=owner)

    def post_many() -> None:
        for n in range(count):
            message_post(sender=owner, room=room, text=f"m{n}")

    await db(post_many)()
    tab = await open_tab(owner)
    await tab.frames_for(0.2)
    return room, tab


async def follow_sync(tab: Tab, room: Room) -> tuple[list[str], list[dict[str, Any]], int]:
    """Catch up on ``room`` from the start, following ``more`` as the portal does: the
    texts received, the error frames, and how many sync frames it took."""
    texts: list[str] = []
    errors: list[dict[str, Any]] = []
    cursor, pages = 0, 0
    while True:
        await tab.socket.send_json_to({"type": "sync", "rooms": {str(room.pk): cursor}})
        page: list[dict[str, Any]] = []
        while True:
            frame = await tab.socket.receive_json_from(timeout=5)
            if frame["type"] == "sync.done":
                break
            if frame["type"] == "message.new":
                page.append(frame)
            if frame["type"] == "error":
                errors.append(frame)
        pages += 1
        texts += [f["message"]["text"] for f in page]
        if str(room.pk) not in frame["more"]:
            return texts, errors, pages
        assert frame["more"][str(room.pk)] == page[-1]["message"]["id"]
        cursor = frame["more"][str(room.pk)]


async def test_sync_is_paged_with_a_more_flag_the_client_follows(
    open_tab: Open, settings: Settings
) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (1000, 10)
    room, tab = await room_with_messages(open_tab, 230)

    texts, errors, pages = await follow_sync(tab, room)

    assert texts == [f"m{n}" for n in range(230)]
    assert errors == []
    assert pages == 3


async def test_a_sync_frame_naming_too_many_rooms_is_refused(open_tab: Open) -> None:
    owner = await db(make_user)()
    tab = await open_tab(owner)

    await tab.socket.send_json_to({"type": "sync", "rooms": {str(n): 0 for n in range(1, 22)}})
    reply = await tab.next_frame("error")

    assert reply["code"] == "bad_frame"


async def test_catch_up_past_the_budget_is_paced_never_refused(
    open_tab: Open, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a room with 230 messages and a catch-up budget of 150 per second
    settings.SAFECHAT_POST_RATE_LIMIT = (1000, 10)
    monkeypatch.setattr("rooms.socket.protocol.SYNC_BUDGET", 150)
    monkeypatch.setattr("rooms.socket.protocol.SYNC_WINDOW", 1.0)
    room, tab = await room_with_messages(open_tab, 230)

    # when the client follows "more" as fast as it can
    started = asyncio.get_running_loop().time()
    texts, errors, _ = await follow_sync(tab, room)
    elapsed = asyncio.get_running_loop().time() - started

    # then everything arrives, nothing is refused, and the third page waited its turn
    assert texts == [f"m{n}" for n in range(230)]
    assert errors == []
    assert elapsed >= 0.8
    assert await tab.ping() == {"type": "pong"}


async def test_an_unattended_tab_in_a_busy_room_still_times_out(
    open_tab: Open, settings: Settings
) -> None:
    # given a short idle limit, and a tab that marks each arriving message read, as the
    # portal does on its own
    settings.SAFECHAT_SESSION_IDLE_SECONDS = 3
    settings.SAFECHAT_POST_RATE_LIMIT = (1000, 10)
    owner, reader = await db(lambda: (make_user(), make_user()))()
    room = await db(make_room)(owner=owner, members=(reader,))
    tab = await open_tab(reader)

    code = None
    frames: list[dict[str, Any]] = []
    for n in range(20):
        await db(message_post)(sender=owner, room=room, text=f"busy {n}")
        output = await tab.socket.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            code = output["code"]
            break
        frame = json.loads(output["text"])
        frames.append(frame)
        if frame["type"] == "message.new":
            await tab.socket.send_json_to(
                {"type": "read", "room_id": room.pk, "message_id": frame["message"]["id"]}
            )
        await asyncio.sleep(0.4)

    assert code == 4410
    assert {"type": "session.ended", "reason": "idle"} in frames


async def test_a_deactivated_users_socket_is_told_why(open_tab: Open) -> None:
    admin, user = await db(lambda: (grant_role(make_user(), "security_admin"), make_user()))()
    tab = await open_tab(user)

    from accounts.services import user_deactivate

    await db(user_deactivate)(actor=admin, user=user)

    code, frames = await closed_with(tab.socket)
    assert code == 4410
    assert frames[-1] == {"type": "session.ended", "reason": "deactivated"}


async def test_a_database_failure_at_the_handshake_closes_with_1013(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a signed-in session, and a database that fails the handshake's read
    from django.db import OperationalError

    user = await db(make_user)()
    client = Client()
    await db(sign_in_client)(client, user, verified=True)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    from accounts.session_policy import session_row_for
    from rooms.socket import in_pool

    def failing_in_pool(func: Any) -> Any:
        if func is not session_row_for:
            return in_pool(func)

        async def unreachable(**kwargs: object) -> None:
            raise OperationalError("the database is unreachable")

        return unreachable

    monkeypatch.setattr(consumers, "in_pool", failing_in_pool)

    # Channels closes stale connections before each handler on the process's one
    # database thread, which the suite's earlier sockets may still hold; this test is
    # about the consumer's answer to a failed read, so that step is left out here.
    async def nothing() -> None:
        return None

    monkeypatch.setattr("channels.consumer.aclose_old_connections", nothing)
    socket = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())],
    )

    # then the socket is accepted and closed with 1013 (try again later), not dropped
    assert await handshake_outcome(socket) == ("closed", 1013)
