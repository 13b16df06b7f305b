"""Posts from sockets run on per-room writer threads."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings

from rooms.write_threads import in_room_thread

# The writer threads close stale database connections around each call.
pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def _thread_name() -> str:
    return threading.current_thread().name


async def test_a_room_always_posts_on_the_same_thread_and_rooms_spread_over_all() -> None:
    count = int(settings.SAFECHAT_SOCKET_WRITE_THREADS)

    names = [await in_room_thread(room_id, _thread_name)() for room_id in range(2 * count)]

    assert names[:count] == names[count:]  # room r and room r + count share a thread
    assert len(set(names)) == count
    assert all(name.startswith("room-writer-") for name in names)
    assert threading.current_thread().name not in names
