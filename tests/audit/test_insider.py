"""Verification against an insider who writes the database directly (issue 12, cases 4, 5).

On PostgreSQL the insider is a superuser with ``session_replication_role = replica``:
ordinary triggers do not fire, so nothing in the database stops the write. On SQLite the
same edits run with the triggers dropped (``tamper``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection
from pytest_django import Settings

from audit import chain
from audit.anchors import anchor_line
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.selectors import audit_event_rows
from audit.services import audit_chain_verify, audit_checkpoint_write
from audit.services.checkpoints import AuditSegmentError
from tests.audit.factories import make_event, make_events, tamper

pytestmark = pytest.mark.django_db


@contextmanager
def insider() -> Iterator[Any]:
    """A cursor that writes as the insider: superuser, replica role (PostgreSQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
            try:
                yield cursor
            finally:
                cursor.execute("SET session_replication_role = DEFAULT")
        else:
            yield cursor


def insider_sql(sql: str, params: list[Any] | None = None) -> None:
    if connection.vendor == "postgresql":
        with insider() as cursor:
            cursor.execute(sql, params)
    else:
        tamper(sql, params)


@pytest.fixture
def anchored(django_capture_on_commit_callbacks: Any) -> Callable[[], AuditCheckpoint]:
    def write() -> AuditCheckpoint:
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = audit_checkpoint_write()
        assert checkpoint is not None
        return checkpoint

    return write


def problems() -> list[tuple[int, str]]:
    return [(p.seq, p.kind) for p in audit_chain_verify().problems]


def summary() -> str:
    return audit_chain_verify().summary


def forged_event(after: dict[str, Any], *, seq: int, consistent_hash: bool) -> dict[str, Any]:
    row = dict(after)
    row.update(seq=seq, prev_hash=after["hash"], action="auth.login.succeeded")
    row["extra"] = {"forged": True}
    row["hash"] = chain.event_hash(row) if consistent_hash else "a" * 64
    return row


def insert_event(row: dict[str, Any]) -> None:
    occurred = row["occurred_at"]
    if isinstance(occurred, str):
        occurred = occurred.replace("T", " ").rstrip("Z") + "+00:00"
    insider_sql(
        "INSERT INTO audit_auditevent (seq, version, occurred_at, actor_type, actor_id, "
        "actor_username, action, target_type, target_id, source_ip, user_agent, request_id, "
        "extra, prev_hash, hash, channel, token_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            row["seq"], row["v"], occurred, row["actor_type"], row["actor_id"],
            row["actor_username"], row["action"], row["target_type"], row["target_id"],
            row["source_ip"], row["user_agent"], row["request_id"], json.dumps(row["extra"]),
            row["prev_hash"], row["hash"], row.get("channel", ""), row.get("token_id"),
        ],
    )  # fmt: skip


def test_a_row_forged_beyond_the_head_fails_verification_and_is_never_signed() -> None:
    # given an intact log, when an insider inserts a row past the head (head untouched)
    make_events(4)
    rows = list(audit_event_rows())
    insert_event(forged_event(rows[-1], seq=5, consistent_hash=True))

    # then verification reads past the head and names it
    assert (5, chain.KIND_INSERTED) in problems()
    assert "inserted" in summary()
    # and the checkpoint writer refuses to sign
    with pytest.raises(AuditSegmentError):
        audit_checkpoint_write()
    assert not AuditCheckpoint.objects.exists()


def test_a_forged_event_with_the_head_advanced_is_not_signed() -> None:
    # given an intact log, and a forged event appended with the head moved onto it
    make_events(4)
    rows = list(audit_event_rows())
    forged = forged_event(rows[-1], seq=5, consistent_hash=False)
    insert_event(forged)
    insider_sql(
        "UPDATE audit_auditchainhead SET last_seq = 5, last_hash = %s WHERE id = 1",
        [forged["hash"]],
    )

    # when the next checkpoint runs, then it verifies the segment and signs nothing
    with pytest.raises(AuditSegmentError) as refused:
        audit_checkpoint_write()
    assert refused.value.problem.seq == 5
    assert not AuditCheckpoint.objects.exists()
    assert (5, chain.KIND_EDITED) in problems()


