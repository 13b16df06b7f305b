"""Per-user posting limit, counted in the shared cache (Redis in production)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from rooms.errors import RateLimitedError


def _count(key: str, *, ttl: int) -> int:
    """Add one to ``key`` and return the new count; the key expires ``ttl`` s after its last use."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        # One round trip on every post; Django's add-then-incr would take three.
        redis_key = cache.make_and_validate_key(key)
        client = cache._cache.get_client(redis_key, write=True)  # type: ignore[attr-defined]
        pipe = client.pipeline(transaction=False)
        pipe.incr(redis_key)
        pipe.expire(redis_key, ttl)
        count, _ = pipe.execute()
        return int(count)
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1


def post_rate_check(*, user_id: int) -> None:
    """Count one post for ``user_id``; raise RateLimitedError past the configured rate."""
    limit, window = settings.SAFECHAT_POST_RATE_LIMIT
    bucket = int(time.time() // window)
    count = _count(f"rooms:post-rate:{user_id}:{bucket}", ttl=window * 2)
    if count > limit:
        raise RateLimitedError(retry_after=int(window - time.time() % window) + 1)
