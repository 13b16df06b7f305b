"""The JSONL export format and its verification. Pure Python plus ``cryptography``.

An export is UTF-8 text, one canonical JSON object per line (``audit.chain``'s
canonical form, each line ending in ``\\n``), in this order:

1. ``{"type": "header", "format": "safechat.audit.export", "v": 1, "since", "until",
   "range_first_seq", "range_last_seq", "anchor_seq", "exported_at", "key_id",
   "public_key"}``: the requested time range and the seqs it covers. Events after
   ``range_last_seq`` up to ``anchor_seq`` are included only so that the chain
   reaches a signed checkpoint.
2. One ``{"type": "event", ...}`` line per event, ordered by seq: the hashed fields
   (``occurred_at`` in its canonical string form) plus ``hash``.
3. One ``{"type": "checkpoint", "seq", "head_hash", "created_at", "key_id",
   "signature"}`` line per checkpoint from the first event to ``anchor_seq``.
4. A last ``{"type": "manifest", "v": 1, "events", "checkpoints", "sha256", "key_id",
   "signature"}`` line: ``sha256`` of every byte before it, signed (Ed25519, over the
   canonical JSON of the manifest without ``signature``) by the audit signing key.

So every byte is covered: events by their hashes and the checkpoint they reach,
and the file as a whole by the signed manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import (
    CANONICAL_VERSIONS,
    EVENT_FIELDS,
    HEX128,
    canonical_json,
    chain_verify,
    format_time,
    key_id_for,
)

EXPORT_FORMAT = "safechat.audit.export"
MANIFEST_TYPE = "safechat.audit.export.manifest"
EXPORT_VERSION = 1
CHECKPOINT_FIELDS = ("seq", "head_hash", "created_at", "key_id", "signature")


def encode_line(record: Mapping[str, Any]) -> bytes:
    return canonical_json(record).encode("utf-8") + b"\n"


def event_record(event: Mapping[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "event"}
    for name in EVENT_FIELDS:
        record[name] = event[name]
    occurred_at = record["occurred_at"]
    if isinstance(occurred_at, datetime):
        record["occurred_at"] = format_time(occurred_at)
    record["hash"] = event["hash"]
    return record


def checkpoint_record(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "checkpoint"}
    for name in CHECKPOINT_FIELDS:
        record[name] = checkpoint[name]
    created_at = record["created_at"]
    if isinstance(created_at, datetime):
        record["created_at"] = format_time(created_at)
    return record


def manifest_signed_bytes(manifest: Mapping[str, Any]) -> bytes:
    unsigned = {name: value for name, value in manifest.items() if name != "signature"}
    # The manifest type separates these signatures from checkpoint signatures.
    unsigned["signed_type"] = MANIFEST_TYPE
    return canonical_json(unsigned).encode("utf-8")


class ExportWriter:
    """Turns records into export lines while hashing them for the manifest."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.events = 0
        self.checkpoints = 0

    def line(self, record: Mapping[str, Any]) -> bytes:
        data = encode_line(record)
        self._digest.update(data)
        if record["type"] == "event":
            self.events += 1
        elif record["type"] == "checkpoint":
            self.checkpoints += 1
        return data

    def manifest(self, *, key_id: str, sign: Callable[[bytes], bytes]) -> bytes:
        manifest: dict[str, Any] = {
            "type": "manifest",
            "v": EXPORT_VERSION,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "sha256": self._digest.hexdigest(),
            "key_id": key_id,
        }
        manifest["signature"] = sign(manifest_signed_bytes(manifest)).hex()
        return encode_line(manifest)


# --- Verification -----------------------------------------------------------


@dataclass(frozen=True)
class ExportVerification:
    ok: bool
    message: str
    events: int = 0
    checkpoints: int = 0


class _Invalid(Exception):
    pass


