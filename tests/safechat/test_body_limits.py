"""Request bodies are refused before they are read (safechat.body_limit, in front of Django):
by Content-Length at once, while streaming a body sent without one; a chunked JSON body
is read, never treated as empty."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from pytest_django import Settings

from accounts.services import api_token_create
from files.asgi import UPLOAD_PATHS
from rooms.models import Room
from safechat.asgi import application
from safechat.body_limit import BodyLimitMiddleware
from tests.rooms.factories import make_room_admin

LIMIT = 1000
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _small_limit(settings: Settings) -> None:
    settings.SAFECHAT_MAX_BODY_BYTES = LIMIT
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT


class Sender:
    """A client sending ``chunks`` of a body, counting how many the server read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0

    async def receive(self) -> dict[str, Any]:
        if self.read >= len(self.chunks):
            await asyncio.sleep(3600)  # a client that sends nothing more
        chunk = self.chunks[self.read]
        self.read += 1
        return {
            "type": "http.request",
            "body": chunk,
            "more_body": self.read < len(self.chunks),
        }


class Answer:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


class Recorder:
    """An inner application that reads the whole body, as Django does, and answers 200."""

    def __init__(self) -> None:
        self.called = False
        self.scope: dict[str, Any] = {}
        self.body = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        self.scope = dict(scope)
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def http_scope(
    path: str, headers: list[tuple[bytes, bytes]], method: str = "POST"
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def run(app: Any, scope: dict[str, Any], sender: Sender) -> Answer:
    answer = Answer()
    asyncio.run(asyncio.wait_for(app(scope, sender.receive, answer.send), timeout=30))
    return answer


def test_a_declared_length_over_the_limit_is_refused_without_reading_a_byte() -> None:
    # given an unauthenticated 200 MB POST, declared
    inner, sender = Recorder(), Sender([b"x" * MiB] * 200)

    answer = run(
        BodyLimitMiddleware(inner),
        http_scope("/api/v1/rooms/create/", [(b"content-length", str(200 * MiB).encode())]),
        sender,
    )

    # then 413 at once: nothing read, the application never called, the connection closed
    assert answer.status == 413
    assert sender.read == 0
    assert not inner.called
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    assert answer.headers["cache-control"] == "no-store"
    body = json.loads(answer.body)
    assert body["code"] == "payload_too_large"
    assert body["status"] == 413
    assert body["request_id"] == answer.headers["x-request-id"]


def test_the_real_stack_refuses_an_unauthenticated_large_post_before_django() -> None:
    sender = Sender([b"x" * MiB] * 200)

    answer = run(
        application,
        http_scope("/api/v1/rooms/create/", [(b"content-length", str(200 * MiB).encode())]),
        sender,
    )

    assert answer.status == 413
    assert sender.read == 0


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1, 2", b"1e3"])
def test_an_invalid_content_length_is_a_400(value: bytes) -> None:
    inner = Recorder()

    answer = run(
        BodyLimitMiddleware(inner),
        http_scope("/api/v1/rooms/create/", [(b"content-length", value)]),
        Sender([b"{}"]),
    )

    assert answer.status == 400
    assert json.loads(answer.body)["code"] == "bad_request"
    assert not inner.called


def test_a_streamed_body_is_stopped_at_the_limit() -> None:
    # given a chunked body of 100 chunks of 100 bytes, with no Content-Length
    inner, sender = Recorder(), Sender([b"x" * 100] * 100)

    answer = run(
        BodyLimitMiddleware(inner),
        http_scope("/api/v1/rooms/create/", [(b"transfer-encoding", b"chunked")]),
        sender,
    )

    # then reading stopped with the chunk that passed the limit
    assert answer.status == 413
    assert sender.read == LIMIT // 100 + 1
    assert not inner.called


def test_a_streamed_body_within_the_limit_reaches_the_app_with_its_length() -> None:
    inner, sender = Recorder(), Sender([b'{"name": ', b'"Rates"}'])

    answer = run(
        BodyLimitMiddleware(inner),
        http_scope("/api/v1/rooms/create/", [(b"transfer-encoding", b"chunked")]),
        sender,
    )

    assert answer.status == 200
    assert inner.body == b'{"name": "Rates"}'
    headers = dict(inner.scope["headers"])
    assert headers[b"content-length"] == b"17"
    assert b"transfer-encoding" not in headers


def test_a_portal_path_is_refused_in_plain_text() -> None:
    answer = run(
        BodyLimitMiddleware(Recorder()),
        http_scope("/accounts/sign-in/", [(b"content-length", str(10 * MiB).encode())]),
        Sender([b""]),
    )

    assert answer.status == 413
    assert answer.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/uploads/",
        "/api/v1/uploads/abc/",
        "/api/v1/uploads/abc/def",
        "/api/v1/rooms/7/uploads/abc",
        "/api/v1/rooms/7/uploads",
        "/api/v1/uploadsx",
    ],
)
def test_a_path_near_the_upload_paths_that_no_upload_serves_is_limited_too(path: str) -> None:
    # given an unauthenticated 200 MB POST, declared, to a path that only looks like an
    # upload path: the upload application does not serve it, Django would
    sender = Sender([b"x" * MiB] * 200)

    answer = run(
        application,
        http_scope(path, [(b"content-length", str(200 * MiB).encode())]),
        sender,
    )

    # then it is refused at once, nothing read
    assert answer.status == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert sender.read == 0


