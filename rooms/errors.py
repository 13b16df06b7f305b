"""Refusals specific to rooms; each maps to a clear 4xx or an error frame."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied


class BarrierViolationError(PermissionDenied):
    """An information barrier forbids these people sharing a room."""


class RateLimitedError(Exception):
    """The user wrote faster than their budget allows (rooms/ratelimit.py)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many changes; try again in {retry_after} s")
        self.retry_after = retry_after