def test_a_segment_after_a_checkpoint_is_verified_from_that_checkpoint(
    anchored: Callable[[], AuditCheckpoint],
) -> None:
    make_events(3)
    first = anchored()
    make_events(2)
    insider_sql(
        "UPDATE audit_auditevent SET actor_username = 'mallory' WHERE seq = %s", [first.seq + 1]
    )

    with pytest.raises(AuditSegmentError) as refused:
        audit_checkpoint_write()

    assert refused.value.problem.seq == first.seq + 1
    assert AuditCheckpoint.objects.count() == 1


def test_a_missing_anchor_file_is_a_failure_unless_anchors_are_off(
    audit_settings: Path, anchored: Callable[[], AuditCheckpoint], settings: Settings
) -> None:
    # given an anchored log whose anchor file disappeared, and a tail cut with its checkpoint
    events = make_events(6)
    anchored()
    audit_settings.unlink()
    insider_sql("DELETE FROM audit_auditevent WHERE seq >= 5")
    insider_sql("DELETE FROM audit_auditcheckpoint")
    insider_sql(
        "UPDATE audit_auditchainhead SET last_seq = 4, last_hash = %s WHERE id = 1",
        [events[3].hash],
    )

    # then verification says the anchor file is missing (never "0 anchors verified")
    assert "anchor file" in summary()
    assert "missing" in summary()
    # and with anchors explicitly off, only what the database shows is checked
    settings.SAFECHAT_AUDIT_ANCHOR_FILE = "off"
    assert audit_chain_verify().intact


def test_an_unreadable_anchor_file_is_a_failure(
    audit_settings: Path, settings: Settings, tmp_path: Path
) -> None:
    make_events(2)
    settings.SAFECHAT_AUDIT_ANCHOR_FILE = str(tmp_path)  # a directory

    result = audit_chain_verify()

    assert not result.intact
    assert "anchor file" in result.summary


def test_a_whole_chain_rewrite_with_its_checkpoints_deleted_is_caught(
    anchored: Callable[[], AuditCheckpoint],
) -> None:
    make_events(5)
    checkpoint = anchored()
    rows = list(audit_event_rows())
    prev = chain.GENESIS_HASH
    for row in rows:
        row["actor_username"] = "mallory"
        row["prev_hash"] = prev
        row["hash"] = chain.event_hash(row)
        prev = row["hash"]
    insider_sql("DELETE FROM audit_auditcheckpoint")
    insider_sql("DELETE FROM audit_auditevent")
    for row in rows:
        insert_event(row)
    insider_sql("UPDATE audit_auditchainhead SET last_hash = %s WHERE id = 1", [prev])

    assert audit_chain_verify(use_anchor_file=False).intact  # the database alone agrees
    assert (checkpoint.seq, chain.KIND_DELETED) in problems()


def test_a_consistent_rewrite_is_reported_as_the_range_that_changed(
    anchored: Callable[[], AuditCheckpoint],
) -> None:
    # given checkpoints after seq 4 (covering 1-4) and after 4 more events
    make_events(3)
    first = anchored()
    make_events(3)
    second = anchored()

    # when an insider rewrites consistently from the event after the first checkpoint
    rows = list(audit_event_rows(from_seq=first.seq + 1))
    prev = first.head_hash
    for row in rows:
        row["actor_username"] = "mallory"
        row["prev_hash"] = prev
        row["hash"] = chain.event_hash(row)
        prev = row["hash"]
    insider_sql("DELETE FROM audit_auditevent WHERE seq > %s", [first.seq])
    for row in rows:
        insert_event(row)
    insider_sql("UPDATE audit_auditchainhead SET last_hash = %s WHERE id = 1", [prev])

    # then the problem names the range between the checkpoints, not just the second one
    problem = audit_chain_verify().problems[0]
    assert (problem.seq, problem.kind) == (first.seq + 1, chain.KIND_CHECKPOINT_MISMATCH)
    assert f"seqs {first.seq + 1}-{second.seq} were rewritten" in problem.detail


