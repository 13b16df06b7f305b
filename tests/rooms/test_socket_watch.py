"""The socket watch: one read per interval for all of a loop's sockets, verdicts to each."""

from __future__ import annotations

import asyncio

import pytest
from pytest_django import Settings

from accounts.session_policy import DEACTIVATED, UNAVAILABLE, SessionVerdict
from rooms.socket_watch import TICKS_PER_INTERVAL, SocketWatch

pytestmark = pytest.mark.asyncio


class FakeSocket:
    def __init__(self, session_id: int) -> None:
        self.session_id: int | None = session_id
        self.verdicts: list[SessionVerdict] = []

    def verdict_noted(self, verdict: SessionVerdict) -> bool:
        return False  # always the full path, so that every verdict is recorded

    async def verdict_arrived(self, verdict: SessionVerdict) -> None:
        self.verdicts.append(verdict)


async def test_every_session_is_read_once_an_interval_and_each_socket_hears_its_own(
    settings: Settings,
) -> None:
    # given twenty sockets of twenty sessions (session 2 refused), one interval of 0.2 s
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.2
    reads: list[list[int]] = []

    async def read(ids: list[int]) -> dict[int, SessionVerdict]:
        reads.append(sorted(ids))
        return {i: SessionVerdict(reason=DEACTIVATED if i == 2 else None, row=None) for i in ids}

    watch = SocketWatch(read)
    sockets = [FakeSocket(i) for i in range(1, 21)]
    for socket in sockets:
        watch.add(socket)

    # when a little more than one interval passes
    await asyncio.sleep(0.26)

    # then every session was read, and each socket heard its own verdict
    assert {i for ids in reads for i in ids} == set(range(1, 21))
    assert max(len(ids) for ids in reads) <= -(-20 // TICKS_PER_INTERVAL)
    assert sockets[1].verdicts[0].reason == DEACTIVATED
    assert all(v.reason is None for s in sockets if s.session_id != 2 for v in s.verdicts)
    for socket in sockets:
        watch.discard(socket)


async def test_a_failed_read_fails_every_socket_closed(settings: Settings) -> None:
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.05

    async def read(ids: list[int]) -> dict[int, SessionVerdict]:
        raise ConnectionError("database unreachable")

    watch = SocketWatch(read)
    socket = FakeSocket(7)
    watch.add(socket)

    await asyncio.sleep(0.08)

    assert socket.verdicts[0].reason == UNAVAILABLE
    watch.discard(socket)


async def test_a_discarded_socket_hears_nothing_and_the_watch_stops(settings: Settings) -> None:
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.05
    reads: list[list[int]] = []

    async def read(ids: list[int]) -> dict[int, SessionVerdict]:
        reads.append(ids)
        return {i: SessionVerdict(reason=None, row=None) for i in ids}

    watch = SocketWatch(read)
    socket = FakeSocket(3)
    watch.add(socket)
    watch.discard(socket)

    await asyncio.sleep(0.12)

    assert socket.verdicts == []
    assert reads == []


async def test_a_socket_failing_its_verdict_stops_neither_the_others_nor_the_watch(
    settings: Settings,
) -> None:
    # given a database that cannot be read, and one socket that fails to take its verdict
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.05

    async def read(ids: list[int]) -> dict[int, SessionVerdict]:
        raise ConnectionError("database unreachable")

    class Broken(FakeSocket):
        async def verdict_arrived(self, verdict: SessionVerdict) -> None:
            raise RuntimeError("the client is gone")

    watch = SocketWatch(read)
    broken, good = Broken(1), FakeSocket(2)
    watch.add(broken)
    watch.add(good)

    # when two intervals pass
    await asyncio.sleep(0.13)

    # then the good socket was told both times, and the watch is still running
    assert [v.reason for v in good.verdicts][:2] == [UNAVAILABLE, UNAVAILABLE]
    assert watch._task is not None
    assert not watch._task.done()
    watch.discard(broken)
    watch.discard(good)
