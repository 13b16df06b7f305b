"""Reads of eDiscovery export requests: the scope's digest an approval must name."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date

from compliance.models import ExportRequest


def scope_digest(
    *,
    matter: str,
    room_ids: Iterable[int],
    custodian_ids: Iterable[int],
    starts_on: date,
    ends_on: date,
    recipient_public_key: str,
    max_downloads: int,
) -> str:
    """SHA-256 (hex) of the scope as canonical JSON (RFC 8785 style: sorted keys, no
    whitespace, ids ascending): what an approver reviewed, so an approval of anything
    else (a scope changed in between, another request) does not match."""
    canonical = json.dumps(
        {
            "matter": matter,
            "rooms": sorted(set(room_ids)),
            "custodians": sorted(set(custodian_ids)),
            "starts_on": starts_on.isoformat(),
            "ends_on": ends_on.isoformat(),
            "recipient_public_key": recipient_public_key,
            "max_downloads": max_downloads,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def export_scope_digest(export: ExportRequest) -> str:
    """The digest of ``export``'s scope as stored now (rows and relations re-read)."""
    return scope_digest(
        matter=export.matter,
        room_ids=export.rooms.values_list("pk", flat=True),
        custodian_ids=export.custodians.values_list("pk", flat=True),
        starts_on=export.starts_on,
        ends_on=export.ends_on,
        recipient_public_key=export.recipient_public_key,
        max_downloads=export.max_downloads,
    )
