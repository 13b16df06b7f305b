"""Direct Redis access behind the default cache, for what Django's cache API lacks
(pipelines, hashes). One place reaches into Django's Redis backend."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


def redis_keys(*names: str) -> tuple[Any, list[str]] | None:
    """The Redis client behind the default cache and ``names`` as its full (prefixed,
    versioned) keys; None when the cache is not Redis (the embedded default)."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        return None
    keys = [cache.make_and_validate_key(name) for name in names]
    # Django's client for writes: the one primary, so every key is on it.
    client = cache._cache.get_client(keys[0] if keys else None, write=True)  # type: ignore[attr-defined]
    return client, keys
