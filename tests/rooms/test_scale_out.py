"""Scale-out: two server processes behind a load balancer share the channels-redis layer.

Two real uvicorn processes, on different ports, use the test's own database and one
Redis. A message posted through one process reaches a member connected to the other,
decrypted for that member, and nothing reaches a stranger's socket there. Redis is
needed even when the suite runs on the embedded default: ``REDIS_URL`` if set, else
``redis://127.0.0.1:6379/10``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from rooms.models import Message
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.fixtures import (
    project_env,
    session_cookie_for,
    shared_database_url,
    start_server,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
FRAME_TIMEOUT = 10.0


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def two_servers(tmp_path: Path, master_key_file: Path) -> Iterator[tuple[int, int]]:
    """Two SafeChat processes sharing the test database, Redis and keys; always stopped."""
    ports = (free_port(), free_port())
    env = project_env(
        tmp_path,
        DATABASE_URL=shared_database_url(),
        REDIS_URL=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        # Sessions are validated against the test process's SECRET_KEY; messages are
        # sealed under its master keys, written by the conftest fixture.
        SECRET_KEY=settings.SECRET_KEY,
        SAFECHAT_MASTER_KEY_FILE=str(master_key_file),
        SAFECHAT_AUDIT_SIGNING_KEY_FILE=str(settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE),
        ALLOWED_HOSTS="127.0.0.1",
        SAFECHAT_WS_ALLOWED_ORIGINS=",".join(f"http://127.0.0.1:{port}" for port in ports),
        # Nobody reads the servers' pipe during the test: keep it from filling up.
        LOG_LEVEL="WARNING",
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            started.append(start_server(env, port))
        yield ports
    finally:
        for process in started:
            stop(process)


async def open_socket(port: int, cookie: str) -> ClientConnection:
    """A signed-in socket whose room subscriptions are in place (the pong comes after them)."""
    socket = await connect(
        f"ws://127.0.0.1:{port}/ws/",
        origin=Origin(f"http://127.0.0.1:{port}"),
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
        open_timeout=FRAME_TIMEOUT,
    )
    await socket.send(json.dumps({"type": "ping"}))
    await frame_of_type(socket, "pong")
    return socket


async def frame_of_type(socket: ClientConnection, wanted: str) -> dict[str, Any]:
    """The next frame of type ``wanted``, skipping others (presence, for one)."""
    async with asyncio.timeout(FRAME_TIMEOUT):
        while True:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if frame["type"] == wanted:
                return frame


async def frames_within(socket: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(json.loads(await socket.recv()))
    except TimeoutError:
        return frames


def test_a_message_posted_through_one_process_reaches_a_member_on_the_other(
    two_servers: tuple[int, int],
) -> None:
    # given a room of A and B, a stranger C, and verified sessions for all three
    first, second = two_servers
    sender, member, stranger = make_user(), make_user(), make_user()
    room = make_room(owner=sender, members=(member,))
    cookies = {u.pk: session_cookie_for(u, verified=True) for u in (sender, member, stranger)}

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        # B and C connect to the second process, A to the first
        member_socket = await open_socket(second, cookies[member.pk])
        stranger_socket = await open_socket(second, cookies[stranger.pk])
        sender_socket = await open_socket(first, cookies[sender.pk])
        try:
            # when A posts through the first process
            await sender_socket.send(
                json.dumps(
                    {
                        "type": "message.post",
                        "room_id": room.pk,
                        "text": "Across the balancer",
                        "client_id": "scale-1",
                    }
                )
            )
            ack = await frame_of_type(sender_socket, "ack")
            delivered = await frame_of_type(member_socket, "message.new")
            stranger_frames = await frames_within(stranger_socket, 1.0)
        finally:
            for socket in (sender_socket, member_socket, stranger_socket):
                await socket.close()
        return ack, delivered, stranger_frames

    ack, delivered, stranger_frames = asyncio.run(scenario())

    # then B, on the other process, gets it decrypted; C gets nothing at all
    assert ack["client_id"] == "scale-1"
    assert delivered["room_id"] == room.pk
    assert delivered["message"]["id"] == ack["message_id"]
    assert delivered["message"]["sender_id"] == sender.pk
    assert delivered["message"]["text"] == "Across the balancer"
    assert stranger_frames == []
    # and it was stored once, encrypted (the plaintext is nowhere in the row)
    stored = Message.objects.get(room=room)
    assert stored.pk == ack["message_id"]
    assert b"Across the balancer" not in bytes(stored.ciphertext)


def test_a_socket_the_server_closes_for_an_oversized_frame_leaves_groups_and_presence(
    two_servers: tuple[int, int],
) -> None:
    # given a member's socket on a real server process, seen in Redis (groups, presence)
    import redis
    from websockets.exceptions import ConnectionClosed

    port, _ = two_servers
    member = make_user()
    room = make_room(owner=member)
    cookie = session_cookie_for(member, verified=True)
    client = redis.Redis.from_url(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    presence_key = f"safechat:1:rooms:presence:{member.pk}"
    group_key = f"safechat:group:room.{room.pk}"

    async def scenario() -> tuple[int | None, list[Any]]:
        socket = await open_socket(port, cookie)
        sockets_before = list(client.hkeys(presence_key))
        # when it sends a frame past the server's 64 KiB limit
        await socket.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        try:
            async with asyncio.timeout(FRAME_TIMEOUT):
                while True:
                    await socket.recv()
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
        return code, sockets_before

    code, sockets_before = asyncio.run(scenario())

    # then the server closed it with 1009, and its channel left every group and presence
    assert code == 1009
    (channel,) = sockets_before
    for _ in range(50):
        if client.zscore(group_key, channel) is None and not client.hkeys(presence_key):
            break
        time.sleep(0.1)
    assert client.zscore(group_key, channel) is None
    assert client.hkeys(presence_key) == []
