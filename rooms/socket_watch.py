"""One re-check for every open socket of an event loop, in one query per interval.

Each socket's right to live is re-derived from the database at least every
``SAFECHAT_SOCKET_RECHECK_SECONDS``. Doing that per socket would cost one query per
socket per interval (a thousand sockets at 10 s: a hundred queries a second); the
watch instead reads every watched session of the loop in one query (chunked), and
hands each socket the verdict on its own session. Sockets also re-check on their own
at their session's deadlines and before frames (rooms.consumers).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from django.conf import settings

from accounts.session_policy import UNAVAILABLE, SessionVerdict, session_verdicts
from rooms.socket.protocol import ClientGone

logger = logging.getLogger(__name__)

DELIVERY_SECONDS = 5.0  # a socket that cannot take its verdict in this long is logged


class Watched(Protocol):
    session_id: int | None

    def verdict_noted(self, verdict: SessionVerdict) -> bool:
        """Take an allowed verdict at once; False when the socket has more to do (a
        refusal to act on, groups to refresh), which ``verdict_arrived`` then does."""
        ...

    async def verdict_arrived(self, verdict: SessionVerdict) -> None: ...


# Each interval is covered in this many ticks, each reading a slice of the sessions. One
# tick an interval measured best (benchmarks/socket_recheck.py): ten slices of a hundred
# rows cost the deliveries more than one read of a thousand every ten seconds.
TICKS_PER_INTERVAL = 1


class SocketWatch:
    """The sockets of one event loop, by session id, and the task that re-checks them."""

    def __init__(self, read: Callable[[list[int]], Awaitable[dict[int, SessionVerdict]]]) -> None:
        self._read = read
        self._sockets: dict[int, set[Watched]] = {}
        self._queue: deque[int] = deque()  # session ids, in the order they are due
        self._task: asyncio.Task[None] | None = None

    def add(self, socket: Watched) -> None:
        if socket.session_id is None:
            raise ValueError("only a socket with a session is watched")
        if socket.session_id not in self._sockets:
            self._sockets[socket.session_id] = set()
            self._queue.append(socket.session_id)
        self._sockets[socket.session_id].add(socket)
        if self._task is None or self._task.done():
            # A fresh context: the watch serves every socket of the loop, so it must not
            # carry the acting context (address, user agent) of the socket that started it.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), context=contextvars.Context()
            )

    def discard(self, socket: Watched) -> None:
        if socket.session_id is None:
            return
        sockets = self._sockets.get(socket.session_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[socket.session_id]  # its queue entry is skipped later

    async def check_now(self, session_ids: list[int] | None = None) -> None:
        """Read the given (default: every) watched session once and deliver the verdicts.

        Raises only if the read fails; a socket failing to take its verdict is logged.
        """
        ids = [sid for sid in (session_ids or list(self._sockets)) if sid in self._sockets]
        if not ids:
            return
        verdicts = await self._read(ids)
        await self._deliver(
            [(socket, verdicts[sid]) for sid in ids for socket in self._sockets.get(sid, ())]
        )

    async def _deliver(self, pairs: list[tuple[Watched, SessionVerdict]]) -> None:
        """Each socket takes its verdict on its own: an allowed one at once, anything more
        concurrently and within a time limit, so one slow or failing socket neither
        delays nor stops the others."""

        async def one(socket: Watched, verdict: SessionVerdict) -> None:
            try:
                async with asyncio.timeout(DELIVERY_SECONDS):
                    await socket.verdict_arrived(verdict)
            except ClientGone:
                logger.info("socket ended: the client went away before its verdict reached it")
            except Exception:
                logger.exception("a socket failed to take its verdict")

        more = []
        for socket, verdict in pairs:
            try:
                if socket.verdict_noted(verdict):
                    continue
            except Exception:
                logger.exception("a socket failed to take its verdict")
                continue
            more.append(one(socket, verdict))
        if more:
            await asyncio.gather(*more)

    def _due_slice(self) -> list[int]:
        """The sessions whose turn it is: a TICKS_PER_INTERVAL-th of them, in turn."""
        size = -(-len(self._sockets) // TICKS_PER_INTERVAL)  # ceiling
        due: list[int] = []
        while self._queue and len(due) < size:
            session_id = self._queue.popleft()
            if session_id in self._sockets:
                due.append(session_id)
                self._queue.append(session_id)
        return due

    async def _run(self) -> None:
        # Never ends while sockets are watched: every failure is logged and the loop
        # goes on, so re-checks and group refreshes never stop silently.
        while self._sockets:
            interval = float(settings.SAFECHAT_SOCKET_RECHECK_SECONDS)
            await asyncio.sleep(interval / TICKS_PER_INTERVAL)
            due = self._due_slice()
            try:
                await self.check_now(due)
            except Exception:
                # The database is unreachable: fail closed, every socket is told.
                logger.exception("socket re-check failed")
                failed = SessionVerdict(reason=UNAVAILABLE, row=None)
                await self._deliver(
                    [(socket, failed) for sockets in self._sockets.values() for socket in sockets]
                )


_watches: dict[asyncio.AbstractEventLoop, SocketWatch] = {}


def socket_watch(read: Callable[[list[int]], Awaitable[dict[int, SessionVerdict]]]) -> SocketWatch:
    """The watch of the running event loop (one per loop: sockets never change loops)."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        for old in [other for other in _watches if other.is_closed()]:
            del _watches[old]
        watch = _watches[loop] = SocketWatch(read)
    return watch


__all__ = ["SocketWatch", "Watched", "session_verdicts", "socket_watch"]
