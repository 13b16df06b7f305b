"""The /ws/ route checks the Origin, then the session and its second factor."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from safechat.asgi import application
from tests.support.fixtures import session_cookie_for

ALLOWED_ORIGIN = b"http://localhost:8000"


def headers(*, origin: bytes | None, cookie: str | None) -> list[tuple[bytes, bytes]]:
    result = []
    if origin is not None:
        result.append((b"origin", origin))
    if cookie is not None:
        result.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return result


async def handshake(header_list: list[tuple[bytes, bytes]]) -> tuple[bool, object]:
    communicator = WebsocketCommunicator(application, "/ws/", headers=header_list)
    connected, detail = await communicator.connect()
    if connected:
        await communicator.send_json_to({"type": "ping"})
        detail = await communicator.receive_json_from()
    await communicator.disconnect()
    return connected, detail


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [b"https://evil.example", b"http://localhost.evil.example", b"null", None],
    ids=["foreign", "lookalike", "null", "missing"],
)
async def test_handshake_from_a_foreign_or_missing_origin_is_refused(
    user: User, origin: bytes | None
) -> None:
    # given a fully verified session, so only the origin can be the reason
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie_for)(user, verified=True)

    # when the handshake comes from a foreign or missing origin
    connected, _ = await handshake(headers(origin=origin, cookie=cookie))

    # then it is refused
    assert connected is False


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_handshake_with_allowed_origin_and_verified_session_is_accepted(user: User) -> None:
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie_for)(user, verified=True)

    connected, reply = await handshake(headers(origin=ALLOWED_ORIGIN, cookie=cookie))

    assert connected is True
    assert reply == {"type": "pong"}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_handshake_without_a_session_is_refused() -> None:
    connected, code = await handshake(headers(origin=ALLOWED_ORIGIN, cookie=None))

    assert connected is False
    assert code == 4401


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_handshake_with_a_password_only_session_is_refused(user: User) -> None:
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie_for)(user, verified=False)

    connected, code = await handshake(headers(origin=ALLOWED_ORIGIN, cookie=cookie))

    assert connected is False
    assert code == 4401
