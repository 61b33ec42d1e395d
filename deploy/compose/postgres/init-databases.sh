#!/usr/bin/env bash
# First start of the PostgreSQL container only (docker-entrypoint-initdb.d): one role and one
# database per service (and the console), plus baove_auth for the shared token store. Each role owns only its own
# database; PUBLIC may not connect to any of them. Passwords come from the environment (.env).
set -euo pipefail

create() {
  local role=$1 database=$2 password=$3
  [ -n "$password" ] || { echo "init-databases.sh: no password for $role" >&2; exit 1; }
  # psql variables (:'name', :"name") quote the values, so a password cannot break the SQL.
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="$role" -v database="$database" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
SQL
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$database" -v role="$role" <<'SQL'
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"role";
SQL
}

create baove_auth baove_auth "${AUTH_DB_PASSWORD:-}"
create intake baove_intake "${INTAKE_DB_PASSWORD:-}"
create routing baove_routing "${ROUTING_DB_PASSWORD:-}"
# The console's browser sessions.
create console baove_console "${CONSOLE_DB_PASSWORD:-}"

# The healthcheck waits for this database (over TCP, which the server opens only once every init script ran).
create reporting baove_reporting "${REPORTING_DB_PASSWORD:-}"

# The token store: baove_auth owns it (migrations, `baove user|token|audit`); each service reaches it with its own
# role through a group role, granted exactly what its code does there after every migration (shared/auth_roles.py,
# deploy/README.md): no service may change or delete the audit or issue a token other than a sign-in session.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE baove_auth_service NOLOGIN;
CREATE ROLE baove_auth_intake NOLOGIN;
GRANT baove_auth_service TO routing, reporting;
GRANT baove_auth_intake TO intake;
GRANT CONNECT ON DATABASE baove_auth TO baove_auth_service, baove_auth_intake;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname baove_auth <<'SQL'
GRANT USAGE ON SCHEMA public TO baove_auth_service, baove_auth_intake;
SQL
