"""Unwrapped keys, kept briefly in this process's memory only.

Never in Redis, the database, the session or a task argument: the cache is a
plain dict with a time-to-live (``SAFECHAT_KEY_CACHE_SECONDS``). Authorisation
never rests on it alone: selectors check membership before anything is decrypted, and
a socket opens a new message from it only while subscribed to the room. A shred or a
removal evicts the entries it concerns in every process after commit
(``safechat.keyring.events``); with several processes the cache answers only while this
process is subscribed to those evictions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.conf import settings

from safechat import metrics
from safechat.keyring import events

V = TypeVar("V")


class KeyCache(Generic[V]):
    """One cache; its look-ups count as hits and misses under ``name`` (safechat.metrics)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        if not events.caching_allowed():
            return None
        value = self._get(key)
        metrics.key_cache_looked_up(self.name, hit=value is not None)
        return value

    def _get(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires < time.monotonic():
                del self._entries[key]
                return None
            return value

    def put(self, key: Hashable, value: V) -> None:
        ttl = float(settings.SAFECHAT_KEY_CACHE_SECONDS)
        if ttl <= 0 or not events.caching_allowed():
            return
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, value)

    def discard_where(self, predicate: Callable[[Hashable], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
