"""The upload paths' own ASGI handler, mounted in front of Django (``safechat.asgi``).

Django's ASGI handler reads a whole request body into a ``SpooledTemporaryFile`` before
any view runs, and past ``FILE_UPLOAD_MAX_MEMORY_SIZE`` that is a plaintext file on disk.
For the tus paths this handler is Django's own, with one difference: the body is not read
before the view asks for it, and never spooled. The request goes through the same
middleware and DRF authentication as every API request (token, or session with CSRF and
the second factor), with an empty body; a PATCH carries an ``UploadBody`` that the view
pulls from ASGI ``receive()`` while it encrypts (files/api/views.py), a bounded couple of
MiB ahead of the encryption. Other methods on these paths carry no body: one that
announces a body is refused before Django sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import queue
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.core import signals
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from safechat.problems import PROBLEM_CONTENT_TYPE, problem

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # as safechat.body_limit: any ASGI 3 callable

UPLOAD_PATHS = re.compile(r"^/api/v1/(rooms/[^/]+/uploads/|uploads/[^/]+)$")
BODY_ATTRIBUTE = "safechat_upload_body"
# What ``UploadBody.pieces`` hands the encryptor at a time, at most about (bytes), and how
# many such batches the event loop may receive ahead of the encrypting thread.
PIECE_BYTES = 1024 * 1024
READ_AHEAD = 2


def is_upload_path(path: str) -> bool:
    return UPLOAD_PATHS.match(path) is not None


class UploadBody:
    """A request body read from ASGI ``receive()`` as the reader asks for it.

    ``pieces()`` is for a sync view running in a worker thread. Its first step starts a
    reader task on the event loop, which pulls ``http.request`` messages about
    ``PIECE_BYTES`` at a time and hands them over through a queue, at most
    ``READ_AHEAD`` batches ahead of the thread: receiving the next MiB overlaps encrypting
    and storing this one, and the thread waits for the loop only when it has outrun the
    client. Nothing is read before the view asks (a request refused before it streams
    leaves its body unread). It ends at the last message, or early when the client
    disconnects (``disconnected`` is then True). Memory: about
    ``(READ_AHEAD + 1) * PIECE_BYTES``. ``aclose()`` (the handler, after the response)
    stops a reader the view left behind.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.ended = False
        self.disconnected = False
        self._batches: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space: asyncio.Semaphore | None = None
        self._reader: asyncio.Task[None] | None = None

    async def next_piece(self) -> bytes | None:
        if self.ended:
            return None
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.ended = self.disconnected = True
            return None
        if not message.get("more_body", False):
            self.ended = True
        return bytes(message.get("body", b""))

    async def next_batch(self, limit: int) -> bytes | None:
        """Messages joined up to about ``limit`` bytes; None once the body has ended."""
        parts: list[bytes] = []
        size = 0
        while size < limit and (piece := await self.next_piece()) is not None:
            parts.append(piece)
            size += len(piece)
        return b"".join(parts) if parts else None

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._space = asyncio.Semaphore(READ_AHEAD)
        self._reader = self._loop.create_task(self._read_ahead(self._space))

    async def _read_ahead(self, space: asyncio.Semaphore) -> None:
        try:
            while True:
                await space.acquire()  # released by the thread as it takes a batch
                batch = await self.next_batch(PIECE_BYTES)
                if batch is None:
                    return
                self._batches.put(batch)
        except Exception:
            # receive() failed: the body ends here, as with a disconnect.
            self.ended = self.disconnected = True
        finally:
            self._batches.put(None)  # the thread never waits for a reader that is gone

    def _release(self) -> None:
        if self._space is not None:
            self._space.release()

    def pieces(self) -> Iterator[bytes]:
        if self._reader is None:
            async_to_sync(self._start)()
        loop = self._loop
        if loop is None:  # never: _start set it
            return
        while (batch := self._batches.get()) is not None:
            loop.call_soon_threadsafe(self._release)
            if batch:
                yield batch
        self._batches.put(None)  # the end stays the end for a second reader

    async def aclose(self) -> None:
        """Stop the reader task if the view did not read the body to its end."""
        reader = self._reader
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def _announces_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


class UploadHandler(ASGIHandler):
    """Django's ASGI handler for the upload paths, without reading the body ahead."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "PATCH" and _announces_body(scope):
            await _refuse(
                send,
                413,
                "body_not_allowed",
                "only PATCH carries upload bytes (creation-with-upload is not supported)",
                scope,
            )
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, io.BytesIO(b""))
        if request is None or error_response is not None:
            # Django's plain 400 (a header it cannot decode): answered as the API answers.
            await _refuse(send, 400, "bad_request", "the request was refused", scope)
            if error_response is not None:
                await sync_to_async(error_response.close)()
            return
        body = UploadBody(receive)
        setattr(request, BODY_ATTRIBUTE, body if scope["method"] == "PATCH" else None)
        try:
            response = await self.run_get_response(request)
        finally:
            await body.aclose()
        # tus 1.0.0: every answer says the protocol, refusals made by middleware included.
        if not response.has_header("Tus-Resumable"):
            response["Tus-Resumable"] = "1.0.0"
        with contextlib.suppress(asyncio.CancelledError):
            await self.send_response(response, send)
        await sync_to_async(response.close)()


async def _refuse(send: Send, status: int, code: str, detail: str, scope: Scope) -> None:
    """A problem document (RFC 9457) sent before Django sees the request."""
    document = problem(status=status, code=code, detail=detail, instance=scope.get("path", ""))
    payload = json.dumps(document, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"tus-resumable", b"1.0.0"),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def upload_mount(django_app: ASGIApp) -> ASGIApp:
    """An ASGI app: the upload paths to ``UploadHandler``, everything else to ``django_app``."""
    uploads = UploadHandler()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_upload_path(scope.get("path", "")):
            await uploads(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app
