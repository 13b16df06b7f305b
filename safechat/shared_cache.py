"""Direct Redis access behind the default cache, for what Django's cache API lacks
(pipelines, hashes). The cache is ``django-redis``'s backend when ``REDIS_URL`` is set;
its public ``get_redis_connection`` hands out the client, so no private attribute of a
backend is read here."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django_redis import get_redis_connection
from django_redis.cache import RedisCache


def redis_keys(*names: str) -> tuple[Any, list[str]] | None:
    """The Redis client behind the default cache and ``names`` as its full (prefixed,
    versioned) keys, as ``cache.make_key`` builds them; None when the cache is not Redis
    (the embedded default)."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        return None
    keys = [str(cache.make_key(name)) for name in names]
    # The primary (write=True): every key is on it, and reads see the writes just made.
    return get_redis_connection("default", write=True), keys
