"""Nobody changes or deletes audit rows: not the ORM, not raw SQL, not a superuser."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditLogImmutableError
from audit.services import audit_checkpoint_write
from tests.audit.factories import log_state, make_events

pytestmark = pytest.mark.django_db


def snapshot() -> list[tuple[object, ...]]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "extra", "hash"))


def test_the_orm_refuses_to_save_an_existing_event() -> None:
    # given an event
    event = make_events(1)[0]
    before = snapshot()

    # when it is changed and saved
    event.action = "auth.logout"
    with pytest.raises(AuditLogImmutableError):
        event.save()

    # then nothing changed
    assert snapshot() == before


def test_the_orm_refuses_every_delete_and_update() -> None:
    make_events(3)
    before = snapshot()
    event = AuditEvent.objects.order_by("seq").first()
    assert event is not None

    with pytest.raises(AuditLogImmutableError):
        event.delete()
    with pytest.raises(AuditLogImmutableError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditLogImmutableError):
        AuditEvent.objects.filter(seq=event.seq).update(action="auth.logout")
    with pytest.raises(AuditLogImmutableError):
        AuditEvent.objects.bulk_update([event], ["action"])

    assert snapshot() == before


def _raw_refused(sql: str) -> None:
    """``sql`` fails in the database; the savepoint keeps the test's transaction usable."""
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


@pytest.mark.parametrize("table", ["audit_auditevent", "audit_auditcheckpoint"])
def test_raw_sql_update_and_delete_fail_in_the_database(table: str) -> None:
    # given events and a checkpoint
    make_events(3)
    audit_checkpoint_write()
    before = (snapshot(), list(AuditCheckpoint.objects.values_list("seq", "signature")))

    # when raw SQL bypasses the ORM, then the triggers refuse it
    # (table names come from the parametrisation, not from input)
    _raw_refused(f"UPDATE {table} SET seq = seq + 1000")  # noqa: S608
    _raw_refused(f"DELETE FROM {table} WHERE seq = (SELECT MIN(seq) FROM {table})")  # noqa: S608
    # SQLite has no TRUNCATE: an unqualified DELETE FROM is its equivalent.
    _raw_refused(f"DELETE FROM {table}")  # noqa: S608

    # and nothing changed
    assert (snapshot(), list(AuditCheckpoint.objects.values_list("seq", "signature"))) == before


@pytest.mark.parametrize(
    "table", ["audit_auditevent", "audit_auditcheckpoint", "audit_auditchainhead"]
)
def test_truncate_fails_on_postgresql(table: str) -> None:
    if connection.vendor != "postgresql":
        # SQLite has no TRUNCATE statement; DELETE FROM is covered above.
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE TABLE {table}")
        return
    make_events(2)
    before = log_state()
    _raw_refused(f"TRUNCATE TABLE {table}")
    _raw_refused(f"TRUNCATE TABLE {table} CASCADE")
    assert log_state() == before


def test_the_chain_head_only_moves_forward_by_one() -> None:
    # given a head after some events
    make_events(3)
    before = log_state()

    # when raw SQL rolls it back, jumps it, or deletes it, then the database refuses
    _raw_refused("UPDATE audit_auditchainhead SET last_seq = last_seq - 1")
    _raw_refused("UPDATE audit_auditchainhead SET last_seq = last_seq + 5")
    _raw_refused("UPDATE audit_auditchainhead SET last_hash = 'x'")
    _raw_refused("DELETE FROM audit_auditchainhead")
    with pytest.raises(AuditLogImmutableError):
        AuditChainHead.objects.get().delete()

    assert log_state() == before


def test_events_have_no_foreign_keys_that_could_cascade() -> None:
    # Deleting a user must never delete (or be blocked by) their audit trail.
    assert not [field for field in AuditEvent._meta.get_fields() if field.is_relation]


def test_the_application_role_can_append_but_not_rewrite_on_postgresql() -> None:
    """What deploy/postgres/roles.sql sets up: the app role owns nothing and may only append."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no roles: its triggers are its only guard (tested above)")
    import importlib

    revoke_sql = importlib.import_module("audit.migrations.0004_revoke_app_privileges").REVOKE_SQL
    make_events(2)
    with connection.cursor() as cursor:
        # given an application role with the default privileges roles.sql grants,
        # and the revocation the audit migration runs as the owner
        cursor.execute("CREATE ROLE audit_test_app NOLOGIN")
        cursor.execute("GRANT USAGE ON SCHEMA public TO audit_test_app")
        cursor.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON audit_auditevent, "
            "audit_auditcheckpoint, audit_auditchainhead TO audit_test_app"
        )
        cursor.execute(revoke_sql)
        cursor.execute("SET ROLE audit_test_app")
    try:
        # when the application appends, then it works (events and checkpoints)
        before = log_state()
        make_events(1)
        assert audit_checkpoint_write() is not None
        assert log_state()[0] == before[0] + 2

        # when it tries to rewrite or unprotect the log, then privileges refuse it first
        after = log_state()
        for sql in (
            "UPDATE audit_auditevent SET action = 'auth.logout'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
            "DELETE FROM audit_auditcheckpoint",
            "DELETE FROM audit_auditchainhead",
            "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
            "DROP TRIGGER audit_auditevent_append_only ON audit_auditevent",
            "SET session_replication_role = replica",
        ):
            with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
        assert log_state() == after
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def test_a_fork_is_refused_by_the_database() -> None:
    # given a chain
    events = make_events(2)
    before = log_state()

    # when someone inserts a second event claiming the same predecessor (INSERT is allowed)
    forged = AuditEvent(
        seq=1000,
        occurred_at=events[1].occurred_at,
        actor_type="system",
        actor_username="system:forger",
        action="auth.logout",
        prev_hash=events[1].prev_hash,
        hash="f" * 64,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()

    # then the database refuses it: prev_hash is unique
    assert log_state() == before
