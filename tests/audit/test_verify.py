"""verify_audit names the first broken seq and what is wrong with it.

Tampering runs with the triggers off (audit.triggers.suspended), as an insider
with owner rights could: on PostgreSQL ``ALTER TABLE ... DISABLE TRIGGER``, on
SQLite dropping and re-creating the triggers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.db import connection

from audit import chain, signing, triggers
from audit.actions import AuditAction
from audit.models import AuditCheckpoint, AuditEvent
from audit.selectors import audit_event_rows
from audit.services import audit_chain_verify, audit_checkpoint_write
from audit.tasks import audit_chain_verify_task
from tests.accounts.factories import make_user
from tests.audit.factories import make_event, tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def anchored_checkpoint(
    django_capture_on_commit_callbacks: Any,
) -> Callable[[], AuditCheckpoint]:
    """Write a checkpoint and run its after-commit anchoring, as a real commit would."""

    def write() -> AuditCheckpoint:
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = audit_checkpoint_write()
        assert checkpoint is not None
        return checkpoint

    return write


def verify_fails() -> str:
    """Run the command, expect exit status 1, return its message."""
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_audit", stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 1
    return err.getvalue()


def verify_passes() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out, stderr=StringIO())
    return out.getvalue()


def six_events() -> list[AuditEvent]:
    user = make_user(username="alice")
    return [
        make_event(
            actor=user,
            action=AuditAction.ROOM_MEMBER_ADDED,
            target=user,
            extra={"n": number},
            request=None,
        )
        for number in range(6)
    ]


def reinsert(rows: list[dict[str, Any]]) -> None:
    """Replace events by ``rows`` (same seqs), with triggers off, through the ORM's insert."""
    seqs = [row["seq"] for row in rows]
    tamper(f"DELETE FROM audit_auditevent WHERE seq IN ({','.join(map(str, seqs))})")  # noqa: S608
    with triggers.suspended(connection):
        for row in rows:
            fields = {("version" if key == "v" else key): value for key, value in row.items()}
            AuditEvent(**fields).save()


def test_an_intact_log_verifies_with_a_one_line_summary(
    anchored_checkpoint: Callable[[], AuditCheckpoint],
) -> None:
    # given events and a checkpoint
    six_events()
    anchored_checkpoint()

    # when verified, then exit status 0 and one line
    output = verify_passes()
    assert output.count("\n") == 1
    assert output.startswith("audit log intact: 7 events (seq 1-7), 1 checkpoints, 1 anchors")


def test_an_empty_log_verifies() -> None:
    assert verify_passes().startswith("audit log intact: no events yet")


SINGLE_FIELD_EDITS: dict[str, dict[str, str]] = {
    "version": {"any": "version = version + 1"},
    "occurred_at": {
        "postgresql": "occurred_at = occurred_at + interval '1 second'",
        "sqlite": "occurred_at = '2001-01-01 00:00:00.000000'",
    },
    "actor_type": {"any": "actor_type = 'system'"},
    "actor_id": {"any": "actor_id = actor_id + 1"},
    "actor_username": {"any": "actor_username = 'mallory'"},
    "action": {"any": "action = 'auth.logout'"},
    "target_type": {"any": "target_type = 'rooms.room'"},
    "target_id": {"any": "target_id = '666'"},
    "source_ip": {"any": "source_ip = '198.51.100.7'"},
    "user_agent": {"any": "user_agent = 'curl/8.0'"},
    "request_id": {"any": "request_id = 'forged-request-id'"},
    "extra": {
        "postgresql": """extra = '{"n": 999}'::jsonb""",
        "sqlite": """extra = '{"n": 999}'""",
    },
    "prev_hash": {"any": f"prev_hash = '{'1' * 64}'"},
    "hash": {"any": f"hash = '{'2' * 64}'"},
}


@pytest.mark.parametrize("field", sorted(SINGLE_FIELD_EDITS))
def test_every_single_field_edit_is_detected_as_edited(field: str) -> None:
    # given six events
    six_events()
    edits = SINGLE_FIELD_EDITS[field]
    assignment = edits.get(connection.vendor, edits.get("any"))

    # when an insider edits one field of seq 3
    tamper(f"UPDATE audit_auditevent SET {assignment} WHERE seq = 3")  # noqa: S608 - test table

    # then verification fails at seq 3, naming an edit
    assert "BROKEN at seq 3: edited" in verify_fails()


