"""Per-user posting limit, counted in the shared cache (Redis in production)."""

from __future__ import annotations

from django.conf import settings

from rooms.errors import RateLimitedError
from safechat.ratelimit import window_count


def post_rate_check(*, user_id: int) -> None:
    """Count one post for ``user_id``; raise RateLimitedError past the configured rate."""
    limit, window = settings.SAFECHAT_POST_RATE_LIMIT
    count, retry_after = window_count(f"rooms:post-rate:{user_id}", window=window)
    if count > limit:
        raise RateLimitedError(retry_after=retry_after)
