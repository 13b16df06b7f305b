"""Reads of the audit log. Streams are ordered by seq and use constant memory.

Access is checked by the callers (admin, API, commands): only holders of
``audit.view_auditevent`` reach these through the product.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import CharField, Count, Func, Max, Min, Q, Subquery
from django.db.models.functions import Coalesce

from audit.chain import EVENT_FIELDS
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent

# Column names of the hashed fields (the canonical "v" is the model's "version").
_EVENT_COLUMNS = (*tuple("version" if name == "v" else name for name in EVENT_FIELDS), "hash")
_EVENT_KEYS = (*EVENT_FIELDS, "hash")
CHECKPOINT_FIELDS = ("seq", "head_hash", "created_at", "key_id", "signature")
DEFAULT_CHUNK_SIZE = 5000


def audit_chain_head_get() -> AuditChainHead | None:
    return AuditChainHead.objects.filter(pk=1).first()


class _CanonicalTime(Func):
    """PostgreSQL renders ``occurred_at`` in the chain's time format itself.

    Loading a timestamptz into an aware datetime runs psycopg's pure-Python parser
    under Django's time-zone loader; with the formatting after it, that was a third
    of the verifier's time per event. The instant is the same, so is the string.
    """

    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    output_field = CharField()


def audit_event_rows(
    *, from_seq: int | None = None, to_seq: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """Events as mappings for ``audit.chain``, ordered by seq, streamed in chunks.

    ``occurred_at`` is a datetime, or on PostgreSQL already its canonical string.
    """
    queryset = AuditEvent.objects.order_by("seq")
    if from_seq is not None:
        queryset = queryset.filter(seq__gte=from_seq)
    if to_seq is not None:
        queryset = queryset.filter(seq__lte=to_seq)
    columns: tuple[str, ...] = _EVENT_COLUMNS
    if connections[queryset.db].vendor == "postgresql":
        queryset = queryset.annotate(occurred_at_text=_CanonicalTime("occurred_at"))
        columns = tuple("occurred_at_text" if c == "occurred_at" else c for c in columns)
    keys = _EVENT_KEYS
    for row in queryset.values_list(*columns).iterator(chunk_size=chunk_size):
        yield dict(zip(keys, row, strict=True))


def audit_checkpoint_rows(
    *, from_seq: int | None = None, to_seq: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    queryset = AuditCheckpoint.objects.order_by("seq")
    if from_seq is not None:
        queryset = queryset.filter(seq__gte=from_seq)
    if to_seq is not None:
        queryset = queryset.filter(seq__lte=to_seq)
    for row in queryset.values_list(*CHECKPOINT_FIELDS).iterator(chunk_size=chunk_size):
        yield dict(zip(CHECKPOINT_FIELDS, row, strict=True))


def audit_events_beyond_head() -> tuple[int, int] | None:
    """(first seq, count) of events past the chain head, in one statement; None if none.

    One statement sees one snapshot, so an append (event and head in one transaction)
    never shows here half done.
    """
    head = AuditChainHead.objects.filter(pk=1).values("last_seq")
    beyond = AuditEvent.objects.filter(seq__gt=Coalesce(Subquery(head[:1]), 0)).aggregate(
        first=Min("seq"), count=Count("seq")
    )
    if not beyond["count"]:
        return None
    return int(beyond["first"]), int(beyond["count"])


def audit_checkpoint_get(*, seq: int) -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.filter(seq=seq).first()


def audit_checkpoint_covering(*, seq: int) -> AuditCheckpoint | None:
    """The first checkpoint at or after ``seq``: it anchors every event up to ``seq``."""
    return AuditCheckpoint.objects.filter(seq__gte=seq).order_by("seq").first()


def audit_checkpoint_last_seq() -> int | None:
    value: int | None = AuditCheckpoint.objects.aggregate(last=Max("seq"))["last"]
    return value


def audit_seq_range(*, since: datetime | None, until: datetime | None) -> tuple[int, int] | None:
    """First and last seq of the events with ``since <= occurred_at < until``, or None.

    Times never decrease along the chain, so a time range is a seq range.
    """
    condition = Q()
    if since is not None:
        condition &= Q(occurred_at__gte=since)
    if until is not None:
        condition &= Q(occurred_at__lt=until)
    bounds = AuditEvent.objects.filter(condition).aggregate(first=Min("seq"), last=Max("seq"))
    if bounds["first"] is None:
        return None
    return int(bounds["first"]), int(bounds["last"])
