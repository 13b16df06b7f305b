"""Counting events per fixed time window in the shared cache (Redis in production)."""

from __future__ import annotations

import time

from django.core.cache import caches

from safechat.shared_cache import redis_keys


def window_count(name: str, *, window: int) -> tuple[int, int]:
    """Count one event under ``name`` in the current ``window``-second window.

    Returns (the count so far in this window, seconds until the window ends).
    """
    key, seconds_left = _window(name, window)
    return _incr(key, ttl=window * 2), seconds_left


def window_peek(name: str, *, window: int) -> tuple[int, int]:
    """Like ``window_count`` without counting: (the count so far, seconds left)."""
    key, seconds_left = _window(name, window)
    return int(caches["default"].get(key, 0)), seconds_left


def _window(name: str, window: int) -> tuple[str, int]:
    """The key of ``name``'s current window and the seconds until that window ends."""
    now = time.time()
    return f"{name}:{int(now // window)}", int(window - now % window) + 1


def _incr(key: str, *, ttl: int) -> int:
    """Add one to ``key`` and return the new count; the key expires ``ttl`` s after its last use."""
    redis = redis_keys(key)
    if redis is not None:
        # One round trip; Django's add-then-incr would take three.
        client, (redis_key,) = redis
        pipe = client.pipeline(transaction=False)
        pipe.incr(redis_key)
        pipe.expire(redis_key, ttl)
        count, _ = pipe.execute()
        return int(count)
    cache = caches["default"]
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1
