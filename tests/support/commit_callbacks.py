"""What a transaction queued for after its commit, without the metrics' own counting."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from safechat import metrics


def broadcasts(queued: Iterable[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """The callbacks of ``queued`` (from ``django_capture_on_commit_callbacks``) other than
    counting a committed audit event in the metrics: the broadcasts and tasks a change
    sends once it commits."""
    return [
        c
        for c in queued
        if not (isinstance(c, functools.partial) and c.func is metrics.action_committed)
    ]
