#!/bin/sh
# First start of the PostgreSQL container: SafeChat's two roles and database
# (deploy/postgres/roles.sql), with their passwords from the compose secrets.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -f /safechat/roles.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
    -v owner_password="$(cat /run/secrets/db_owner_password)" \
    -v app_password="$(cat /run/secrets/db_app_password)" <<'SQL'
ALTER ROLE safechat_owner PASSWORD :'owner_password';
ALTER ROLE safechat_app PASSWORD :'app_password';
SQL