def test_a_changed_seq_is_detected_at_the_seq_it_left() -> None:
    six_events()
    tamper("UPDATE audit_auditevent SET seq = 1000 WHERE seq = 3")
    assert "BROKEN at seq 3: deleted: seq 3 missing" in verify_fails()


def test_a_deleted_row_is_detected() -> None:
    # given six events, when seq 3 is deleted
    six_events()
    tamper("DELETE FROM audit_auditevent WHERE seq = 3")

    # then verification names seq 3 as deleted
    assert "BROKEN at seq 3: deleted: seq 3 missing" in verify_fails()


def test_a_deleted_tail_is_detected_by_the_chain_head() -> None:
    six_events()
    tamper("DELETE FROM audit_auditevent WHERE seq >= 5")
    assert "BROKEN at seq 5: deleted: seqs 5-6 missing (the chain head is at 6)" in verify_fails()


def test_two_swapped_rows_are_detected_as_reordered() -> None:
    # given six events, when rows 3 and 4 exchange their places
    six_events()
    tamper("UPDATE audit_auditevent SET seq = 1000003 WHERE seq = 3")
    tamper("UPDATE audit_auditevent SET seq = 3 WHERE seq = 4")
    tamper("UPDATE audit_auditevent SET seq = 4 WHERE seq = 1000003")

    # then verification names seq 3 as reordered
    message = verify_fails()
    assert "BROKEN at seq 3: reordered: the row at seq 3 was written as seq 4" in message


def test_two_swapped_rows_with_recomputed_hashes_are_detected_as_reordered() -> None:
    # given six events, when an attacker who knows the algorithm swaps rows 3 and 4
    # and recomputes each row's own hash so that every row looks intact
    six_events()
    row3, row4 = list(audit_event_rows(from_seq=3, to_seq=4))
    swapped = []
    for seq, source in ((3, row4), (4, row3)):
        row = {**source, "seq": seq}
        row["hash"] = chain.event_hash(row)
        swapped.append(row)
    reinsert(swapped)

    # then the broken link is found at seq 3
    message = verify_fails()
    assert "BROKEN at seq 3: reordered" in message
    assert "prev_hash" in message


def test_a_rewritten_chain_is_caught_by_its_signed_checkpoint() -> None:
    # given six events signed by a checkpoint (seq 7)
    six_events()
    audit_checkpoint_write()

    # when an insider edits seq 2 and recomputes the whole chain after it
    rows = list(audit_event_rows())
    rows[1]["actor_username"] = "mallory"
    prev = rows[0]["hash"]
    for row in rows[1:]:
        row["prev_hash"] = prev
        row["hash"] = chain.event_hash(row)
        prev = row["hash"]
    reinsert(rows[1:])
    tamper("UPDATE audit_auditchainhead SET last_hash = %s", [prev])

    # then the chain itself is consistent, but the checkpoint does not match it
    assert "BROKEN at seq 1: checkpoint mismatch: seqs 1-7 were rewritten" in verify_fails()


def test_a_forged_checkpoint_fails() -> None:
    # given events, when someone inserts a checkpoint signed by a key that is not ours
    events = six_events()
    forger = Ed25519PrivateKey.generate()
    key_id = chain.key_id_for(signing.public_key())  # claims to be ours
    created_at = "2025-01-01T00:00:00.000000Z"
    signed = chain.checkpoint_signed_bytes(
        seq=events[3].seq, head_hash=events[3].hash, created_at=created_at, key_id=key_id
    )
    AuditCheckpoint(
        seq=events[3].seq,
        head_hash=events[3].hash,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        key_id=key_id,
        signature=forger.sign(signed).hex(),
    ).save()

    # then verification names it
    assert f"BROKEN at seq {events[3].seq}: bad signature" in verify_fails()


