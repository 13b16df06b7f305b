"""Checkpoints copied outside the database, so rewriting the database cannot rewrite them.

Each checkpoint is appended as one JSON line to ``SAFECHAT_AUDIT_ANCHOR_FILE``
(fsync'd; put it on another host's mount or ship it with your log shipper) and,
when ``SAFECHAT_AUDIT_SYSLOG_ADDRESS`` is set, sent to syslog. Anchors are written
after the checkpoint commits: an anchor never names a checkpoint the database lacks.

Each line names the database it belongs to (``database``: engine, host, port and name),
so two databases anchoring into one file (the embedded default and PostgreSQL in one
checkout) never read each other's lines. ``SAFECHAT_AUDIT_ANCHOR_FILE=off`` turns anchors
off explicitly; otherwise the file is created (empty) when the audit tables are, and a
missing or unreadable file is a verification failure.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from audit.chain import canonical_json

logger = logging.getLogger(__name__)

ANCHOR_FIELDS = ("seq", "head_hash", "created_at", "key_id", "signature")
ANCHORS_OFF = "off"


class AnchorFileError(ValueError):
    """A line of the anchor file is not a checkpoint record."""


def anchors_off() -> bool:
    """Anchors turned off explicitly (``SAFECHAT_AUDIT_ANCHOR_FILE=off``)."""
    return str(settings.SAFECHAT_AUDIT_ANCHOR_FILE).strip().lower() == ANCHORS_OFF


def anchor_file_path() -> Path | None:
    """The anchor file; None when anchors are off or none is configured (a failure)."""
    path = str(settings.SAFECHAT_AUDIT_ANCHOR_FILE).strip()
    return None if not path or anchors_off() else Path(path)


def database_identity(alias: str = "default") -> str:
    """Which database an anchor line belongs to: engine, host, port and name."""
    connection = connections[alias]
    db = connection.settings_dict
    if db.get("HOST") or db.get("PORT"):
        return f"{connection.vendor}://{db.get('HOST') or ''}:{db.get('PORT') or ''}/{db['NAME']}"
    return f"{connection.vendor}:{db['NAME']}"


def anchor_line(checkpoint: Mapping[str, Any], *, database: str | None = None) -> str:
    record = {name: checkpoint[name] for name in ANCHOR_FIELDS}
    record["database"] = database if database is not None else database_identity()
    return canonical_json(record) + "\n"


def anchor_file_create() -> None:
    """Create the anchor file empty (0600) if it does not exist yet, e.g. after migrate."""
    path = anchor_file_path()
    if path is None or path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError:
        logger.exception("could not create the audit anchor file %s", path)


def anchor_append(*, checkpoint: Mapping[str, Any]) -> None:
    """Append ``checkpoint`` to the anchor file and syslog; failures are logged, not raised.

    The checkpoint is already committed; losing its anchor weakens, but does not
    break, what verification can prove, so a full disk must not fail the caller.
    """
    line = anchor_line(checkpoint)
    path = anchor_file_path()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                # Several processes append; the lock keeps lines whole.
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            logger.exception("could not append the audit checkpoint to the anchor file")
    address = settings.SAFECHAT_AUDIT_SYSLOG_ADDRESS
    if address:
        _syslog_send(address, line.rstrip("\n"))


def _syslog_handler(address: str) -> logging.handlers.SysLogHandler:
    """``/dev/log``, ``udp://host:port`` or ``tcp://host:port``."""
    if address.startswith(("udp://", "tcp://")):
        scheme, _, hostport = address.partition("://")
        host, _, port = hostport.rpartition(":")
        kind = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
        return logging.handlers.SysLogHandler(
            address=(host.strip("[]"), int(port or 514)), socktype=kind
        )
    return logging.handlers.SysLogHandler(address=address)


def _syslog_send(address: str, message: str) -> None:
    try:
        handler = _syslog_handler(address)
    except (OSError, ValueError):
        logger.exception("could not reach syslog at %s for the audit anchor", address)
        return
    try:
        record = logging.LogRecord(
            "safechat.audit.anchor", logging.INFO, __file__, 0,
            "safechat-audit-checkpoint %s", (message,), None,
        )  # fmt: skip
        handler.emit(record)
    finally:
        handler.close()


def anchor_records(path: Path, *, database: str | None = None) -> Iterator[dict[str, Any]]:
    """The checkpoint records in the anchor file, one line at a time.

    With ``database``, only the lines of that database (and lines written before lines
    named their database). Raises OSError if the file cannot be read.
    """
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise AnchorFileError(f"{path}:{number}: not JSON") from None
            if not isinstance(record, dict) or any(name not in record for name in ANCHOR_FIELDS):
                raise AnchorFileError(f"{path}:{number}: not a checkpoint record")
            if database is not None and record.get("database", database) != database:
                continue
            yield record
