"""PostgreSQL is the source of truth: with Redis down, SafeChat answers, never a 500.

Per operation (docs/realtime.md, "When Redis is down"): API reads and writes are
served (rate limits counted per process, broadcasts dropped and resynced later); a
token still authenticates; a WebSocket handshake is accepted and closed with 1013
(try again later); an open socket is closed with 1013. Each test runs on a Redis of
its own, which it stops; never the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from pytest_django import Settings

from accounts.services import api_token_create
from rooms.models import Message
from safechat import environment as envtools
from safechat.asgi import application
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room
from tests.support.redis_server import OwnRedis
from tests.support.sockets import closed_with, handshake_outcome

ORIGIN = (b"origin", b"http://localhost:8000")


@pytest.fixture
def own_redis(tmp_path: Path, settings: Settings) -> Iterator[OwnRedis]:
    """Every Redis user of the project (layer, cache, limiter) pointed at a Redis of ours."""
    server = OwnRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    settings.CHANNEL_LAYERS = envtools.channel_layers_for(server.url)
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "safechat",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    try:
        yield server
    finally:
        # The suite's own clean-up clears the cache after this: not on a stopped Redis.
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        server.stop()


def post(client: Client, room_id: int, text: str, **headers: str) -> int:
    response = client.post(
        f"/api/v1/rooms/{room_id}/messages/",
        {"text": text},
        content_type="application/json",
        headers=headers,
    )
    assert "Traceback" not in response.content.decode()
    return response.status_code


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_api_posts_are_stored_and_answered(own_redis: OwnRedis) -> None:
    # given a member with a session and a token, and a working Redis
    owner = make_user()
    room = make_room(owner=owner)
    client = Client()
    sign_in_client(client, owner, verified=True)
    _, secret = api_token_create(actor=owner, name="desk bot", scope="write")
    assert post(client, room.pk, "before the outage") == 201

    # when Redis stops
    own_redis.stop()

    # then posts by session and by token are stored and answered, and reads work
    assert post(client, room.pk, "during the outage") == 201
    assert post(Client(), room.pk, "by token", Authorization=f"Bearer {secret}") == 201
    assert client.get(f"/api/v1/rooms/{room.pk}/messages/").status_code == 200
    assert Message.objects.filter(room=room).count() == 3

    # and once Redis is back, posting goes on as before
    own_redis.start()
    assert post(client, room.pk, "after the outage") == 201


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_with_redis_down_a_handshake_is_closed_with_1013_not_a_500(
    own_redis: OwnRedis,
) -> None:
    user = await database_sync_to_async(make_user)()
    cookie = await database_sync_to_async(_cookie)(user)
    own_redis.stop()

    socket = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[ORIGIN, (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode())],
    )
    outcome = await handshake_outcome(socket)

    assert outcome == ("closed", 1013)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_socket_open_when_redis_stops_is_closed_with_1013(own_redis: OwnRedis) -> None:
    user = await database_sync_to_async(make_user)()
    cookie = await database_sync_to_async(_cookie)(user)
    socket = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[ORIGIN, (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode())],
    )
    assert await handshake_outcome(socket) == ("open", {"type": "pong"})

    own_redis.stop()
    code, _ = await closed_with(socket, wait=20)

    assert code == 1013


def _cookie(user: object) -> str:
    client = Client()
    sign_in_client(client, user, verified=True)  # type: ignore[arg-type]
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value
