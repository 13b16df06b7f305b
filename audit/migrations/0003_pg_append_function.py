"""PostgreSQL only: the append function that holds the chain lock for one statement.

See audit/pgappend.py. SQLite needs none: its writers are serialised by the
IMMEDIATE transaction and the ORM path is already fast in-process.
"""

from django.db import migrations

from audit import pgappend


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pgappend.CREATE_FUNCTION_SQL, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pgappend.DROP_FUNCTION_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only_triggers"),
    ]

    operations = [
        migrations.RunPython(install, uninstall, elidable=False),
    ]
