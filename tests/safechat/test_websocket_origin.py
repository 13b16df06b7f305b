"""The /ws/ route checks the Origin, then the session and its second factor."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from safechat.asgi import application
from safechat.origins import OriginError, allowed_origins_parse, origin_parse
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


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [
        b"http://localhost:9999",
        b"https://127.0.0.1:1",
        b"http://[::1]:8080",
        b"https://localhost:8000",
    ],
    ids=["other-port", "other-scheme-and-port", "ipv6-other-port", "other-scheme"],
)
async def test_an_allowed_host_on_another_scheme_or_port_is_another_origin(
    user: User, origin: bytes
) -> None:
    # given a verified session and the portal served on http://<allowed host>:8000
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie_for)(user, verified=True)

    outcome, _ = await handshake(headers(origin=origin, cookie=cookie))

    assert outcome == "refused"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("http://localhost:8000", ("http", "localhost", 8000)),
        ("HTTPS://Chat.Example.COM", ("https", "chat.example.com", 443)),
        ("http://[::1]:8000", ("http", "[::1]", 8000)),
        ("https://chat.example.com:443/", ("https", "chat.example.com", 443)),
        ("null", None),
        ("chat.example.com", None),
        ("ftp://chat.example.com", None),
        ("https://user@chat.example.com", None),
        ("https://chat.example.com/path", None),
        ("http://localhost:99999", None),
    ],
)
def test_origins_are_parsed_to_scheme_host_and_port(
    value: str, parsed: tuple[str, str, int] | None
) -> None:
    assert origin_parse(value) == parsed


@pytest.mark.parametrize("value", ["*", "chat.example.com", "https://*.example.com"])
def test_a_configured_origin_that_is_not_one_is_refused(value: str) -> None:
    with pytest.raises(OriginError, match="not an origin"):
        allowed_origins_parse([value])


async def _raw_handshake(*, origin: bytes, extensions: dict[str, object]) -> list[dict[str, Any]]:
    """The messages the application sends for one handshake (as a server sees them)."""
    scope = {
        "type": "websocket",
        "path": "/ws/",
        "raw_path": b"/ws/",
        "query_string": b"",
        "headers": [(b"host", b"localhost:8000"), (b"origin", origin)],
        "scheme": "ws",
        "client": ("127.0.0.1", 40000),
        "server": ("localhost", 8000),
        "subprotocols": [],
        "extensions": extensions,
    }
    received = iter([{"type": "websocket.connect"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(received, {"type": "websocket.disconnect", "code": 1000})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    return sent


@pytest.mark.asyncio
async def test_a_refused_handshake_carries_the_security_headers_where_the_server_allows() -> None:
    # when a foreign origin's handshake reaches a server offering the HTTP-response extension
    sent = await _raw_handshake(
        origin=b"https://evil.example", extensions={"websocket.http.response": {}}
    )

    # then the 403 is ours, with the security headers of every HTTP answer, and no socket
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    names = {name for name, _value in sent[0]["headers"]}
    assert {
        b"x-content-type-options",
        b"content-security-policy",
        b"x-frame-options",
        b"referrer-policy",
        b"cross-origin-opener-policy",
    } <= names
    assert b"origin" in sent[1]["body"]


@pytest.mark.asyncio
async def test_without_the_extension_a_refused_handshake_is_closed_as_before() -> None:
    sent = await _raw_handshake(origin=b"https://evil.example", extensions={})

    assert sent == [{"type": "websocket.close", "code": 1008}]
