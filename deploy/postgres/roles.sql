-- SafeChat PostgreSQL roles. Run once as a superuser: psql -f roles.sql
-- safechat_owner owns the schema and runs migrations; the application connects
-- as safechat_app, which cannot alter tables, drop triggers or truncate.
CREATE ROLE safechat_owner LOGIN;
CREATE ROLE safechat_app LOGIN;
CREATE DATABASE safechat OWNER safechat_owner;
\connect safechat
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO safechat_app;
-- Tables created later by migrations (run as safechat_owner) get these grants.
ALTER DEFAULT PRIVILEGES FOR ROLE safechat_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO safechat_app;
ALTER DEFAULT PRIVILEGES FOR ROLE safechat_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO safechat_app;

-- Audit log (docs/audit.md): the application may only read and append.
-- The default privileges above would also give safechat_app UPDATE and DELETE on
-- the audit tables; migration audit/0004_revoke_app_privileges (run as
-- safechat_owner) takes back everything but SELECT and INSERT on
-- audit_auditevent and audit_auditcheckpoint, and SELECT, INSERT, UPDATE on the
-- one-row audit_auditchainhead. The triggers of audit/0002 refuse UPDATE, DELETE
-- and TRUNCATE of the log even to the owner's sessions; safechat_app owns nothing,
-- so it can neither disable nor drop them. Never run the application as
-- safechat_owner (`manage.py check --database default` warns: audit.W001).
-- After each `migrate`, this must return no row:
--   SELECT table_name, privilege_type FROM information_schema.role_table_grants
--   WHERE grantee = 'safechat_app' AND table_name LIKE 'audit\_%'
--     AND privilege_type NOT IN ('SELECT', 'INSERT')
--     AND NOT (table_name = 'audit_auditchainhead' AND privilege_type = 'UPDATE');
-- The same, stated explicitly (harmless to repeat once the tables exist):
--   REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
--       ON audit_auditevent, audit_auditcheckpoint FROM safechat_app;
--   REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_auditchainhead FROM safechat_app;
