"""One rate limiter for the whole project: a moving window, shared through Redis.

The algorithm is the ``limits`` library's moving window: at most N events in *any*
S seconds, so no window boundary lets twice the limit through. With ``REDIS_URL``
the counts live in Redis, shared by every process; without it, in this process.

Redis is a convenience here, never a dependency of a write: when it cannot be
reached at call time the limiter counts in this process instead (a warning is
logged, and Redis is tried again after ``REDIS_RETRY_SECONDS``), so an outage never
refuses or fails a post; it only makes the limit per process for its duration.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from safechat import metrics

logger = logging.getLogger(__name__)

KEY_PREFIX = "safechat:rate"
# A limiter must answer fast: a Redis that does not answer within this is "down".
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` events in any ``seconds`` seconds."""

    limit: int
    seconds: int

    @classmethod
    def of(cls, value: tuple[int, int]) -> Rate:
        """From a ``(N, S)`` setting (``safechat.environment.rate_limit``)."""
        return cls(limit=value[0], seconds=value[1])

    def item(self) -> RateLimitItemPerSecond:
        return RateLimitItemPerSecond(self.limit, self.seconds)


@dataclass(frozen=True)
class RateState:
    """What a limit looked like right after a request counted against it: the
    ``policy`` name, its quota (``limit`` in any ``seconds``), the events ``remaining``
    and the whole ``reset`` seconds until the oldest counted event leaves the moving
    window (one more is allowed then, if none remain now)."""

    policy: str
    limit: int
    seconds: int
    remaining: int
    reset: int


rate_states: ContextVar[dict[str, RateState] | None] = ContextVar("rate_states", default=None)
"""The limits the request being served counted against, by policy (None: not observed)."""


@contextmanager
def rate_states_observed() -> Iterator[dict[str, RateState]]:
    """Collect, for the block, the state of every named limit it counts against
    (the API sends them as ``RateLimit`` headers)."""
    states: dict[str, RateState] = {}
    token = rate_states.set(states)
    try:
        yield states
    finally:
        rate_states.reset(token)


class _Limiter:
    """The moving-window limiter on Redis, falling back to memory while Redis is down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        self._redis_url: str | None = None
        self._redis_down_until = 0.0

    def _shared(self) -> MovingWindowRateLimiter | None:
        """The Redis limiter, unless Redis is not configured or recently failed."""
        url = settings.REDIS_URL
        if not url or time.monotonic() < self._redis_down_until:
            return None
        with self._lock:
            if self._redis is None or self._redis_url != url:
                storage = RedisStorage(
                    url,
                    key_prefix=KEY_PREFIX,
                    wrap_exceptions=True,
                    socket_timeout=REDIS_TIMEOUT_SECONDS,
                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                )
                self._redis, self._redis_url = MovingWindowRateLimiter(storage), url
            return self._redis

    def _failed(self, exc: Exception) -> None:
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        logger.warning("rate limits counted in this process: Redis unreachable (%s)", exc)

    def _strategies(self) -> list[MovingWindowRateLimiter]:
        shared = self._shared()
        return [shared, self._memory] if shared is not None else [self._memory]

    def hit(self, rate: Rate, *key: str, policy: str | None = None) -> int | None:
        """Count one event; None if allowed, else the seconds until one more would be.
        With a ``policy`` name, the limit's state afterwards is observed (``rate_states``)."""
        for strategy in self._strategies():
            try:
                allowed = strategy.hit(rate.item(), *key)
                return self._answer(strategy, rate, key, allowed=allowed, policy=policy)
            except Exception as exc:  # any storage failure: count in memory instead
                if strategy is self._memory:
                    raise
                self._failed(exc)
        raise AssertionError("unreachable: the memory limiter always answers")  # pragma: no cover

    def over(self, rate: Rate, *key: str, policy: str | None = None) -> int | None:
        """Without counting: None if one more event is allowed, else the seconds to wait.
        With a ``policy`` name, the limit's state is observed (``rate_states``)."""
        for strategy in self._strategies():
            try:
                allowed = strategy.test(rate.item(), *key)
                return self._answer(strategy, rate, key, allowed=allowed, policy=policy)
            except Exception as exc:
                if strategy is self._memory:
                    raise
                self._failed(exc)
        raise AssertionError("unreachable: the memory limiter always answers")  # pragma: no cover

    @staticmethod
    def _answer(
        strategy: MovingWindowRateLimiter,
        rate: Rate,
        key: tuple[str, ...],
        *,
        allowed: bool,
        policy: str | None,
    ) -> int | None:
        """None if ``allowed``, else the whole seconds to wait; the state observed under
        ``policy`` (one reading of the window, so ``Retry-After`` and ``t`` agree)."""
        if allowed and policy is None:
            return None
        stats = strategy.get_window_stats(rate.item(), *key)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        states = rate_states.get()
        if policy is not None and states is not None:
            states[policy] = RateState(
                policy=policy,
                limit=rate.limit,
                seconds=rate.seconds,
                remaining=max(0, stats.remaining),
                reset=reset,
            )
        return None if allowed else max(1, reset)

    def reset(self) -> None:
        """Forget every count (tests; the Redis keys of this prefix only)."""
        self._memory.storage.reset()
        self._redis_down_until = 0.0
        shared = self._shared()
        if shared is not None:
            try:
                shared.storage.reset()
            except Exception as exc:
                self._failed(exc)


_limiter = _Limiter()


def rate_hit(rate: Rate, *key: str, policy: str | None = None) -> int | None:
    """Count one event under ``key``; None while within ``rate``, else the seconds to wait.

    ``policy`` names the limit to the client: the state after counting is kept for the
    request being served (``rate_states_observed``), so the API can report it. A refusal
    counts in ``safechat_rate_limit_refusals_total`` under ``policy``, else ``key[0]``:
    names in the code (every caller's first key part is one), never a person's or a room's."""
    wait = _limiter.hit(rate, *key, policy=policy)
    if wait is not None:
        metrics.rate_limit_refused(policy or (key[0] if key else "-"))
    return wait


def rate_exceeded(rate: Rate, *key: str, policy: str | None = None) -> int | None:
    """Like ``rate_hit`` without counting: None if one more event is allowed."""
    return _limiter.over(rate, *key, policy=policy)


def rate_limits_reset() -> None:
    """Forget every count (for tests)."""
    _limiter.reset()
