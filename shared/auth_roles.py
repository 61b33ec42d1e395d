"""What each service's role may do in the security store on PostgreSQL (SQLite has no roles).

The store's owner (BAOVE_AUTH_ADMIN_DATABASE_URL: migrations and `baove user|token|audit`) issues people and
machine or personal tokens. The services connect with their own roles (BAOVE_AUTH_DATABASE_URL), members of
two group roles the deploy's init script creates; after every migration `apply` grants those groups exactly
what the services' code does there, and nothing else (deploy/README.md lists it):

- every service (`baove_auth_service`): check tokens (read them, note their last use), read the person's
  state, append to the audit (and read the newest entry's hash to link to it);
- intake (`baove_auth_intake`) besides, being the sign-in and people endpoints: read people and the audit
  (GET /v1/audit), add people and change their state and password, record sign-in attempts, start sessions
  (only `purpose = 'session'` tokens of a person: a row-level policy) and revoke tokens.

No role but the owner may UPDATE or DELETE an audit entry, DELETE anything, or INSERT a personal or machine token.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection

log = logging.getLogger("baove.auth_roles")

SERVICE_ROLE = "baove_auth_service"
INTAKE_ROLE = "baove_auth_intake"
TABLES = ("person", "api_token", "sign_in_attempt", "audit_entry", "alembic_version")
SEQUENCES = ("sign_in_attempt_id_seq", "audit_entry_id_seq")

_CHECK_TOKENS = (
    "SELECT ON api_token",
    "UPDATE (last_used_at) ON api_token",
    "SELECT (username, state, must_change_password) ON person",
    "SELECT (id, entry_hash) ON audit_entry",
    "INSERT ON audit_entry",
    "USAGE ON SEQUENCE audit_entry_id_seq",
)
GRANTS: dict[str, tuple[str, ...]] = {
    SERVICE_ROLE: _CHECK_TOKENS,
    INTAKE_ROLE: _CHECK_TOKENS + (
        "SELECT ON person",
        "INSERT ON person",
        "UPDATE (state, password_hash, must_change_password, changed_at, changed_by) ON person",
        "INSERT ON api_token",
        "UPDATE (revoked_at) ON api_token",
        "SELECT, INSERT ON sign_in_attempt",
        "UPDATE (outcome) ON sign_in_attempt",
        "USAGE ON SEQUENCE sign_in_attempt_id_seq",
        "SELECT ON audit_entry",
    ),
}
# Row-level security on the tokens (the owner is not subject to it): anyone granted may read and touch tokens,
# but the only tokens a service may create are a person's sign-in sessions.
POLICIES = (
    "CREATE POLICY baove_read ON api_token FOR SELECT USING (true)",
    "CREATE POLICY baove_change ON api_token FOR UPDATE USING (true)",
    "CREATE POLICY baove_sessions_only ON api_token FOR INSERT WITH CHECK (purpose = 'session' AND username IS NOT NULL)",
)


def apply(connection: Connection) -> None:
    """Grant the group roles that exist exactly GRANTS (after revoking everything); enable the token policies."""
    if connection.dialect.name != "postgresql":
        return
    connection.execute(text("ALTER TABLE api_token ENABLE ROW LEVEL SECURITY"))
    for policy in POLICIES:
        name = policy.split()[2]
        connection.execute(text(f"DROP POLICY IF EXISTS {name} ON api_token"))
        connection.execute(text(policy))
    existing = set(connection.execute(text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"),
                                      {"names": list(GRANTS)}).scalars())
    for role, grants in GRANTS.items():
        if role not in existing:
            log.info("no role %s: the services use the store's owner (no per-service roles)", role)
            continue
        connection.execute(text(f"REVOKE ALL ON {', '.join(TABLES)} FROM {role}"))
        connection.execute(text(f"REVOKE ALL ON SEQUENCE {', '.join(SEQUENCES)} FROM {role}"))
        for grant in grants:
            connection.execute(text(f"GRANT {grant} TO {role}"))
