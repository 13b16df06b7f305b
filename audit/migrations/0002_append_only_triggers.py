"""Make the audit tables append-only in the database, and create the chain head row.

Runs as the owner role (which runs migrations); the application role, which does
not own these tables, can then neither change the rows nor drop the triggers.
The SQL lives in audit/triggers.py, versioned with this migration: change it only
through a new migration that drops and re-installs.
"""

from django.db import migrations

from audit import triggers


def install(apps, schema_editor):
    for statement in triggers.install_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)
    head = apps.get_model("audit", "AuditChainHead")
    head.objects.using(schema_editor.connection.alias).get_or_create(
        pk=1, defaults={"last_seq": 0, "last_hash": "0" * 64}
    )


def uninstall(apps, schema_editor):
    for statement in triggers.uninstall_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(install, uninstall, elidable=False),
    ]
