"""``manage.py check --database default``: is the application able to rewrite the log?"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import connections


@register(Tags.database)
def audit_tables_not_owned_by_the_application(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when the connecting role owns the audit tables (it could drop the triggers)."""
    messages: list[CheckMessage] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tableowner = current_user FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename = 'audit_auditevent'"
            )
            row = cursor.fetchone()
        if row and row[0]:
            messages.append(
                Warning(
                    "The application connects as the owner of the audit tables, "
                    "so it could drop their append-only triggers.",
                    hint="Run migrations as safechat_owner and the application as "
                    "safechat_app (deploy/postgres/roles.sql, docs/audit.md).",
                    id="audit.W001",
                )
            )
    return messages
