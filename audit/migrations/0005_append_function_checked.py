"""PostgreSQL only: replace ``audit_append`` with the current one (audit/pgappend.py).

Its tables are named with the schema this migration runs in, so no search_path can divert
its writes, and it raises unless the event insert and the head update each touched exactly
one row, so no rewrite rule or row-level policy can swallow an event silently.
``audit.triggers`` compares the installed function with this definition.
"""

from django.db import migrations

from audit import pgappend


def install(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
    sql = pgappend.create_function_sql(connection.ops.quote_name(schema))
    schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_revoke_app_privileges"),
    ]

    # Backwards: the checked function serves the earlier schema as well; it stays.
    operations = [
        migrations.RunPython(install, migrations.RunPython.noop, elidable=False),
    ]
