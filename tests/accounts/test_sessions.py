"""Session policy: idle and absolute expiry, listing and ending sessions, closing sockets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from accounts.models import User, UserSession
from accounts.realtime import CLOSE_SESSION_ENDED
from accounts.services import session_end_all, user_deactivate
from accounts.session_policy import session_key_hash
from safechat.asgi import application
from tests.accounts.conftest import actions, events
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.support import sockets

ORIGIN = (b"origin", b"http://localhost:8000")


def age_session(client: Client, *, auth_ago: float = 0, seen_ago: float = 0) -> None:
    """Move the session's clocks (kept on its row) back by the given seconds."""
    key = client.session.session_key
    assert key is not None
    now = timezone.now()
    UserSession.objects.filter(key_hash=session_key_hash(key)).update(
        created_at=now - timedelta(seconds=auth_ago), last_seen_at=now - timedelta(seconds=seen_ago)
    )


@pytest.mark.django_db
def test_an_idle_session_is_signed_out_with_a_reason(
    verified_client: Client, settings: Settings
) -> None:
    settings.SAFECHAT_SESSION_IDLE_SECONDS = 900
    age_session(verified_client, seen_ago=901)

    response = verified_client.get("/accounts/factors/")

    assert response.headers["Location"].startswith("/accounts/sign-in/")
    page = verified_client.get("/accounts/sign-in/")
    assert "inactivity" in page.content.decode()
    assert UserSession.objects.get().end_reason == "idle"
    assert events("session.ended")[0].extra == {"reason": "idle"}


@pytest.mark.django_db
def test_an_active_session_still_ends_at_its_absolute_lifetime(
    verified_client: Client, settings: Settings
) -> None:
    age_session(verified_client, auth_ago=settings.SESSION_COOKIE_AGE + 1, seen_ago=5)

    response = verified_client.get("/accounts/factors/")

    assert response.status_code == 302
    assert UserSession.objects.get().end_reason == "absolute"


@pytest.mark.django_db
def test_a_recent_session_is_kept_and_its_idle_clock_moves(verified_client: Client) -> None:
    age_session(verified_client, seen_ago=120)

    assert verified_client.get("/accounts/factors/").status_code == 200
    row = UserSession.objects.get()
    assert (timezone.now() - row.last_seen_at).total_seconds() < 5


@pytest.mark.django_db
def test_sessions_page_lists_mine_and_ends_another_one(user: User) -> None:
    # given the same user signed in on a laptop and a phone
    laptop, phone = Client(HTTP_USER_AGENT="Laptop browser"), Client()
    sign_in_client(laptop, user, verified=True)
    sign_in_client(phone, user, verified=True)
    other = make_user()
    sign_in_client(Client(), other, verified=True)

    # when the laptop lists sessions and ends the phone's
    page = laptop.get("/accounts/sessions/")
    listed = list(page.context["sessions"])
    assert {s.user_id for s in listed} == {user.pk}
    assert len(listed) == 2
    phone_row = next(s for s in listed if s.key_hash != page.context["current_hash"])
    laptop.post(f"/accounts/sessions/{phone_row.pk}/end/")

    # then the phone is signed out at its next request, the laptop is not
    assert phone.get("/accounts/factors/").status_code == 302
    assert laptop.get("/accounts/factors/").status_code == 200
    assert events("session.ended")[0].extra["reason"] == "ended_by_user"


@pytest.mark.django_db
def test_nobody_ends_another_users_session_by_guessing_its_id(user: User) -> None:
    victim = make_user()
    victim_client = Client()
    sign_in_client(victim_client, victim, verified=True)
    attacker = Client()
    sign_in_client(attacker, user, verified=True)
    victim_row = UserSession.objects.get(user=victim)

    response = attacker.post(f"/accounts/sessions/{victim_row.pk}/end/")

    assert response.status_code == 404
    assert victim_client.get("/accounts/factors/").status_code == 200
    assert not events("session.ended")


@pytest.mark.django_db
def test_only_the_hash_of_the_session_key_is_stored(verified_client: Client) -> None:
    key = verified_client.session.session_key
    assert key is not None
    row = UserSession.objects.get()
    assert key not in row.key_hash
    assert len(row.key_hash) == 64


async def live_socket(user: User) -> tuple[WebsocketCommunicator, Client]:
    client = Client()
    await database_sync_to_async(sign_in_client)(client, user, verified=True)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    communicator = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    return communicator, client


async def closed_with(communicator: WebsocketCommunicator) -> int:
    code, _ = await sockets.closed_with(communicator)
    return code


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_signing_out_closes_that_sessions_live_socket_only(user: User) -> None:
    # given two sessions of one user, each with a live socket
    first, first_client = await live_socket(user)
    second, _ = await live_socket(user)

    # when the first session signs out
    await database_sync_to_async(first_client.post)("/accounts/sign-out/")

    # then its socket closes with the documented code, and the other lives on
    assert await closed_with(first) == CLOSE_SESSION_ENDED
    await second.send_json_to({"type": "ping"})
    assert await second.receive_json_from() == {"type": "pong"}
    await second.disconnect()
    assert "auth.logout" in await database_sync_to_async(actions)()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_deactivating_a_user_closes_their_live_sockets_at_once(user: User) -> None:
    admin = await database_sync_to_async(lambda: grant_role(make_user(), "security_admin"))()
    socket, client = await live_socket(user)

    await database_sync_to_async(user_deactivate)(actor=admin, user=user)

    assert await closed_with(socket) == CLOSE_SESSION_ENDED
    response = await database_sync_to_async(client.get)("/accounts/factors/")
    assert response.status_code == 302


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_admin_ending_all_sessions_closes_every_socket_of_the_user(user: User) -> None:
    admin = await database_sync_to_async(lambda: grant_role(make_user(), "security_admin"))()
    sockets = [(await live_socket(user))[0] for _ in range(2)]

    ended = await database_sync_to_async(session_end_all)(actor=admin, user=user)

    assert ended == 2
    for socket in sockets:
        assert await closed_with(socket) == CLOSE_SESSION_ENDED
    # End each socket's application task now, not at the loop's teardown, where a task
    # cancelled inside a thread call would hold the teardown.
    for socket in sockets:
        await socket.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_ended_session_cannot_open_a_new_socket(user: User) -> None:
    socket, client = await live_socket(user)
    await socket.disconnect()
    row = await database_sync_to_async(UserSession.objects.get)(user=user)
    await database_sync_to_async(session_end_all)(actor=user, user=user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    communicator = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())],
    )

    outcome = await sockets.handshake_outcome(communicator)

    assert outcome == ("closed", 4401)
    assert row.ended_at is None  # the row we read before was live
