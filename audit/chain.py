"""The audit hash chain: canonical serialisation, hashing and verification.

Pure Python plus ``cryptography``; no Django import, so the offline verifier
(``python -m audit.verify_export``) runs on a machine without the application.

Canonical form, version 2 (``"v": 2``)
---------------------------------------
An event is hashed as the UTF-8 bytes of a JSON object with exactly these keys::

    v, seq, occurred_at, actor_type, actor_id, actor_username, action,
    target_type, target_id, source_ip, user_agent, request_id, channel, token_id,
    extra, prev_hash

Version 1, written before events carried their channel and API token, is the same
without ``channel`` and ``token_id``; its events verify exactly as they were written.

serialised with keys sorted, no whitespace (``","`` and ``":"`` separators), non-ASCII
characters written as themselves (not ``\\u`` escapes) and ``occurred_at`` as ISO-8601
UTC with microseconds and a ``Z`` (``2025-01-31T09:15:00.000000Z``). ``extra`` holds only
strings, integers, booleans, null, lists and objects (no floats: they do not survive a
round trip through every database exactly). ``hash = sha256(canonical bytes)`` in lower
hex; ``prev_hash`` is the previous event's hash, 64 zeros for the first (genesis).

A checkpoint signs, with Ed25519, the canonical JSON of
``{"v", "type": "safechat.audit.checkpoint", "seq", "head_hash", "created_at", "key_id"}``
where ``key_id`` is the first 16 hex digits of sha256(raw public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CANONICAL_VERSION = 2
# Version 1 events (written before the channel and token id) verify as they always did.
CANONICAL_VERSIONS = (1, 2)
# The signed form of a checkpoint did not change with the events' version 2.
CHECKPOINT_VERSION = 1
GENESIS_HASH = "0" * 64
CHECKPOINT_TYPE = "safechat.audit.checkpoint"

# The hashed fields of an event, in canonical (sorted) order.
EVENT_FIELDS: tuple[str, ...] = (
    "action",
    "actor_id",
    "actor_type",
    "actor_username",
    "channel",
    "extra",
    "occurred_at",
    "prev_hash",
    "request_id",
    "seq",
    "source_ip",
    "target_id",
    "target_type",
    "token_id",
    "user_agent",
    "v",
)
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX128 = re.compile(r"[0-9a-f]{128}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

# When a row's hash does not match, look this far around for the seq it was
# written with: a row moved to another position reads "reordered", not "edited".
_REORDER_SEARCH_WINDOW = 1000
# How many recent hashes to remember, to explain a broken link (constant memory).
_RECENT_HASHES = 1024

# The C string encoder json.dumps(ensure_ascii=False) uses, without its per-call overhead.
_encode_string: Callable[[str], str] = encode_basestring


class ExtraError(ValueError):
    """``extra`` cannot be hashed canonically (a float, a non-string key, ...)."""


def format_time(value: datetime) -> str:
    """ISO-8601 UTC with microseconds and ``Z``: the one time format of the chain."""
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    if value.utcoffset():
        value = value.astimezone(UTC)
    # isoformat is C code and ~4x faster than strftime on the verification path;
    # it ends in "+00:00" for a UTC time, which becomes "Z".
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def check_json_value(value: object, *, path: str = "extra") -> None:
    """Raise ExtraError unless ``value`` is made only of canonical JSON types."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise ExtraError(f"{path}: NUL characters are not allowed")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ExtraError(f"{path}: the string is not valid Unicode") from None
        return
    if isinstance(value, float):
        raise ExtraError(f"{path}: floats are not allowed (use a string or an integer)")
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json_value(item, path=f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ExtraError(f"{path}: keys must be strings, not {type(key).__name__}")
            check_json_value(key, path=f"{path}.<key>")
            check_json_value(item, path=f"{path}.{key}")
        return
    raise ExtraError(f"{path}: {type(value).__name__} is not JSON-serialisable")


# json.dumps with options builds a new encoder per call; the verifier calls this a lot.
_CANONICAL_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: object) -> str:
    """Sorted keys, no whitespace, characters as themselves (no NaN or infinity)."""
    return _CANONICAL_ENCODER.encode(value)


