"""Exports of a time range: JSONL (verifiable offline) or CSV (for reading)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit import signing
from audit.actions import AuditAction
from audit.chain import EVENT_FIELDS, canonical_json, format_time, key_id_for
from audit.exportfile import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ExportWriter,
    checkpoint_record,
    event_record,
)
from audit.models import AuditEvent
from audit.selectors import (
    DEFAULT_CHUNK_SIZE,
    audit_checkpoint_covering,
    audit_checkpoint_rows,
    audit_event_rows,
    audit_seq_range,
)
from audit.services.checkpoints import audit_checkpoint_write
from audit.services.record import Actor, audit_record

EXPORT_FORMATS = ("jsonl", "csv")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = (*EVENT_FIELDS, "hash")
# Streamed in pieces of about this size rather than one write per line.
_CHUNK_BYTES = 64 * 1024
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditExport:
    """A started export: ``chunks`` yields its bytes, read once, lazily."""

    format: str
    filename: str
    content_type: str
    first_seq: int | None
    last_seq: int | None
    anchor_seq: int | None
    event: AuditEvent
    chunks: Iterator[bytes]


def _batched(lines: Iterator[bytes]) -> Iterator[bytes]:
    buffer = bytearray()
    for line in lines:
        buffer += line
        if len(buffer) >= _CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _iso(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _jsonl_lines(
    *,
    since: datetime | None,
    until: datetime | None,
    first_seq: int | None,
    last_seq: int | None,
    anchor_seq: int | None,
    chunk_size: int,
) -> Iterator[bytes]:
    key = signing.signing_key()
    key_id = key_id_for(key.public_key())
    writer = ExportWriter()
    yield writer.line(
        {
            "type": "header",
            "format": EXPORT_FORMAT,
            "v": EXPORT_VERSION,
            "since": _iso(since),
            "until": _iso(until),
            "range_first_seq": first_seq,
            "range_last_seq": last_seq,
            "anchor_seq": anchor_seq,
            "exported_at": format_time(timezone.now()),
            "key_id": key_id,
            "public_key": signing.public_key_base64(),
        }
    )
    if first_seq is not None and anchor_seq is not None:
        for event in audit_event_rows(from_seq=first_seq, to_seq=anchor_seq, chunk_size=chunk_size):
            yield writer.line(event_record(event))
        for checkpoint in audit_checkpoint_rows(
            from_seq=first_seq, to_seq=anchor_seq, chunk_size=chunk_size
        ):
            yield writer.line(checkpoint_record(checkpoint))
    yield writer.manifest(key_id=key_id, sign=key.sign)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_lines(*, first_seq: int | None, last_seq: int | None, chunk_size: int) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    if first_seq is not None:
        for event in audit_event_rows(from_seq=first_seq, to_seq=last_seq, chunk_size=chunk_size):
            record = event_record(event)
            record["extra"] = canonical_json(record["extra"])
            writer.writerow([_csv_cell(record[column]) for column in CSV_COLUMNS])
            if buffer.tell() >= _CHUNK_BYTES:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def audit_export_start(
    *,
    actor: Actor,
    since: datetime | None,
    until: datetime | None,
    format: str = "jsonl",
    via: str,
    request: HttpRequest | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> AuditExport:
    """Record an ``audit.exported`` event and return the export's byte stream.

    Covers events with ``since <= occurred_at < until`` (open ends allowed). A JSONL
    export also carries the events up to the first signed checkpoint at or after
    the range (one is written now if none exists yet) and a signed manifest, so it
    verifies offline with ``python -m audit.verify_export``. The event is committed
    before any byte is produced: an export that fails half way is still on record.
    Access must already be checked by the caller.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {', '.join(EXPORT_FORMATS)}")
    if since is not None and until is not None and since >= until:
        raise ValueError("since must be before until")
    seq_range = audit_seq_range(since=since, until=until)
    first_seq, last_seq = seq_range if seq_range is not None else (None, None)
    anchor_seq: int | None = None
    if format == "jsonl" and last_seq is not None:
        covering = audit_checkpoint_covering(seq=last_seq)
        if covering is None:
            covering = audit_checkpoint_write(force=True)
        anchor_seq = covering.seq if covering is not None else None
    with transaction.atomic():
        event = audit_record(
            actor=actor,
            action=AuditAction.AUDIT_EXPORTED,
            request=request,
            extra={
                "format": format,
                "via": via,
                "since": _iso(since),
                "until": _iso(until),
                "first_seq": first_seq,
                "last_seq": last_seq,
                "anchor_seq": anchor_seq,
            },
        )
    if format == "jsonl":
        lines = _jsonl_lines(
            since=since,
            until=until,
            first_seq=first_seq,
            last_seq=last_seq,
            anchor_seq=anchor_seq,
            chunk_size=chunk_size,
        )
        chunks = _batched(lines)
    else:
        chunks = _csv_lines(first_seq=first_seq, last_seq=last_seq, chunk_size=chunk_size)
    span = f"{first_seq}-{last_seq}" if first_seq is not None else "empty"
    return AuditExport(
        format=format,
        filename=f"safechat-audit-{span}.{format}",
        content_type=CONTENT_TYPES[format],
        first_seq=first_seq,
        last_seq=last_seq,
        anchor_seq=anchor_seq,
        event=event,
        chunks=chunks,
    )