def _lines(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """Each line, checked to be exactly the canonical encoding of what it parses to."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                raise _Invalid(f"line {number} does not end with a newline")
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _Invalid(f"line {number} is not JSON") from None
            if not isinstance(record, dict) or encode_line(record) != raw:
                raise _Invalid(f"line {number} is not a canonical JSON object")
            yield number, raw, record


def _structure(
    path: Path, keys: Mapping[str, Ed25519PublicKey]
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Pass one: order of line types, the manifest's digest and signature; the checkpoints."""
    digest = hashlib.sha256()
    header: dict[str, Any] | None = None
    checkpoints: list[dict[str, Any]] = []
    events = 0
    manifest: dict[str, Any] | None = None
    stage = "header"
    for number, raw, record in _lines(path):
        kind = record.get("type")
        if manifest is not None:
            raise _Invalid(f"line {number}: content after the manifest")
        if stage == "header":
            if kind != "header" or record.get("format") != EXPORT_FORMAT:
                raise _Invalid("line 1 is not a SafeChat audit export header")
            if record.get("v") != EXPORT_VERSION:
                raise _Invalid(f"unsupported export version {record.get('v')!r}")
            header = record
            stage = "event"
        elif kind == "event" and stage == "event":
            events += 1
        elif kind == "checkpoint" and stage in ("event", "checkpoint"):
            stage = "checkpoint"
            checkpoints.append(record)
        elif kind == "manifest":
            manifest = record
            continue
        else:
            raise _Invalid(f"line {number}: unexpected {kind!r} record here")
        digest.update(raw)
    if header is None:
        raise _Invalid("the file is empty")
    if manifest is None:
        raise _Invalid("the manifest line is missing (truncated export?)")
    if manifest.get("sha256") != digest.hexdigest():
        raise _Invalid("the manifest digest does not match the file: it was changed")
    if manifest.get("events") != events or manifest.get("checkpoints") != len(checkpoints):
        raise _Invalid("the manifest counts do not match the file")
    key = keys.get(str(manifest.get("key_id")))
    signature = str(manifest.get("signature", ""))
    if key is None:
        raise _Invalid(f"the manifest is signed by an unknown key {manifest.get('key_id')!r}")
    if not HEX128.fullmatch(signature):
        raise _Invalid("the manifest signature is malformed")
    try:
        key.verify(bytes.fromhex(signature), manifest_signed_bytes(manifest))
    except InvalidSignature:
        raise _Invalid("the manifest signature does not verify") from None
    return header, checkpoints, events


def _events(path: Path) -> Iterator[dict[str, Any]]:
    for _number, _raw, record in _lines(path):
        if record.get("type") == "event":
            if record.get("v") not in CANONICAL_VERSIONS:
                raise _Invalid(f"event in unsupported canonical version {record.get('v')!r}")
            yield record


def export_verify(path: Path, public_keys: Iterable[Ed25519PublicKey]) -> ExportVerification:
    """Verify an export file against trusted public keys; streams the events.

    Checks the signed manifest over every byte, each event's hash, continuity from
    the first event (whose ``prev_hash`` is taken as given), every checkpoint's
    signature and hash, and that a checkpoint at or after the range's last event
    signs a hash the chain reaches.
    """
    keys = {key_id_for(key): key for key in public_keys}
    try:
        header, checkpoints, events = _structure(path, keys)
        report = chain_verify(
            _events(path),
            checkpoints=checkpoints,
            public_keys=keys,
            first_prev_hash=None,
            first_seq=None,
        )
    except _Invalid as invalid:
        return ExportVerification(False, f"export INVALID: {invalid}")
    if report.problem is not None:
        return ExportVerification(
            False, f"export INVALID at seq {report.problem.seq}: {report.problem.kind}: "
            f"{report.problem.detail}", report.events, report.checkpoints,
        )  # fmt: skip
    if events == 0:
        return ExportVerification(True, "export verified: no events in the range")
    range_first, range_last = header.get("range_first_seq"), header.get("range_last_seq")
    if report.first_seq != range_first or not isinstance(range_last, int):
        return ExportVerification(
            False, "export INVALID: the header range does not match the events"
        )
    anchoring = [cp for cp in checkpoints if int(cp["seq"]) >= range_last]
    if not anchoring:
        return ExportVerification(
            False,
            f"export INVALID: no signed checkpoint at or after seq {range_last} anchors the range",
        )
    return ExportVerification(
        True,
        f"export verified: {report.events} events (seq {report.first_seq}-{report.last_seq}), "
        f"{report.checkpoints} signed checkpoints, anchored at seq {anchoring[0]['seq']}",
        report.events,
        report.checkpoints,
    )
