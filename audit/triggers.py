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
from typing import Any

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


def _normalised(sql: str) -> str:
    return " ".join(sql.replace("\n", " ").split()).strip().rstrip(";").lower()


def _pg_function_body(create_sql: str) -> str:
    return create_sql.split("$$")[1]


# What pg_get_triggerdef() prints for each trigger `install` creates ("{schema}" is the
# current schema): the events, timing, level, condition and function, exactly.
def _pg_expected_definitions(schema: str) -> dict[str, str]:
    defs: dict[str, str] = {}
    function = "EXECUTE FUNCTION audit_refuse_change()"
    for table in APPEND_ONLY_TABLES:
        defs[f"{table}_append_only"] = (
            f"CREATE TRIGGER {table}_append_only BEFORE DELETE OR UPDATE ON {schema}.{table} "
            f"FOR EACH ROW {function}"
        )
        defs[f"{table}_no_truncate"] = (
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {schema}.{table} "
            f"FOR EACH STATEMENT {function}"
        )
    defs[f"{HEAD_TABLE}_no_delete"] = (
        f"CREATE TRIGGER {HEAD_TABLE}_no_delete BEFORE DELETE ON {schema}.{HEAD_TABLE} "
        f"FOR EACH ROW {function}"
    )
    defs[f"{HEAD_TABLE}_no_truncate"] = (
        f"CREATE TRIGGER {HEAD_TABLE}_no_truncate BEFORE TRUNCATE ON {schema}.{HEAD_TABLE} "
        f"FOR EACH STATEMENT {function}"
    )
    defs[f"{HEAD_TABLE}_forward_only"] = (
        f"CREATE TRIGGER {HEAD_TABLE}_forward_only BEFORE UPDATE ON {schema}.{HEAD_TABLE} "
        "FOR EACH ROW WHEN (((new.id <> old.id) OR (new.last_seq <> (old.last_seq + 1)))) "
        f"{function}"
    )
    return defs


_PG_RULES_SQL = (
    "SELECT c.relname, r.rulename FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) ORDER BY 1, 2"
)
_PG_ROW_SECURITY_SQL = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) "
    "AND (c.relrowsecurity OR c.relforcerowsecurity) ORDER BY 1"
)
_PG_POLICIES_SQL = (
    "SELECT c.relname, p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) ORDER BY 1, 2"
)


def _pg_table_problems(cursor: Any) -> list[str]:
    """Rewrite rules, row-level security and policies on the audit tables: each can hide
    or divert events while every trigger stays as installed."""
    problems: list[str] = []
    cursor.execute(_PG_RULES_SQL, [list(ALL_TABLES)])
    problems += [f"rule {rule} on {table}" for table, rule in cursor.fetchall()]
    cursor.execute(_PG_ROW_SECURITY_SQL, [list(ALL_TABLES)])
    problems += [f"row-level security on {table}" for (table,) in cursor.fetchall()]
    cursor.execute(_PG_POLICIES_SQL, [list(ALL_TABLES)])
    problems += [f"policy {policy} on {table}" for table, policy in cursor.fetchall()]
    return problems


def _pg_function_problems(cursor: Any, *, quoted_schema: str) -> list[str]:
    """``audit_refuse_change`` and ``audit_append`` exactly as installed: one of each, the
    same body, SECURITY INVOKER, no settings of their own (a ``SET search_path`` would send
    their writes to look-alike tables), owned by the role that owns the audit tables."""
    from audit.pgappend import create_function_sql

    cursor.execute(
        "SELECT pg_get_userbyid(c.relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = %s",
        [APPEND_ONLY_TABLES[0]],
    )
    row = cursor.fetchone()
    table_owner = row[0] if row else None
    cursor.execute(
        "SELECT p.proname, p.prosrc, p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND p.proname = ANY(%s)",
        [["audit_refuse_change", "audit_append"]],
    )
    functions: dict[str, list[tuple[str, bool, list[str] | None, str]]] = {}
    for name, source, security_definer, config, owner in cursor.fetchall():
        functions.setdefault(name, []).append((source, security_definer, config, owner))
    problems: list[str] = []
    for name, create_sql in (
        ("audit_refuse_change", _PG_FUNCTION),
        ("audit_append", create_function_sql(quoted_schema)),
    ):
        versions = functions.get(name, [])
        if len(versions) != 1:
            problems.append(f"function {name} {'missing' if not versions else 'overloaded'}")
            continue
        source, security_definer, config, owner = versions[0]
        if _normalised(source) != _normalised(_pg_function_body(create_sql)) or security_definer:
            problems.append(f"function {name} redefined")
        if config is not None:
            problems.append(f"function {name} has settings {', '.join(config)}")
        if table_owner is not None and owner != table_owner:
            problems.append(f"function {name} owned by {owner}, not {table_owner}")
    return problems


def _pg_problems(connection: BaseDatabaseWrapper) -> list[str]:
    problems: list[str] = []
    expected_names = trigger_names("postgresql")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
        cursor.execute(
            "SELECT t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = current_schema() AND c.relname = ANY(%s)",
            [list(ALL_TABLES)],
        )
        found = {name: (enabled, definition) for name, enabled, definition in cursor.fetchall()}
        table_problems = _pg_table_problems(cursor)
        function_problems = _pg_function_problems(
            cursor, quoted_schema=connection.ops.quote_name(schema)
        )
    expected = _pg_expected_definitions(schema)
    for name in expected_names:
        if name not in found:
            problems.append(f"{name} missing")
            continue
        enabled, definition = found[name]
        if enabled != "O":
            # 'D' disabled, 'R' fires only for replicas, 'A' always: anything but the
            # default state means someone changed it.
            problems.append(f"{name} state {enabled!r}, not enabled")
        if _normalised(definition) != _normalised(expected[name]):
            problems.append(f"{name} redefined")
    problems += [f"{name} unexpected" for name in sorted(set(found) - set(expected_names))]
    return problems + table_problems + function_problems


def _sqlite_problems(connection: BaseDatabaseWrapper) -> list[str]:
    expected = {statement.split()[2]: statement for statement in _sqlite_statements()}
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        found = {name: sql for name, table, sql in cursor.fetchall() if table in ALL_TABLES}
    problems: list[str] = []
    for name, statement in expected.items():
        if name not in found:
            problems.append(f"{name} missing")
        elif _normalised(found[name] or "") != _normalised(statement):
            problems.append(f"{name} redefined")
    problems += [f"{name} unexpected" for name in sorted(set(found) - set(expected))]
    return problems


def trigger_problems(connection: BaseDatabaseWrapper) -> list[str]:
    """What differs from the append-only protection ``install`` set up (empty when intact).

    Compares each trigger exactly (present, in the default enabled state: not disabled,
    not ``ENABLE REPLICA`` or ``ALWAYS``; its events, timing, level, condition and
    function), any extra trigger on the audit tables, and on PostgreSQL: no rewrite rule,
    row-level security or policy on the audit tables, and ``audit_refuse_change`` and
    ``audit_append`` with their installed bodies, SECURITY INVOKER, no settings of their own
    (``proconfig`` empty: no ``SET search_path``) and the audit tables' owner as owner.
    """
    if connection.vendor == "postgresql":
        return _pg_problems(connection)
    return _sqlite_problems(connection)


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
