"""The PostgreSQL append function: the whole locked part of ``audit_record`` in one call.

Writers serialise on the chain, so its throughput is one over the time the lock is
held. Python prepares everything that does not depend on the chain head (the
canonical text around ``occurred_at``, ``prev_hash`` and ``seq``, see
``audit.chain.canonical_event_parts``); this function takes the lock, fills in those
three values, hashes with ``sha256()`` and inserts the event and the new head, so
the lock is held for one statement plus the commit instead of two client round
trips more. The verifier re-computes every hash in Python, and the tests verify
every chain they write, so the two cannot drift apart unnoticed.

Installed by migration ``0003_pg_append_function`` and replaced by
``0005_append_function_checked`` (schema-qualified tables, each write checked to touch one
row), then by ``0006_event_channel_token`` (the event's channel and API token).
SECURITY INVOKER (the default): it runs with the caller's privileges (INSERT on events,
UPDATE on the head), and with no settings of its own (no ``SET search_path``);
``audit.triggers`` checks both.
"""

from __future__ import annotations

# Writers queue on a transaction-level advisory lock: its waiters are granted one at
# a time, in order, whereas every waiter on a row lock (it waits on the holder's
# transaction id) wakes at each commit and races again. Unique within this database.
AUDIT_CHAIN_LOCK_KEY = 0x5AFEA0D1

# The key is written out in the SQL below (a test checks it equals the constant).
LOCK_SQL = "SELECT pg_advisory_xact_lock(1526636753)"
HEAD_LOCK_SQL = (
    "SELECT last_seq, last_hash, last_occurred_at FROM audit_auditchainhead "
    "WHERE id = 1 AND pg_advisory_xact_lock(1526636753) IS NOT NULL FOR UPDATE"
)

APPEND_CALL_SQL = (
    "SELECT out_seq, out_occurred_at, out_prev_hash, out_hash FROM audit_append("
    "%s::smallint, %s::text, %s::bigint, %s::text, %s::text, %s::text, %s::text, %s::inet, "
    "%s::text, %s::text, %s::jsonb, %s::timestamptz, %s::text, %s::text, %s::text, %s::text, "
    "%s::text, %s::bigint)"
)

# "{schema}" is the quoted schema the migration ran in (``create_function_sql``): the
# tables are named with it, so neither the caller's search_path nor one set on the function
# can point the writes at look-alike tables. Each write must touch exactly one row: a rule
# or policy that swallows it fails the call (and so the audited action) instead.
CREATE_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION audit_append(
    p_version smallint, p_actor_type text, p_actor_id bigint, p_actor_username text,
    p_action text, p_target_type text, p_target_id text, p_source_ip inet,
    p_user_agent text, p_request_id text, p_extra jsonb, p_now timestamptz,
    p_part1 text, p_part2 text, p_part3 text, p_part4 text, p_channel text, p_token_id bigint
) RETURNS TABLE(out_seq bigint, out_occurred_at timestamptz, out_prev_hash text, out_hash text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head {schema}.audit_auditchainhead%ROWTYPE;
    v_time timestamptz;
    v_seq bigint;
    v_hash text;
    v_rows bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1526636753);
    -- A statement after the lock wait sees the previous writer's commit.
    SELECT * INTO head FROM {schema}.audit_auditchainhead WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        -- Only an empty log may get a new head: a head lost under events is tampering.
        IF EXISTS (SELECT 1 FROM {schema}.audit_auditevent) THEN
            RAISE EXCEPTION 'the audit chain head is missing but events exist';
        END IF;
        INSERT INTO {schema}.audit_auditchainhead (id, last_seq, last_hash, last_occurred_at)
        VALUES (1, 0, repeat('0', 64), NULL) ON CONFLICT DO NOTHING;
        SELECT * INTO head FROM {schema}.audit_auditchainhead WHERE id = 1 FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the audit chain head could not be created';
        END IF;
    END IF;
    -- Time never goes backwards along the chain.
    v_time := greatest(p_now, coalesce(head.last_occurred_at, p_now));
    v_seq := head.last_seq + 1;
    v_hash := encode(sha256(convert_to(
        p_part1 || to_char(v_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        || p_part2 || head.last_hash || p_part3 || v_seq::text || p_part4,
        'UTF8')), 'hex');
    INSERT INTO {schema}.audit_auditevent (
        seq, version, occurred_at, actor_type, actor_id, actor_username, action,
        target_type, target_id, source_ip, user_agent, request_id, extra, prev_hash, hash,
        channel, token_id
    ) VALUES (
        v_seq, p_version, v_time, p_actor_type, p_actor_id, p_actor_username, p_action,
        p_target_type, p_target_id, p_source_ip, p_user_agent, p_request_id, p_extra,
        head.last_hash, v_hash, p_channel, p_token_id
    );
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows <> 1 THEN
        RAISE EXCEPTION 'audit event % was not stored (% rows)', v_seq, v_rows;
    END IF;
    UPDATE {schema}.audit_auditchainhead
    SET last_seq = v_seq, last_hash = v_hash, last_occurred_at = v_time
    WHERE id = 1;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows <> 1 THEN
        RAISE EXCEPTION 'the audit chain head did not advance to % (% rows)', v_seq, v_rows;
    END IF;
    RETURN QUERY SELECT v_seq, v_time, head.last_hash::text, v_hash;
END
$$
"""


def create_function_sql(schema: str) -> str:
    """``CREATE_FUNCTION_SQL`` for the tables in ``schema`` (an already quoted name)."""
    return CREATE_FUNCTION_SQL.replace("{schema}", schema)


DROP_FUNCTION_SQL = (
    "DROP FUNCTION IF EXISTS audit_append(smallint, text, bigint, text, text, text, text, inet, "
    "text, text, jsonb, timestamptz, text, text, text, text, text, bigint)"
)

# The function before events carried their channel and token (migrations 0003 to 0005).
DROP_FUNCTION_V1_SQL = (
    "DROP FUNCTION IF EXISTS audit_append(smallint, text, bigint, text, text, text, text, inet, "
    "text, text, jsonb, timestamptz, text, text, text, text)"
)
