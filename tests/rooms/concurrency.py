"""Run calls at the same instant in real threads, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, connections

JOIN_SECONDS = 120


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None


def run_together(*calls: Callable[[], Any]) -> list[Outcome]:
    """Start one thread per call, release them together, and return each one's outcome."""
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index].value = calls[index]()
        except BaseException as exc:
            outcomes[index].error = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_SECONDS)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (a deadlock?)"
    return outcomes


def postgresql_only(reason: str) -> pytest.MarkDecorator:
    """Skip on SQLite, whose write transactions are serialised as a whole."""
    return pytest.mark.skipif(
        connection.vendor != "postgresql", reason=f"PostgreSQL row locks are the point: {reason}"
    )