def test_anchor_lines_of_another_database_are_not_this_databases(
    audit_settings: Path, anchored: Callable[[], AuditCheckpoint]
) -> None:
    # given this log's anchor, and lines another database wrote into the same file
    make_events(3)
    ours = anchored()
    record = json.loads(audit_settings.read_text().splitlines()[0])
    foreign = {**record, "seq": ours.seq + 50}
    with audit_settings.open("a") as handle:
        handle.write(anchor_line(foreign, database="postgresql://elsewhere:5432/other"))

    # then verification reads only its own lines
    result = audit_chain_verify()
    assert result.intact, result.summary
    assert result.anchors_checked == 1


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE audit_auditevent ENABLE REPLICA TRIGGER audit_auditevent_append_only",
        "ALTER TABLE audit_auditevent ENABLE ALWAYS TRIGGER audit_auditevent_no_truncate",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_append_only",
        "CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NEW; END $$",
        "DROP TRIGGER audit_auditchainhead_forward_only ON audit_auditchainhead; "
        "CREATE TRIGGER audit_auditchainhead_forward_only BEFORE UPDATE ON audit_auditchainhead "
        "FOR EACH ROW WHEN (NEW.id <> OLD.id) EXECUTE FUNCTION audit_refuse_change()",
    ],
    ids=["replica", "always", "disabled", "no-op function", "weaker condition"],
)
def test_triggers_are_compared_exactly_on_postgresql(change: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL trigger states")
    make_events(2)
    with connection.cursor() as cursor:
        cursor.execute(change)

    result = audit_chain_verify()

    assert not result.intact
    assert "append-only triggers missing, disabled or changed" in result.summary


APPEND_SIGNATURE = (
    "smallint, text, bigint, text, text, text, text, inet, text, text, jsonb, timestamptz, "
    "text, text, text, text, text, bigint"
)


def head_seq() -> int:
    return AuditChainHead.objects.get(pk=1).last_seq


@pytest.fixture
def insider_rule() -> Iterator[Callable[[str], None]]:
    """Create an insider's rewrite rule (committed, as theirs would be); dropped afterwards,
    and this session closed: a plan made while a DO INSTEAD NOTHING rule stood keeps doing
    nothing in the session that made it."""
    created: list[tuple[str, str]] = []

    def create(sql: str) -> None:
        words = sql.split()
        created.append((words[2], words[words.index("TO") + 1]))
        with connection.cursor() as cursor:
            cursor.execute(sql)

    yield create
    with connection.cursor() as cursor:
        for name, table in created:
            cursor.execute(f"DROP RULE IF EXISTS {name} ON {table}")
    connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("rule", "table"),
    [
        (
            "CREATE RULE zz_hide AS ON INSERT TO audit_auditevent "
            "WHERE NEW.action = 'auth.login.failed' DO INSTEAD NOTHING",
            "audit_auditevent",
        ),
        (
            "CREATE RULE zz_hold AS ON UPDATE TO audit_auditchainhead DO INSTEAD NOTHING",
            "audit_auditchainhead",
        ),
    ],
    ids=["swallowed event", "held head"],
)
def test_a_rule_that_swallows_an_append_fails_it_and_verification(
    rule: str, table: str, insider_rule: Callable[[str], None]
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL rewrite rules")
    # given an intact log, and an insider's rule that drops chosen events or head moves
    make_events(2)
    insider_rule(rule)
    seq, count = head_seq(), AuditEvent.objects.count()

    # when an event is recorded, the append fails instead of losing the event silently
    with pytest.raises(DatabaseError, match=r"not stored|did not advance"):
        make_event()

    # then nothing was written, and verification names the rule
    assert (head_seq(), AuditEvent.objects.count()) == (seq, count)
    result = audit_chain_verify()
    assert not result.intact
    assert f"rule {rule.split()[2]} on {table}" in result.summary


def test_a_search_path_on_the_append_function_diverts_nothing_and_is_caught() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL function settings")
    # given look-alike audit tables in another schema, and the append function told to
    # look there first
    make_events(2)
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA zz_shadow")
        for table in ("audit_auditevent", "audit_auditchainhead"):
            cursor.execute(f"CREATE TABLE zz_shadow.{table} (LIKE {table} INCLUDING ALL)")
        cursor.execute(
            "INSERT INTO zz_shadow.audit_auditchainhead SELECT * FROM audit_auditchainhead"
        )
        cursor.execute(
            f"ALTER FUNCTION audit_append({APPEND_SIGNATURE}) SET search_path = zz_shadow, public"
        )

    # when an event is recorded
    event = make_event()

    # then it is in the audit log, not the look-alike, and verification names the setting
    assert AuditEvent.objects.filter(seq=event.seq).exists()
    assert head_seq() == event.seq
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM zz_shadow.audit_auditevent")
        assert cursor.fetchone() == (0,)
    result = audit_chain_verify()
    assert not result.intact
    assert "function audit_append has settings search_path=zz_shadow, public" in result.summary


@pytest.mark.parametrize(
    ("change", "reported"),
    [
        (
            "ALTER TABLE audit_auditevent ENABLE ROW LEVEL SECURITY",
            "row-level security on audit_auditevent",
        ),
        (
            "ALTER TABLE audit_auditcheckpoint FORCE ROW LEVEL SECURITY",
            "row-level security on audit_auditcheckpoint",
        ),
        (
            "CREATE POLICY zz_some ON audit_auditevent USING (action <> 'key.integrity.failed')",
            "policy zz_some on audit_auditevent",
        ),
        (
            "ALTER FUNCTION audit_refuse_change() SET search_path = pg_temp",
            "function audit_refuse_change has settings search_path=pg_temp",
        ),
        (
            f"ALTER FUNCTION audit_append({APPEND_SIGNATURE}) SECURITY DEFINER",
            "function audit_append redefined",
        ),
    ],
    ids=["rls", "forced rls", "policy", "refuse search_path", "security definer"],
)
def test_row_security_policies_and_function_settings_fail_verification(
    change: str, reported: str
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL row security and function settings")
    make_events(2)
    with connection.cursor() as cursor:
        cursor.execute(change)

    result = audit_chain_verify()

    assert not result.intact
    assert reported in result.summary


def test_an_append_function_owned_by_another_role_fails_verification() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL function owners")
    # given a role that does not own the audit tables, made owner of the append function
    # (inside this test's transaction: both are rolled back with it)
    role = f"zz_owner_{uuid.uuid4().hex[:12]}"
    make_events(2)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"ALTER FUNCTION audit_append({APPEND_SIGNATURE}) OWNER TO {role}")

    result = audit_chain_verify()

    assert not result.intact
    assert f"function audit_append owned by {role}" in result.summary


def test_a_replaced_trigger_is_caught_on_sqlite() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite trigger definitions")
    make_events(2)
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER audit_auditevent_no_update")
        cursor.execute(
            "CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent "
            "WHEN 0 BEGIN SELECT RAISE(ABORT, 'no'); END"
        )

    result = audit_chain_verify()

    assert "audit_auditevent_no_update redefined" in result.summary


def test_an_intact_log_still_verifies() -> None:
    make_events(3)
    assert audit_chain_verify().intact
    assert AuditEvent.objects.count() == 3
