"""Database triggers that make the audit tables append-only below the ORM.

Installed by migration ``0002_append_only_triggers``. Events and checkpoints refuse
UPDATE, DELETE and (PostgreSQL) TRUNCATE; the chain head refuses DELETE and
TRUNCATE and accepts only an UPDATE that advances it by exactly one event.
Triggers stop the application and anyone without owner rights; the owner can
drop them, which is why production runs the application under a role that does
not own these tables (``deploy/postgres/roles.sql``) and why the chain is verified.

SQLite has no TRUNCATE (``DELETE FROM`` without WHERE is its equivalent and fires
the DELETE triggers). A SQLite migration that rebuilds an audit table drops its
triggers: re-run ``install`` in that migration; ``verify_audit`` reports them missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper

APPEND_ONLY_TABLES = ("audit_auditevent", "audit_auditcheckpoint")
HEAD_TABLE = "audit_auditchainhead"
ALL_TABLES = (*APPEND_ONLY_TABLES, HEAD_TABLE)

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _pg_statements() -> list[str]:
    statements = [_PG_FUNCTION]
    for table in APPEND_ONLY_TABLES:
        statements += [
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
        ]
    statements += [
        f"CREATE TRIGGER {HEAD_TABLE}_no_delete BEFORE DELETE ON {HEAD_TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
        f"CREATE TRIGGER {HEAD_TABLE}_no_truncate BEFORE TRUNCATE ON {HEAD_TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
        f"CREATE TRIGGER {HEAD_TABLE}_forward_only BEFORE UPDATE ON {HEAD_TABLE} "
        "FOR EACH ROW WHEN (NEW.id <> OLD.id OR NEW.last_seq <> OLD.last_seq + 1) "
        "EXECUTE FUNCTION audit_refuse_change()",
    ]
    return statements


def _sqlite_raise(operation: str, table: str) -> str:
    return f"SELECT RAISE(ABORT, 'the audit log is append-only: {operation} on {table} refused');"


def _sqlite_statements() -> list[str]:
    statements: list[str] = []
    for table in APPEND_ONLY_TABLES:
        for operation in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN {_sqlite_raise(operation, table)} END"
            )
    statements += [
        f"CREATE TRIGGER {HEAD_TABLE}_no_delete BEFORE DELETE ON {HEAD_TABLE} "
        f"BEGIN {_sqlite_raise('DELETE', HEAD_TABLE)} END",
        f"CREATE TRIGGER {HEAD_TABLE}_forward_only BEFORE UPDATE ON {HEAD_TABLE} "
        "WHEN NEW.id <> OLD.id OR NEW.last_seq <> OLD.last_seq + 1 "
        f"BEGIN {_sqlite_raise('UPDATE', HEAD_TABLE)} END",
    ]
    return statements


def trigger_names(vendor: str) -> list[str]:
    """The names of the triggers ``install`` creates on ``vendor``."""
    statements = _pg_statements()[1:] if vendor == "postgresql" else _sqlite_statements()
    return [statement.split()[2] for statement in statements]


def install_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return _pg_statements()
    if vendor == "sqlite":
        return _sqlite_statements()
    raise NotImplementedError(f"no audit triggers for the {vendor} backend")


def uninstall_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        drops = [
            f"DROP TRIGGER IF EXISTS {name} ON {name.rsplit('_', 2)[0]}"
            for name in trigger_names(vendor)
        ]
        return [*drops, "DROP FUNCTION IF EXISTS audit_refuse_change()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in trigger_names(vendor)]


def install(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for statement in install_statements(connection.vendor):
            cursor.execute(statement)


def uninstall(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for statement in uninstall_statements(connection.vendor):
            cursor.execute(statement)


def missing_or_disabled(connection: BaseDatabaseWrapper) -> list[str]:
    """Names of expected triggers that are absent or disabled (empty when all hold)."""
    expected = trigger_names(connection.vendor)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
                "AND tgname = ANY(%s)",
                [expected],
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        present = {row[0] for row in cursor.fetchall()}
    return [name for name in expected if name not in present]


@contextmanager
def suspended(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Switch the triggers off for the block, as only a table owner can.

    For tests (flushing the database between transactional tests, simulating an
    insider) and the benchmark's bulk loader; the application never calls it.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ALL_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                for table in ALL_TABLES:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    else:
        uninstall(connection)
        try:
            yield
        finally:
            install(connection)
