"""The canonical form and the pure verifier, without a database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from audit import chain

BASE_EVENT: dict[str, Any] = {
    "v": 1,
    "seq": 1,
    "occurred_at": "2025-01-31T09:15:00.000000Z",
    "actor_type": "user",
    "actor_id": 7,
    "actor_username": "alice",
    "action": "room.created",
    "target_type": "rooms.room",
    "target_id": "42",
    "source_ip": "192.0.2.1",
    "user_agent": "Mozilla/5.0",
    "request_id": "abc123",
    "extra": {"name_length": 5, "b": [1, "two", None, True]},
    "prev_hash": chain.GENESIS_HASH,
}


def build(count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    prev = chain.GENESIS_HASH
    for seq in range(1, count + 1):
        event = {**BASE_EVENT, "seq": seq, "prev_hash": prev, "extra": {"n": seq}}
        event["hash"] = chain.event_hash(event)
        prev = event["hash"]
        events.append(event)
    return events


def test_canonical_bytes_are_sorted_compact_json_of_the_fields() -> None:
    # given an event with non-ASCII text and a nested extra
    event = {**BASE_EVENT, "actor_username": "zoë", "user_agent": 'quote " and \\ and \n'}

    # when it is serialised canonically
    data = chain.canonical_event_bytes(event)

    # then it is exactly json.dumps(sort_keys, no whitespace, characters as themselves)
    assert data == chain.canonical_json(event).encode("utf-8")
    assert "zoë".encode() in data


def test_a_known_event_has_a_known_hash() -> None:
    # given the example event of docs/audit.md
    # when it is hashed
    digest = chain.event_hash(BASE_EVENT)

    # then the value is pinned: changing the canonical form needs a new "v"
    assert digest == "45cc75d5b613dfeeb7ccb97291590ecdaf059f5ab3877aad79ea20ec87f7e24f"
    assert digest == hashlib.sha256(chain.canonical_json(BASE_EVENT).encode()).hexdigest()


def test_time_is_iso_utc_with_microseconds_and_z() -> None:
    # given the same instant in two zones, and one on a whole second
    paris = datetime(2025, 1, 31, 10, 15, tzinfo=timezone(timedelta(hours=1)))

    # then both format as the UTC instant with six fractional digits
    assert chain.format_time(paris) == "2025-01-31T09:15:00.000000Z"
    assert chain.format_time(datetime(2025, 1, 31, 9, 15, 0, 12, tzinfo=UTC)).endswith(".000012Z")
    with pytest.raises(ValueError, match="timezone-aware"):
        chain.format_time(datetime(2025, 1, 31))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"ratio": 0.5}, "floats"),
        ({1: "x"}, "keys must be strings"),
        ({"when": datetime(2025, 1, 1, tzinfo=UTC)}, "not JSON-serialisable"),
        ({"nul": "a\x00b"}, "NUL"),
        ({"bad": "\udc80"}, "not valid Unicode"),
        ({"deep": [{"x": {1, 2}}]}, "not JSON-serialisable"),
    ],
)
def test_values_that_do_not_round_trip_are_refused(value: object, message: str) -> None:
    with pytest.raises(chain.ExtraError, match=message):
        chain.check_json_value(value)


def test_an_intact_chain_verifies() -> None:
    report = chain.chain_verify(build(50))
    assert report.intact
    assert (report.events, report.first_seq, report.last_seq) == (50, 1, 50)


def test_an_edited_event_is_named_edited() -> None:
    events = build(10)
    events[4]["actor_username"] = "mallory"
    problem = chain.chain_verify(events).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (5, chain.KIND_EDITED)


def test_a_gap_is_named_deleted() -> None:
    events = build(10)
    del events[3]
    problem = chain.chain_verify(events).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (4, chain.KIND_DELETED)


def test_a_renumbered_chain_after_a_deletion_is_reordered_or_deleted() -> None:
    # given event 4 removed and the later ones renumbered and re-hashed individually
    events = build(10)
    del events[3]
    for event in events[3:]:
        event["seq"] -= 1
        event["hash"] = chain.event_hash(event)
    problem = chain.chain_verify(events).problem
    assert problem is not None
    assert (problem.seq, problem.kind) == (4, chain.KIND_REORDERED)
    assert "links to seq" not in problem.detail or "deleted" in problem.detail


def test_a_checkpoint_must_be_signed_and_match() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    # given a chain and a checkpoint at seq 5 signed by the trusted key, and one by another key
    events = build(6)
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    key_id = chain.key_id_for(key.public_key())

    def checkpoint(signer: Ed25519PrivateKey, head_hash: str) -> dict[str, Any]:
        created_at = "2025-01-31T09:15:00.000000Z"
        signed = chain.checkpoint_signed_bytes(
            seq=5, head_hash=head_hash, created_at=created_at, key_id=key_id
        )
        return {
            "seq": 5,
            "head_hash": head_hash,
            "created_at": created_at,
            "key_id": key_id,
            "signature": signer.sign(signed).hex(),
        }

    keys = {key_id: key.public_key()}
    good = chain.chain_verify(
        events, checkpoints=[checkpoint(key, events[4]["hash"])], public_keys=keys
    )
    forged = chain.chain_verify(
        events, checkpoints=[checkpoint(other, events[4]["hash"])], public_keys=keys
    )
    wrong = chain.chain_verify(events, checkpoints=[checkpoint(key, "f" * 64)], public_keys=keys)

    assert good.intact
    assert good.checkpoints == 1
    assert forged.problem is not None
    assert forged.problem.kind == chain.KIND_BAD_SIGNATURE
    assert wrong.problem is not None
    assert wrong.problem.kind == chain.KIND_CHECKPOINT_MISMATCH
    assert forged.problem.seq == 5
    # a consistent rewrite is reported as the range since the last matching checkpoint
    assert wrong.problem.seq == 1
    assert "seqs 1-5 were rewritten" in wrong.problem.detail
