"""The /ws/ route checks the Origin, then the session and its second factor."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from safechat.asgi import application
from tests.support.fixtures import session_cookie_for
from tests.support.sockets import handshake_outcome

ALLOWED_ORIGIN = b"http://localhost:8000"


def headers(*, origin: bytes | None, cookie: str | None) -> list[tuple[bytes, bytes]]:
    result = []
    if origin is not None:
        result.append((b"origin", origin))
    if cookie is not None:
        result.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return result


async def handshake(header_list: list[tuple[bytes, bytes]]) -> tuple[str, object]:
    communicator = WebsocketCommunicator(application, "/ws/", headers=header_list)
    outcome = await handshake_outcome(communicator)
    await communicator.disconnect()
    return outcome


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
    outcome, _ = await handshake(headers(origin=origin, cookie=cookie))

    # then it is refused before anything is accepted (HTTP 403)
    assert outcome == "refused"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_handshake_with_allowed_origin_and_verified_session_is_accepted(user: User) -> None:
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie_for)(user, verified=True)

    outcome, reply = await handshake(headers(origin=ALLOWED_ORIGIN, cookie=cookie))

    assert outcome == "open"
    assert reply == {"type": "pong"}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_handshake_without_a_session_is_refused() -> None:
    outcome, code = await handshake(headers(origin=ALLOWED_ORIGIN, cookie=None))

    # accepted, then closed with 4401: a browser tells "signed out" from "network down"
    assert (outcome, code) == ("closed", 4401)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_handshake_with_a_password_only_session_is_refused(user: User) -> None:
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie_for)(user, verified=False)

    outcome, code = await handshake(headers(origin=ALLOWED_ORIGIN, cookie=cookie))

    assert (outcome, code) == ("closed", 4401)
