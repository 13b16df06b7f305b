"""Let pytest-django flush the database between transactional tests.

The audit tables refuse DELETE and TRUNCATE by trigger, so Django's flush (run
after every ``django_db(transaction=True)`` test) would fail. As the owner role
may, switch the triggers off for the flush only (audit.triggers.suspended).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from django.db import connections
from django.test import TransactionTestCase

from audit import triggers


@pytest.fixture(scope="session", autouse=True)
def _audit_tables_flushable() -> Iterator[None]:
    # A private hook of Django's test case, not in its type stubs.
    original = TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]

    def fixture_teardown(self: TransactionTestCase) -> Any:
        with ExitStack() as stack:
            for alias in self._databases_names(include_mirrors=False):  # type: ignore[attr-defined]
                stack.enter_context(triggers.suspended(connections[alias]))
            return original(self)

    TransactionTestCase._fixture_teardown = fixture_teardown  # type: ignore[attr-defined]
    yield
    TransactionTestCase._fixture_teardown = original  # type: ignore[attr-defined]
