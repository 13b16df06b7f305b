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
