"""The channel layer a socket listens on (channels-redis when REDIS_URL is set)."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

IDLE_SECONDS = 7  # past channels-redis' 5 s blocking pop and redis-py's 5 s default read timeout


@pytest.mark.asyncio
async def test_a_socket_with_nothing_to_receive_keeps_waiting() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()

    # An idle socket: nothing arrives for a while (before the fix, redis-py's read timeout
    # ended channels-redis' blocking pop with an error, which closed every idle socket).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), timeout=IDLE_SECONDS)

    await layer.send(channel, {"type": "still.here"})
    assert await asyncio.wait_for(layer.receive(channel), timeout=5) == {"type": "still.here"}
