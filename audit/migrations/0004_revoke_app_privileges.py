"""PostgreSQL: leave non-owner roles (the application's) only SELECT and INSERT on the log.

deploy/postgres/roles.sql gives the application role SELECT, INSERT, UPDATE and
DELETE on every table the owner creates. For the audit tables this migration
(run as the owner) takes back everything but SELECT and INSERT, and UPDATE of the
one-row chain head, from every role but the owner, whatever its name.
"""

from django.db import migrations

REVOKE_SQL = r"""
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT DISTINCT g.grantee, g.table_name, g.privilege_type
        FROM information_schema.role_table_grants AS g
        JOIN pg_tables AS t ON t.schemaname = g.table_schema AND t.tablename = g.table_name
        WHERE g.table_schema = current_schema()
          AND g.table_name IN ('audit_auditevent', 'audit_auditcheckpoint', 'audit_auditchainhead')
          AND g.grantee <> t.tableowner
          AND g.privilege_type NOT IN ('SELECT', 'INSERT')
          AND NOT (g.table_name = 'audit_auditchainhead' AND g.privilege_type = 'UPDATE')
    LOOP
        IF grant_row.grantee = 'PUBLIC' THEN
            EXECUTE format('REVOKE %s ON %I FROM PUBLIC', grant_row.privilege_type, grant_row.table_name);
        ELSE
            EXECUTE format('REVOKE %s ON %I FROM %I', grant_row.privilege_type, grant_row.table_name, grant_row.grantee);
        END IF;
    END LOOP;
END
$$
"""


def revoke(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVOKE_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_pg_append_function"),
    ]

    operations = [
        migrations.RunPython(revoke, migrations.RunPython.noop, elidable=False),
    ]