def canonical_event_parts(event: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The canonical text of ``event`` split around ``occurred_at``, ``prev_hash`` and ``seq``.

    ``text = p1 + occurred_at + p2 + prev_hash + p3 + str(seq) + p4``. The writer on
    PostgreSQL sends these parts to the database, which fills in the three values
    known only under the chain lock; the verifier joins them here. One builder for
    both keeps the bytes identical by construction.
    """
    extra = event["extra"]
    actor_id = event["actor_id"]
    source_ip = event["source_ip"]
    version = int(event.get("v", 1))
    channel = event.get("channel") or ""
    token_id = event.get("token_id")
    # Version 1 has no channel or token id; a version 1 row that carries either is hashed
    # with them, so it no longer matches its stored hash (it was changed).
    with_context = version >= 2 or bool(channel) or token_id is not None
    enc = _encode_string
    p1 = (
        '{"action":' + enc(event["action"])
        + ',"actor_id":' + ("null" if actor_id is None else str(int(actor_id)))
        + ',"actor_type":' + enc(event["actor_type"])
        + ',"actor_username":' + enc(event["actor_username"])
        + (',"channel":' + enc(channel) if with_context else "")
        + ',"extra":' + ("{}" if not extra else canonical_json(extra))
        + ',"occurred_at":"'
    )  # fmt: skip
    p3 = '","request_id":' + enc(event["request_id"]) + ',"seq":'
    token = ("null" if token_id is None else str(int(token_id))) if with_context else ""
    p4 = (
        ',"source_ip":' + ("null" if source_ip is None else enc(source_ip))
        + ',"target_id":' + enc(event["target_id"])
        + ',"target_type":' + enc(event["target_type"])
        + (',"token_id":' + token if with_context else "")
        + ',"user_agent":' + enc(event["user_agent"])
        + ',"v":' + str(version)
        + "}"
    )  # fmt: skip
    return p1, '","prev_hash":"', p3, p4


def canonical_event_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed for ``event`` (a mapping with EVENT_FIELDS).

    ``occurred_at`` may be a datetime or its canonical string. Built by hand rather
    than with one ``json.dumps`` of a dict: the verifier hashes tens of thousands of
    events a second and this is its inner loop. A test pins it to ``canonical_json``.
    Times and hashes are checked to be canonical, so they need no escaping.
    """
    occurred_at = event["occurred_at"]
    if isinstance(occurred_at, datetime):
        occurred_at = format_time(occurred_at)
    prev_hash = event["prev_hash"]
    if not (isinstance(occurred_at, str) and _TIME.fullmatch(occurred_at)):
        raise ValueError("occurred_at is not a canonical UTC time")
    if not (isinstance(prev_hash, str) and HEX64.fullmatch(prev_hash)):
        raise ValueError("prev_hash is not 64 lower-case hex digits")
    p1, p2, p3, p4 = canonical_event_parts(event)
    text = p1 + occurred_at + p2 + prev_hash + p3 + str(int(event["seq"])) + p4
    return text.encode("utf-8")


def event_hash(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_event_bytes(event)).hexdigest()


# --- Checkpoints ------------------------------------------------------------


def key_id_for(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_raw(public_key)).hexdigest()[:16]


def public_key_raw(public_key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_parse(text: str) -> Ed25519PublicKey:
    """A public key from base64 (or hex) of its 32 raw bytes."""
    text = text.strip()
    raw: bytes
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the public key is neither base64 nor hex") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def checkpoint_signed_bytes(
    *, seq: int, head_hash: str, created_at: datetime | str, key_id: str
) -> bytes:
    if isinstance(created_at, datetime):
        created_at = format_time(created_at)
    return canonical_json(
        {
            "v": CHECKPOINT_VERSION,
            "type": CHECKPOINT_TYPE,
            "seq": int(seq),
            "head_hash": head_hash,
            "created_at": created_at,
            "key_id": key_id,
        }
    ).encode("utf-8")


def checkpoint_signature_valid(
    checkpoint: Mapping[str, Any], public_keys: Mapping[str, Ed25519PublicKey]
) -> bool:
    """True when the checkpoint is signed by the key it names, and that key is trusted."""
    public_key = public_keys.get(str(checkpoint["key_id"]))
    signature = str(checkpoint["signature"])
    if public_key is None or not HEX128.fullmatch(signature):
        return False
    try:
        public_key.verify(
            bytes.fromhex(signature),
            checkpoint_signed_bytes(
                seq=checkpoint["seq"],
                head_hash=checkpoint["head_hash"],
                created_at=checkpoint["created_at"],
                key_id=checkpoint["key_id"],
            ),
        )
    except InvalidSignature:
        return False
    return True


# --- Verification -----------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    """The first thing found wrong: ``kind`` is one of the KIND_* values."""

    seq: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.detail}"


