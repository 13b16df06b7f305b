"""The compliance app's two locks (docs/architecture.md, "Locks and transactions").

* **The retention run lock**: one run works at a time. On PostgreSQL, a session-level
  advisory lock held for the whole run (a killed run's connection drops it at once); the
  run's row (state ``running``, a partial unique constraint) is the record either way,
  and on SQLite its lease says whether the run is alive.
* **The legal-hold ledger lock**: placing or releasing a hold takes it exclusively, and
  every transaction that destroys content (a purge batch, a shred) takes it shared,
  before any room: so what a purge decides is held stays held until it commits. First
  in the project's lock order. On SQLite, ``BEGIN IMMEDIATE`` already serialises every
  writer, so neither advisory lock is needed there.
"""

from __future__ import annotations

from django.db import connection

# Advisory lock keys ("RETN", "HOLD"); the audit chain uses its own.
RUN_LOCK_KEY = 0x5245544E
LEDGER_LOCK_KEY = 0x484F4C44


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


def run_lock_try() -> bool:
    """Take the run lock for this connection's session; False if another run holds it.
    Always True on SQLite (the run's lease decides there)."""
    if not _postgresql():
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK_KEY])
        row = cursor.fetchone()
    return bool(row and row[0])


def run_lock_release() -> None:
    if not _postgresql():
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK_KEY])


def ledger_lock_shared() -> None:
    """Until the transaction ends, no hold is placed or released."""
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [LEDGER_LOCK_KEY])


def ledger_lock_exclusive() -> None:
    """Wait for every purge batch and shred in progress, and keep new ones out until the
    transaction ends."""
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_LOCK_KEY])
