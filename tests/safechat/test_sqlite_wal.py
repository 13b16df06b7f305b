"""SQLite's write-ahead log outlives each request's connection (safechat/sqlite_wal.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from django.db import connection

from safechat import sqlite_wal


def _database(path: Path) -> Path:
    with sqlite3.connect(path) as made:
        made.execute("PRAGMA journal_mode=WAL")
        made.execute("CREATE TABLE t (n INTEGER)")
    made.close()
    return path


def _one_request(path: Path) -> None:
    """What a request does: open a connection, write once, close."""
    request = sqlite3.connect(path)
    with request:
        request.execute("INSERT INTO t VALUES (1)")
    request.close()


def test_without_a_holder_each_closing_connection_removes_the_log(tmp_path: Path) -> None:
    # given a database in WAL mode and nothing holding it
    path = _database(tmp_path / "alone.sqlite3")

    # when a request writes and closes its connection
    _one_request(path)

    # then the log was checkpointed and removed: the next request creates it again
    assert not Path(f"{path}-wal").exists()


def test_a_held_log_stays_across_requests_and_loses_nothing(tmp_path: Path) -> None:
    # given a database whose log the process holds
    path = _database(tmp_path / "held.sqlite3")
    assert sqlite_wal.wal_hold({"NAME": path})

    # when requests write and close their connections
    for _ in range(3):
        _one_request(path)

    # then the log is still there (no checkpoint and re-creation per request) and every
    # write is read back by a new connection
    assert Path(f"{path}-wal").exists()
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (3,)
    reader.close()
    # a second call for the same file opens nothing more
    assert sqlite_wal.wal_hold({"NAME": str(path)})
    assert sum(1 for pid, held in sqlite_wal._held if held == str(path)) == 1


@pytest.mark.parametrize("name", [":memory:", "", "file:memorydb_default?mode=memory&cache=shared"])
def test_an_in_memory_database_is_not_held(name: str) -> None:
    assert sqlite_wal.wal_hold({"NAME": name}) is False


def test_a_database_not_created_yet_is_not_created_by_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "later.sqlite3"

    assert sqlite_wal.wal_hold({"NAME": path}) is False
    assert not path.exists()


@pytest.mark.django_db
def test_the_projects_sqlite_database_is_held_once_connected() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the holder is for the embedded SQLite database")
    connection.ensure_connection()

    name = os.path.abspath(str(connection.settings_dict["NAME"]))
    assert (os.getpid(), name) in sqlite_wal._held
