"""The socket watch: one read per interval for all of a loop's sockets, verdicts to each."""

from __future__ import annotations

import asyncio

import pytest
from pytest_django import Settings

from accounts.session_policy import DEACTIVATED, UNAVAILABLE, SessionVerdict
from rooms.socket_watch import SocketWatch

pytestmark = pytest.mark.asyncio


class FakeSocket:
    def __init__(self, session_id: int) -> None:
        self.session_id: int | None = session_id
        self.verdicts: list[SessionVerdict] = []

    async def verdict_arrived(self, verdict: SessionVerdict) -> None:
        self.verdicts.append(verdict)


async def test_one_read_serves_every_socket_and_each_gets_its_own_sessions_verdict(
    settings: Settings,
) -> None:
    # given three sockets of two sessions, and a reader that refuses session 2
    settings.SAFECHAT_SOCKET_RECHECK_SECONDS = 0.05
    reads: list[list[int]] = []

    async def read(ids: list[int]) -> dict[int, SessionVerdict]:
        reads.append(sorted(ids))
        return {i: SessionVerdict(reason=DEACTIVATED if i == 2 else None, row=None) for i in ids}

    watch = SocketWatch(read)
    sockets = [FakeSocket(1), FakeSocket(1), FakeSocket(2)]
    for socket in sockets:
        watch.add(socket)

    # when one interval passes
    await asyncio.sleep(0.08)

    # then one read asked for both sessions, and each socket heard its own verdict
    assert reads[0] == [1, 2]
    assert [v.reason for v in sockets[0].verdicts][:1] == [None]
    assert [v.reason for v in sockets[2].verdicts][:1] == [DEACTIVATED]
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
