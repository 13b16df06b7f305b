"""The socket's frame protocol: reading a client frame, answering mistakes, pacing.

A client frame is a JSON object with a ``type`` (docs/realtime.md lists them). What a
client gets wrong is a :class:`ClientError` (or one of the domain exceptions mapped in
:func:`frame_answered`) and becomes an ``error`` frame: the socket stays open. Flooding
is counted here too (:class:`FloodCounter`); closing a flooding socket is the
consumer's decision.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from rooms.errors import RateLimitedError
from safechat.events import Event
from safechat.keyring.errors import IntegrityFailure

logger = logging.getLogger(__name__)

# A client that floods the socket gets error frames, then is disconnected.
FRAMES_PER_WINDOW = 40
FRAME_WINDOW_SECONDS = 5.0
FLOOD_STRIKES_BEFORE_CLOSE = 3
CLOSE_FLOODING = 4429
SYNC_PAGE = 100  # messages per room per sync frame
SYNC_ROOMS_PER_FRAME = 20  # a frame's cost is bounded: at most 20 rooms x 100 messages
# Catch-up is paced, not refused: a socket is served at most SYNC_BUDGET rooms and
# messages in any SYNC_WINDOW seconds; a sync frame past that waits its turn. A client
# following ``more`` is never closed for it, and one socket cannot take a core with it.
SYNC_BUDGET = 600
SYNC_WINDOW = 5.0
TYPING_MIN_INTERVAL = 2.0
PRESENCE_REFRESH = 10.0  # seconds between heartbeats pushing this socket's expiry forward

Send = Callable[[dict[str, Any]], Awaitable[None]]


class ClientGone(Exception):
    """The client went away while the server was sending to it (a closed tab, a lost
    network). The ASGI specification has the server's ``send`` raise an ``OSError``
    subclass on a closed connection (uvicorn's ``ClientDisconnected``); the consumer
    turns that into this, which is normal and logged without a traceback."""


class ClientError(Exception):
    """A frame the client got wrong: answered with an ``error`` frame of ``code``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def frame_id(content: dict[str, Any], name: str) -> int:
    """The id in ``content[name]`` (an int, or a string of digits); raises ClientError."""
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ClientError("bad_frame", f"{name} must be an id")
    try:
        return int(value)
    except ValueError:
        raise ClientError("bad_frame", f"{name} must be an id") from None


def frame_text(content: dict[str, Any]) -> str:
    """The frame's ``text``; raises ClientError unless it is a string."""
    text = content.get("text")
    if not isinstance(text, str):
        raise ClientError("bad_frame", "text must be a string")
    return text


def frame_client_id(content: dict[str, Any]) -> str | None:
    """The frame's ``client_id`` as echoed back (at most 64 characters), if it is a string."""
    client_id = content.get("client_id")
    return client_id[:64] if isinstance(client_id, str) else None


def error_frame(
    content: dict[str, Any] | None, code: str, detail: str, **extra: int
) -> dict[str, Any]:
    """The ``error`` frame answering ``content`` (None: no frame could be read). Every
    error answering a frame that carried a ``client_id`` carries it back, so a client
    can tell which of its posts was refused; ``extra`` adds ``room_id`` or
    ``retry_after`` (docs/realtime.md, "Frames")."""
    frame: dict[str, Any] = {"type": Event.ERROR, "code": code, "detail": detail, **extra}
    client_id = frame_client_id(content) if content is not None else None
    if client_id is not None:
        frame["client_id"] = client_id
    return frame


async def frame_answered(
    send: Send, content: dict[str, Any], handler: Callable[[], Awaitable[None]]
) -> None:
    """Run ``handler`` for the frame ``content``; whatever it raises becomes an error frame
    (the socket stays). Codes: docs/realtime.md, "Frames"."""
    try:
        await handler()
    except ClientGone:
        raise  # nobody to answer: the consumer ends the socket
    except ClientError as exc:
        await send(error_frame(content, exc.code, exc.detail))
    except Http404:
        await send(error_frame(content, "not_found", "no such room or message"))
    except PermissionDenied as exc:
        await send(error_frame(content, "forbidden", str(exc) or "not allowed"))
    except ValidationError as exc:
        await send(error_frame(content, "invalid", "; ".join(exc.messages)))
    except RateLimitedError as exc:
        await send(error_frame(content, "rate_limited", str(exc), retry_after=exc.retry_after))
    except IntegrityFailure:  # reported (logged, audited once) where it was raised
        await send(
            error_frame(
                content,
                "integrity_failure",
                "stored data failed its integrity check; the security team is notified",
            )
        )
    except Exception:
        # Whatever else went wrong is ours, not the client's: say so, keep the socket.
        logger.exception("socket frame %s failed", content["type"])
        await send(error_frame(content, "server_error", "the server could not handle this frame"))


class FloodCounter:
    """Frames seen in the last FRAME_WINDOW_SECONDS, and the strikes for exceeding them."""

    def __init__(self) -> None:
        self._frames: list[float] = []
        self.strikes = 0

    def over(self, weight: int = 1) -> bool:
        """Count ``weight`` frames' worth now; True (and one strike more) when over the limit."""
        now = time.monotonic()
        self._frames = [t for t in self._frames if now - t < FRAME_WINDOW_SECONDS]
        self._frames.extend([now] * weight)
        if len(self._frames) <= FRAMES_PER_WINDOW:
            return False
        self.strikes += 1
        return True

    def retry_after(self) -> int:
        """Whole seconds (at least 1) until the window holds no more than the limit again."""
        excess = len(self._frames) - FRAMES_PER_WINDOW
        if excess <= 0:
            return 1
        frees_at = self._frames[excess - 1] + FRAME_WINDOW_SECONDS
        return max(1, math.ceil(frees_at - time.monotonic()))


class SyncPacer:
    """Catch-up spent by one socket: at most SYNC_BUDGET rooms and messages per SYNC_WINDOW."""

    def __init__(self) -> None:
        self._spent: list[tuple[float, int]] = []  # (when, rooms and messages served)

    def spend(self, cost: int) -> None:
        self._spent.append((time.monotonic(), cost))

    async def turn(self) -> None:
        """Wait until what was spent in the last SYNC_WINDOW seconds is under SYNC_BUDGET
        (a room costs one, plus one per message sent)."""
        while True:
            now = time.monotonic()
            self._spent = [(t, c) for t, c in self._spent if now - t < SYNC_WINDOW]
            if sum(c for _, c in self._spent) < SYNC_BUDGET:
                return
            await asyncio.sleep(SYNC_WINDOW - (now - self._spent[0][0]))
