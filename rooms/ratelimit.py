"""Per-user posting limit, counted in the shared cache (Redis in production)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from rooms.errors import RateLimitedError


def post_rate_check(*, user_id: int) -> None:
    """Count one post for ``user_id``; raise RateLimitedError past the configured rate."""
    limit, window = settings.SAFECHAT_POST_RATE_LIMIT
    bucket = int(time.time() // window)
    key = f"rooms:post-rate:{user_id}:{bucket}"
    cache.add(key, 0, timeout=window * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window * 2)
        count = 1
    if count > limit:
        raise RateLimitedError(retry_after=int(window - time.time() % window) + 1)
