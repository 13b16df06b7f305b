"""SQLite's write-ahead log kept for the process's life (the embedded default only).

Django closes a request's database connection when the request ends, and under ASGI
every request runs in a thread of its own, so every request opens a connection of its
own too. SQLite in WAL mode treats the close of a database's last connection as the end
of its log: it checkpoints the log into the database (two ``fdatasync``), deletes it, and
the next connection's first write creates it again (two more). That was most of a short
request's time on a busy disk (about 4 syncs per request; docs/files.md, "Benchmark").

``wal_hold`` opens one more connection to the same database file, reads its schema once
(which maps the WAL index) and keeps it idle, outside any transaction, for the life of
the process: no request's connection is then the last one, the log stays, and SQLite
checkpoints it as usual when it passes ``wal_autocheckpoint`` pages, from whichever
connection commits then. Durability is unchanged (``synchronous`` is the settings'); the
held connection never reads again, so it never holds back a checkpoint. At exit it
closes, checkpointing what is left.

A forked child (a worker pool) keeps its parent's connection object untouched, never
closing it (a connection must not be used across ``fork``), and holds the log with a
connection of its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

_lock = threading.Lock()
# (process id, database path) -> the idle connection holding that database's log open.
_held: dict[tuple[int, str], sqlite3.Connection] = {}


def _file_path(name: object) -> str | None:
    """The database file's absolute path, or None for an in-memory database."""
    text = str(name)
    if not text or text == ":memory:" or "mode=memory" in text or text.startswith("file:"):
        return None
    return os.path.abspath(text)


def wal_hold(settings_dict: Mapping[str, Any]) -> bool:
    """Hold the WAL of the SQLite database ``settings_dict`` names open (once per process
    and file); returns whether a holding connection is open now.

    Opens the file read-write without creating it (a database not created yet is held
    from its next connection on); never raises for a file it cannot open: the requests
    then simply pay the log's re-creation, as without this.
    """
    path = _file_path(settings_dict.get("NAME", ""))
    if path is None:
        return False
    key = (os.getpid(), path)
    if key in _held:
        return True
    with _lock:
        if key in _held:
            return True
        try:
            holder = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
            )
            # Reading the schema attaches this connection to the WAL index; in autocommit
            # mode the read transaction ends with the statement.
            holder.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.Error:
            return False
        _held[key] = holder
    return True


def on_connection_created(sender: object, connection: Any, **kwargs: object) -> None:
    """``connection_created`` receiver: hold the log of each SQLite database connected to."""
    if connection.vendor == "sqlite":
        wal_hold(connection.settings_dict)
