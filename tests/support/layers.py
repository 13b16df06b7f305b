"""Inspecting and ageing channel-layer group memberships, on Redis or in memory."""

from __future__ import annotations

import time
from typing import Any


def _redis(layer: Any, group: str) -> tuple[Any, str] | None:
    if not hasattr(layer, "_group_key"):
        return None
    return layer.connection(layer.consistent_hash(group)), layer._group_key(group)


async def in_group(layer: Any, group: str, channel: str) -> bool:
    """Whether ``channel`` is in ``group`` and not past the layer's group expiry."""
    horizon = time.time() - layer.group_expiry
    redis = _redis(layer, group)
    if redis is None:
        joined = layer.groups.get(group, {}).get(channel)
        return joined is not None and joined > horizon
    connection, key = redis
    score = await connection.zscore(key, channel)
    return score is not None and float(score) > horizon


async def age_membership(layer: Any, group: str, channel: str, *, seconds: float) -> None:
    """Move ``channel``'s join time in ``group`` back by ``seconds`` (simulating time)."""
    redis = _redis(layer, group)
    if redis is None:
        layer.groups[group][channel] -= seconds
        return
    connection, key = redis
    score = await connection.zscore(key, channel)
    assert score is not None, f"{channel} is not in {group}"
    await connection.zadd(key, {channel: float(score) - seconds})
