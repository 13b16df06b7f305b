"""Drive the real ASGI application (``safechat.asgi``) with a body sent in pieces."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.test import Client


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        import json

        return json.loads(self.body)


async def asgi_call(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    pieces: Iterable[bytes] = (),
    disconnect: bool = False,
) -> Answer:
    """One request; ``disconnect`` ends the body with the client going away.

    ``path`` may carry a query string (``/x?a=1``), sent as the scope's query string.
    """
    from safechat.asgi import application

    path, _, query = path.partition("?")

    raw_headers = [(b"host", b"localhost")]
    raw_headers += [
        (k.lower().encode("latin1"), v.encode("latin1")) for k, v in (headers or {}).items()
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode("latin1"),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 40000),
        "server": ("localhost", 80),
    }
    body = iter(pieces)  # pulled as the server asks: a large body is never held whole
    finished = False
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal finished
        if not finished:
            piece = next(body, None)
            if piece is not None:
                return {"type": "http.request", "body": piece, "more_body": True}
            finished = True
            if disconnect:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    gone.set()
    start = next(m for m in sent if m["type"] == "http.response.start")
    return Answer(
        status=start["status"],
        headers={k.decode("latin1").lower(): v.decode("latin1") for k, v in start["headers"]},
        body=b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )


def call(method: str, path: str, **kwargs: Any) -> Answer:
    return asyncio.run(asgi_call(method, path, **kwargs))


def session_cookie_headers(client: Client) -> dict[str, str]:
    """The Cookie and CSRF headers a signed-in portal page would send."""
    client.get("/rooms/")  # sets the CSRF cookie
    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    token = client.cookies["csrftoken"].value if "csrftoken" in client.cookies else ""
    return {"Cookie": cookies, "X-CSRFToken": token, "Origin": "http://localhost"}
