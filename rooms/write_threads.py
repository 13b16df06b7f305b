"""The threads that run posts sent over sockets.

Channels runs every ``database_sync_to_async`` call of a process on one thread, so a
slow post would hold up every other socket's. Posts go instead to one of
``SAFECHAT_SOCKET_WRITE_THREADS`` single-thread executors, chosen by room: rooms post
side by side, each on its own database connection, while one room's posts stay in
order from commit to broadcast (the per-loop outbox in ``safechat.events`` keeps the
order in which each thread hands them over).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import connections

_executors: list[ThreadPoolExecutor] = []
_lock = threading.Lock()


def _executor_for(room_id: int) -> ThreadPoolExecutor:
    with _lock:
        if not _executors:
            count = max(1, int(settings.SAFECHAT_SOCKET_WRITE_THREADS))
            _executors.extend(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"room-writer-{n}")
                for n in range(count)
            )
        return _executors[room_id % len(_executors)]


def in_room_thread(room_id: int, func: Callable[..., Any]) -> Any:
    """``func`` as a coroutine function that runs on ``room_id``'s writer thread, which
    closes stale database connections around each call as ``database_sync_to_async`` does.
    """
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_executor_for(room_id))


def close_connections() -> None:
    """Close every writer thread's database connection now (for tests, where channels'
    test communicator turns off the closing after each call).
    """
    with _lock:
        executors = list(_executors)
    for executor in executors:
        executor.submit(connections.close_all).result()