def test_an_upload_path_is_served_by_its_own_application_under_its_own_limit() -> None:
    # given upload bytes over the JSON limit, sent without a token to an upload's path
    sender = Sender([b"x" * LIMIT] * 3)

    answer = run(
        application,
        http_scope(
            "/api/v1/uploads/abc",
            [(b"content-length", str(LIMIT * 3).encode()), (b"tus-resumable", b"1.0.0")],
            method="PATCH",
        ),
        sender,
    )

    # then the upload application answers it, not this limit: it asks for credentials
    assert answer.status == 401, answer.body
    assert json.loads(answer.body)["code"] == "not_authenticated"
    assert sender.read == 0


@pytest.fixture
def token(transactional_db: None) -> str:
    """A write token of a user who may create rooms (the real stack serves in threads)."""
    user = make_room_admin(username="integrator")
    _, secret = api_token_create(actor=user, name="ci", scope="write")
    return secret


def test_a_chunked_json_body_is_read_not_treated_as_empty(token: str) -> None:
    # given a JSON body sent with chunked transfer coding through the real stack
    secret = token
    sender = Sender([b'{"name": "Chun', b'ked desk"}'])

    answer = run(
        application,
        http_scope(
            "/api/v1/rooms/create/",
            [
                (b"transfer-encoding", b"chunked"),
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {secret}".encode()),
            ],
        ),
        sender,
    )

    # then the room is created from it
    assert answer.status == 201, answer.body
    assert json.loads(answer.body)["name"] == "Chunked desk"
    names = asyncio.run(
        database_sync_to_async(lambda: list(Room.objects.values_list("name", flat=True)))()
    )
    assert names == ["Chunked desk"]


def test_a_declared_json_body_over_the_limit_never_reaches_the_view(
    token: str,
) -> None:
    secret = token
    body = json.dumps({"name": "x" * 2 * LIMIT}).encode()

    answer = run(
        application,
        http_scope(
            "/api/v1/rooms/create/",
            [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {secret}".encode()),
            ],
        ),
        Sender([body]),
    )

    assert answer.status == 413
    assert not Room.objects.exists()


def test_the_proxy_template_refuses_large_bodies_except_on_upload_paths() -> None:
    # given the nginx template shipped for deployments
    import re
    from pathlib import Path

    from safechat import settings  # the values as configured, not as a test overrides them

    conf = (Path(settings.BASE_DIR) / "deploy" / "nginx" / "safechat.conf").read_text()
    server = conf[conf.index("listen 443") :]
    uploads = re.search(r"location ~ (\S+) \{(.*?)\n    \}", server, re.S)
    assert uploads is not None
    outside = server.replace(uploads.group(0), "")

    # then the app's routes are buffered, under a limit close above the application's
    size = re.search(r"client_max_body_size (\d+)m;", outside)
    assert size is not None
    assert settings.SAFECHAT_MAX_BODY_BYTES < int(size.group(1)) * MiB <= 4 * MiB
    assert "proxy_request_buffering on;" in outside
    assert "proxy_request_buffering off;" not in outside
    # and exactly the paths the upload application serves stream unbuffered
    assert "proxy_request_buffering off;" in uploads.group(2)
    assert uploads.group(1) == UPLOAD_PATHS.pattern
    for path in ["/api/v1/rooms/7/uploads/", "/api/v1/uploads/abc"]:
        assert re.match(uploads.group(1), path)
    # and no response is written to nginx's temporary files: a download is plaintext
    assert "proxy_max_temp_file_size 0;" in outside
    for path in ["/api/v1/rooms/7/messages/", "/api/v1/uploadsx", "/api/v1/uploads/"]:
        assert not re.match(uploads.group(1), path)
