"""Events carry the channel they came through and the API token they used (canonical
version 2); ``audit_append`` on PostgreSQL takes both. Version 1 rows keep the database
default (empty channel, no token) and verify as they were written."""

from django.db import migrations, models

from audit import pgappend, triggers


def install(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        # SQLite adds the columns by rebuilding the table, which drops its triggers.
        for statement in triggers.uninstall_statements("sqlite"):
            schema_editor.execute(statement, params=None)
        for statement in triggers.install_statements("sqlite"):
            schema_editor.execute(statement, params=None)
        return
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
    # A new signature is a new function: the old one goes, so exactly one is installed.
    schema_editor.execute(pgappend.DROP_FUNCTION_V1_SQL, params=None)
    schema_editor.execute(
        pgappend.create_function_sql(connection.ops.quote_name(schema)), params=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_append_function_checked"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="channel",
            field=models.CharField(blank=True, db_default="", default="", max_length=16),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="token_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(install, migrations.RunPython.noop, elidable=False),
    ]
