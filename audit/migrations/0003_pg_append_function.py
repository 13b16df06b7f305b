"""PostgreSQL only: the append function that holds the chain lock for one statement.

See audit/pgappend.py. SQLite needs none: its writers are serialised by the
IMMEDIATE transaction and the ORM path is already fast in-process. The function as this
migration installed it is kept here; 0005 replaces it with the current one.
"""

from django.db import migrations

from audit import pgappend

CREATE_FUNCTION_SQL_0003 = """
CREATE OR REPLACE FUNCTION audit_append(
    p_version smallint, p_actor_type text, p_actor_id bigint, p_actor_username text,
    p_action text, p_target_type text, p_target_id text, p_source_ip inet,
    p_user_agent text, p_request_id text, p_extra jsonb, p_now timestamptz,
    p_part1 text, p_part2 text, p_part3 text, p_part4 text
) RETURNS TABLE(out_seq bigint, out_occurred_at timestamptz, out_prev_hash text, out_hash text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head audit_auditchainhead%ROWTYPE;
    v_time timestamptz;
    v_seq bigint;
    v_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(1526636753);
    -- A statement after the lock wait sees the previous writer's commit.
    SELECT * INTO head FROM audit_auditchainhead WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        -- Only an empty log may get a new head: a head lost under events is tampering.
        IF EXISTS (SELECT 1 FROM audit_auditevent) THEN
            RAISE EXCEPTION 'the audit chain head is missing but events exist';
        END IF;
        INSERT INTO audit_auditchainhead (id, last_seq, last_hash, last_occurred_at)
        VALUES (1, 0, repeat('0', 64), NULL) ON CONFLICT DO NOTHING;
        SELECT * INTO head FROM audit_auditchainhead WHERE id = 1 FOR UPDATE;
    END IF;
    -- Time never goes backwards along the chain.
    v_time := greatest(p_now, coalesce(head.last_occurred_at, p_now));
    v_seq := head.last_seq + 1;
    v_hash := encode(sha256(convert_to(
        p_part1 || to_char(v_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        || p_part2 || head.last_hash || p_part3 || v_seq::text || p_part4,
        'UTF8')), 'hex');
    INSERT INTO audit_auditevent (
        seq, version, occurred_at, actor_type, actor_id, actor_username, action,
        target_type, target_id, source_ip, user_agent, request_id, extra, prev_hash, hash
    ) VALUES (
        v_seq, p_version, v_time, p_actor_type, p_actor_id, p_actor_username, p_action,
        p_target_type, p_target_id, p_source_ip, p_user_agent, p_request_id, p_extra,
        head.last_hash, v_hash
    );
    UPDATE audit_auditchainhead
    SET last_seq = v_seq, last_hash = v_hash, last_occurred_at = v_time
    WHERE id = 1;
    RETURN QUERY SELECT v_seq, v_time, head.last_hash::text, v_hash;
END
$$
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_FUNCTION_SQL_0003, params=None)


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