def test_a_checkpoint_edited_in_the_database_fails_its_signature() -> None:
    six_events()
    checkpoint = audit_checkpoint_write()
    assert checkpoint is not None
    tamper("UPDATE audit_auditcheckpoint SET head_hash = %s", ["3" * 64])
    assert f"BROKEN at seq {checkpoint.seq}: bad signature" in verify_fails()


def test_a_checkpoint_deleted_from_the_database_is_caught_by_the_anchor_file(
    audit_settings: Path, anchored_checkpoint: Callable[[], AuditCheckpoint]
) -> None:
    # given a checkpoint, anchored outside the database
    six_events()
    checkpoint = anchored_checkpoint()
    assert audit_settings.exists()

    # when an insider deletes it from the database
    tamper("DELETE FROM audit_auditcheckpoint")

    # then the anchor file still names it
    message = verify_fails()
    assert f"BROKEN at seq {checkpoint.seq}: deleted: an anchored checkpoint is missing" in message


def test_a_cut_tail_with_its_checkpoint_and_head_rolled_back_is_caught_by_the_anchor(
    anchored_checkpoint: Callable[[], AuditCheckpoint],
) -> None:
    # given events 1-6 and a checkpoint at 7, anchored
    events = six_events()
    checkpoint = anchored_checkpoint()

    # when an insider removes everything from seq 5 on and rolls the head back to 4
    tamper("DELETE FROM audit_auditevent WHERE seq >= 5")
    tamper("DELETE FROM audit_auditcheckpoint")
    tamper("UPDATE audit_auditchainhead SET last_seq = 4, last_hash = %s", [events[3].hash])

    # then the database alone looks intact, but the anchor proves the cut
    assert audit_chain_verify(use_anchor_file=False).intact
    message = verify_fails()
    assert f"BROKEN at seq {checkpoint.seq}: deleted" in message


def test_a_forged_anchor_line_is_named(
    audit_settings: Path, anchored_checkpoint: Callable[[], AuditCheckpoint]
) -> None:
    six_events()
    anchored_checkpoint()
    record = json.loads(audit_settings.read_text().splitlines()[0])
    record["head_hash"] = "4" * 64
    audit_settings.write_text(json.dumps(record) + "\n")
    assert "bad signature: anchor file line does not verify" in verify_fails()


def test_disabled_triggers_fail_verification() -> None:
    six_events()
    with triggers.suspended(connection):
        message = verify_fails()
    assert "append-only triggers missing, disabled or changed" in message
    assert verify_passes().startswith("audit log intact")


def test_checkpoints_signed_by_a_retired_key_still_verify(settings: Any) -> None:
    # given a checkpoint signed by the old key
    six_events()
    old_public = signing.public_key_base64()
    audit_checkpoint_write()

    # when the signing key is rotated and the old public key kept as trusted
    settings.SAFECHAT_AUDIT_SIGNING_KEY = base64.b64encode(b"\x07" * 32).decode()
    signing.cache_clear()
    settings.SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS = [old_public]
    make_event()
    audit_checkpoint_write()

    # then both verify; without the old key, the old checkpoint does not
    assert verify_passes().startswith("audit log intact")
    settings.SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS = []
    assert "bad signature" in verify_fails()


def test_the_daily_job_records_its_result_as_an_event() -> None:
    # given an intact log, when the job runs, then audit.verified is recorded
    six_events()
    assert audit_chain_verify_task() is True
    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None
    assert last.action == AuditAction.AUDIT_VERIFIED
    assert last.extra["events"] == 6

    # given a broken log, when the job runs, then audit.verification.failed names the seq
    tamper("DELETE FROM audit_auditevent WHERE seq = 2")
    assert audit_chain_verify_task() is False
    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None
    assert last.action == AuditAction.AUDIT_VERIFICATION_FAILED
    assert (last.extra["seq"], last.extra["kind"]) == (2, "deleted")


def test_the_beat_schedule_runs_checkpoints_and_verification(settings: Any) -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["audit-checkpoint"]["task"] == "audit.tasks.audit_checkpoint_write_task"
    assert schedule["audit-checkpoint"]["schedule"] == 300
    assert schedule["audit-verify"]["task"] == "audit.tasks.audit_chain_verify_task"
    assert schedule["audit-verify"]["schedule"] == 86400