KIND_EDITED = "edited"
KIND_DELETED = "deleted"
KIND_REORDERED = "reordered"
KIND_BAD_SIGNATURE = "bad signature"
KIND_CHECKPOINT_MISMATCH = "checkpoint mismatch"
KIND_MALFORMED = "malformed"
KIND_INSERTED = "inserted"


@dataclass(frozen=True)
class ChainReport:
    events: int
    checkpoints: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str
    problem: ChainProblem | None

    @property
    def intact(self) -> bool:
        return self.problem is None


class _Failed(Exception):
    def __init__(self, problem: ChainProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _explain_hash_mismatch(event: Mapping[str, Any], expected_seq: int) -> ChainProblem:
    """A row whose hash does not match: moved from another seq, or edited."""
    stored = event["hash"]
    probe = dict(event)
    for offset in range(1, _REORDER_SEARCH_WINDOW + 1):
        for candidate in (expected_seq - offset, expected_seq + offset):
            if candidate < 1:
                continue
            probe["seq"] = candidate
            if event_hash(probe) == stored:
                return ChainProblem(
                    expected_seq,
                    KIND_REORDERED,
                    f"the row at seq {expected_seq} was written as seq {candidate}",
                )
    return ChainProblem(
        expected_seq, KIND_EDITED, "the stored hash does not match the row's content"
    )


def chain_verify(
    events: Iterable[Mapping[str, Any]],
    *,
    checkpoints: Iterable[Mapping[str, Any]] = (),
    public_keys: Mapping[str, Ed25519PublicKey] | None = None,
    first_prev_hash: str | None = GENESIS_HASH,
    first_seq: int | None = 1,
) -> ChainReport:
    """Verify a run of events (ordered by seq) and the checkpoints among them.

    ``events`` yields mappings with EVENT_FIELDS plus ``hash``; ``checkpoints`` yields
    ``seq, head_hash, created_at, key_id, signature`` ordered by seq. Both are
    consumed once, as streams: memory stays constant however long the chain.
    With ``first_prev_hash``/``first_seq`` None, the first event's are taken as given
    (an export of a range). Stops at the first problem, which names its seq.
    A checkpoint beyond the last event is a problem: the events it signs are missing.
    """
    keys = public_keys or {}
    cp_iter: Iterator[Mapping[str, Any]] = iter(checkpoints)
    pending_cp = next(cp_iter, None)
    checkpoints_seen = 0
    last_good_checkpoint: int | None = None
    count = 0
    expected_seq = first_seq
    prev_hash = first_prev_hash
    start_seq: int | None = None
    last_seq: int | None = None
    recent: deque[tuple[str, int]] = deque(maxlen=_RECENT_HASHES)

    def check_checkpoint(cp: Mapping[str, Any], chain_hash: str | None) -> None:
        nonlocal checkpoints_seen, last_good_checkpoint
        checkpoints_seen += 1
        seq = int(cp["seq"])
        if not checkpoint_signature_valid(cp, keys):
            raise _Failed(
                ChainProblem(
                    seq,
                    KIND_BAD_SIGNATURE,
                    f"checkpoint signature does not verify (key_id {cp['key_id']})",
                )
            )
        if chain_hash is None:
            first_missing = (last_seq + 1) if last_seq is not None else (first_seq or seq)
            raise _Failed(
                ChainProblem(
                    first_missing,
                    KIND_DELETED,
                    f"a checkpoint signs seq {seq} but the chain ends at "
                    f"{'seq ' + str(last_seq) if last_seq is not None else 'no event'}",
                )
            )
        if cp["head_hash"] != chain_hash:
            # Every event up to the previous good checkpoint is vouched for; the rewrite
            # lies after it, at or before this one: report that range.
            start = (
                last_good_checkpoint + 1
                if last_good_checkpoint is not None
                else (start_seq if start_seq is not None else seq)
            )
            raise _Failed(
                ChainProblem(
                    start,
                    KIND_CHECKPOINT_MISMATCH,
                    f"seqs {start}-{seq} were rewritten: the checkpoint signed at seq {seq} "
                    "differs from the chain's hash there",
                )
            )
        last_good_checkpoint = seq

    try:
        for event in events:
            try:
                seq = int(event["seq"])
                stored_hash = event["hash"]
            except (KeyError, TypeError, ValueError):
                raise _Failed(
                    ChainProblem(expected_seq or 0, KIND_MALFORMED, "an event lacks seq or hash")
                ) from None
            if expected_seq is None:
                expected_seq = seq
            if start_seq is None:
                start_seq = seq
            if seq > expected_seq:
                last = (
                    f"seq {expected_seq}"
                    if seq == expected_seq + 1
                    else f"seqs {expected_seq}-{seq - 1}"
                )
                raise _Failed(ChainProblem(expected_seq, KIND_DELETED, f"{last} missing"))
            if seq < expected_seq:
                raise _Failed(
                    ChainProblem(
                        seq, KIND_REORDERED, f"seq {seq} appears after seq {expected_seq - 1}"
                    )
                )
            try:
                computed = event_hash(event)
            except (KeyError, TypeError, ValueError) as exc:
                raise _Failed(
                    ChainProblem(seq, KIND_MALFORMED, f"unreadable event: {exc}")
                ) from None
            if computed != stored_hash:
                raise _Failed(_explain_hash_mismatch(event, seq))
            if prev_hash is None:
                prev_hash = event["prev_hash"]
            if event["prev_hash"] != prev_hash:
                linked = next((s for h, s in recent if h == event["prev_hash"]), None)
                if linked is not None:
                    detail = (
                        f"its prev_hash links to seq {linked}, not seq {seq - 1}: "
                        "events were deleted or reordered"
                    )
                else:
                    detail = (
                        f"its prev_hash does not link to seq {seq - 1}: "
                        "events were deleted, reordered or re-written"
                    )
                raise _Failed(ChainProblem(seq, KIND_REORDERED, detail))
            # Checkpoints before the first event of an export cannot be checked.
            while pending_cp is not None and int(pending_cp["seq"]) < start_seq:
                pending_cp = next(cp_iter, None)
            while pending_cp is not None and int(pending_cp["seq"]) == seq:
                check_checkpoint(pending_cp, stored_hash)
                pending_cp = next(cp_iter, None)
            if pending_cp is not None and int(pending_cp["seq"]) < seq:
                raise _Failed(
                    ChainProblem(
                        int(pending_cp["seq"]), KIND_MALFORMED, "checkpoints are not ordered by seq"
                    )
                )
            recent.append((stored_hash, seq))
            prev_hash = stored_hash
            last_seq = seq
            expected_seq = seq + 1
            count += 1
        while pending_cp is not None:
            if start_seq is not None and int(pending_cp["seq"]) < start_seq:
                pending_cp = next(cp_iter, None)
                continue
            check_checkpoint(pending_cp, None)
            pending_cp = next(cp_iter, None)
    except _Failed as failed:
        return ChainReport(
            events=count,
            checkpoints=checkpoints_seen,
            first_seq=start_seq,
            last_seq=last_seq,
            last_hash=prev_hash or "",
            problem=failed.problem,
        )
    return ChainReport(
        events=count,
        checkpoints=checkpoints_seen,
        first_seq=start_seq,
        last_seq=last_seq,
        last_hash=prev_hash or "",
        problem=None,
    )
