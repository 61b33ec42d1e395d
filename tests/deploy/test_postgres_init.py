"""deploy/compose/postgres/init-databases.sh on a throwaway PostgreSQL 15 cluster, as the image runs it.

Each service's role reaches its own database only, and the services' migrations run with those roles.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from shared import audit, auth, people, signin
from shared.db import make_engine, make_sessionmaker
from tests.deploy.common import DEPLOY, ROOT

# Within the deploy layer: needs a live PostgreSQL (scripts/validate-deploy --no-live leaves it out).
pytestmark = [pytest.mark.integration, pytest.mark.postgres]

BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORDS = {role: secrets.token_hex(12) for role in ("baove_auth", "intake", "routing", "reporting", "console")}
DATABASES = {"baove_auth": "baove_auth", "intake": "baove_intake", "routing": "baove_routing", "reporting": "baove_reporting",
             "console": "baove_console"}


def unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"a PostgreSQL cluster cannot be started here ({why}): CI needs it", pytrace=False)
    pytest.skip(f"a PostgreSQL cluster cannot be started here ({why})")


def as_postgres(*command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """PostgreSQL will not run as root: run as the postgres user when we are root."""
    if os.geteuid() == 0:
        command = ("runuser", "-u", "postgres", "--", *command)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cluster():
    if not (BIN / "initdb").exists():
        unavailable(f"{BIN}/initdb not found (apt-get install postgresql-15)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root without runuser")
    # Not under pytest's tmp_path: its parents are root's alone and the postgres user must get in.
    workdir = Path(tempfile.mkdtemp(prefix="baove-deploy-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = workdir / "data"
    result = as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                         "--auth-host=scram-sha-256", "-E", "UTF8")
    assert result.returncode == 0, result.stderr
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1"
    result = as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(workdir / "log"), "-w", "start")
    assert result.returncode == 0, result.stderr + (workdir / "log").read_text()
    try:
        env = {"PATH": f"{BIN}:{os.environ['PATH']}", "POSTGRES_USER": "postgres", "PGHOST": str(workdir),
               "PGPORT": str(port), "AUTH_DB_PASSWORD": PASSWORDS["baove_auth"], "INTAKE_DB_PASSWORD": PASSWORDS["intake"],
               "ROUTING_DB_PASSWORD": PASSWORDS["routing"], "REPORTING_DB_PASSWORD": PASSWORDS["reporting"],
               "CONSOLE_DB_PASSWORD": PASSWORDS["console"]}
        script = workdir / "init-databases.sh"
        shutil.copy(DEPLOY / "compose" / "postgres" / "init-databases.sh", script)
        result = as_postgres("bash", str(script), env=env)
        assert result.returncode == 0, result.stderr
        yield port
    finally:
        as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


def url(port: int, role: str, database: str | None = None, scheme: str = "postgresql") -> str:
    return f"{scheme}://{role}:{PASSWORDS[role]}@127.0.0.1:{port}/{database or DATABASES[role]}"


# The services reach the token store with their own roles (and only it besides their own database).
AUTH_READERS = ("intake", "routing", "reporting")


def cli(port: int, *args: str) -> subprocess.CompletedProcess:
    """`baove ...` as deployed: each service's database as its role, the token store as its owner (the migration's settings)."""
    env = {
        **os.environ,
        "BAOVE_ENV": "prod",
        "BAOVE_AUTH_ADMIN_DATABASE_URL": url(port, "baove_auth"),
        **{f"BAOVE_{s.upper()}_DATABASE_URL": url(port, s) for s in ("intake", "routing", "reporting", "console")},
    }
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def migrated(cluster):
    result = cli(cluster, "migrate")
    assert result.returncode == 0, result.stderr[-3000:]
    return cluster


async def can_connect(dsn: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except (asyncpg.InsufficientPrivilegeError, asyncpg.InvalidAuthorizationSpecificationError):
        return False
    await connection.close()
    return True


class TestDatabases:
    async def test_each_role_owns_its_database_and_may_create_tables_there(self, cluster):
        for role in DATABASES:
            connection = await asyncpg.connect(url(cluster, role))
            await connection.execute("CREATE TABLE deploy_check (id int); DROP TABLE deploy_check")
            await connection.close()

    async def test_no_role_can_connect_to_another_services_database(self, cluster):
        for role in DATABASES:
            for other, database in DATABASES.items():
                if other != role:
                    allowed = database == "baove_auth" and role in AUTH_READERS
                    assert await can_connect(url(cluster, role, database)) == allowed, (role, database)

    def test_the_services_migrations_run_with_these_roles(self, migrated):
        cluster = migrated

        async def tables(role: str) -> set[str]:
            connection = await asyncpg.connect(url(cluster, role))
            rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            await connection.close()
            return {r["tablename"] for r in rows}

        for role in DATABASES:
            assert "alembic_version" in asyncio.run(tables(role)), role


async def refused(dsn: str, statement: str, *args) -> bool:
    """True when PostgreSQL refuses the statement for lack of privilege (a grant or a row-level policy)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement, *args)
    except asyncpg.InsufficientPrivilegeError:
        return True
    finally:
        await connection.close()
    return False


FORGED_TOKEN = (
    "INSERT INTO api_token (id, token_hash, kind, subject, label, purpose, created_at, expires_at, last_used_at) "
    "VALUES ($1, $2, 'admin', 'admin', 'forged', $3, now(), now() + interval '300 days', now())"
)


class TestTokenStoreRoles:
    """The init script's roles with the grants the migration applies (shared/auth_roles.py): least privilege."""

    async def test_no_service_role_can_change_or_delete_the_audit_or_issue_a_token(self, migrated):
        issued = cli(migrated, "token", "issue", "--admin", "--name", "deploy check")
        assert issued.returncode == 0, issued.stderr[-2000:]
        for role in AUTH_READERS:
            dsn = url(migrated, role, "baove_auth")
            for statement in ("UPDATE audit_entry SET detail = 'nothing happened'", "DELETE FROM audit_entry",
                              "TRUNCATE audit_entry", "DELETE FROM api_token", "UPDATE api_token SET revoked_at = NULL, "
                              "expires_at = now() + interval '10 years'", "UPDATE person SET kind = 'admin'",
                              "DELETE FROM person", "DROP TABLE audit_entry", "ALTER TABLE api_token DISABLE ROW LEVEL SECURITY"):
                assert await refused(dsn, statement), (role, statement)
            for purpose in ("machine", "personal", "session"):  # a session needs a person: no role mints one for nobody
                assert await refused(dsn, FORGED_TOKEN, f"{role}-{purpose}", secrets.token_hex(32), purpose), (role, purpose)
        # The owner may: what refused the services was their roles, not the statements.
        assert not await refused(url(migrated, "baove_auth"), FORGED_TOKEN, "owner", secrets.token_hex(32), "machine")

    async def test_each_service_role_does_what_its_service_does_there(self, migrated):
        def store(role: str):
            return make_engine(url(migrated, role, "baove_auth", "postgresql+asyncpg"))

        engines = {role: store(role) for role in ("baove_auth", *AUTH_READERS)}
        makers = {role: make_sessionmaker(engine) for role, engine in engines.items()}
        password = "Đồng-hồ-cát-" + secrets.token_hex(4)
        try:
            async with makers["baove_auth"]() as session, session.begin():  # the CLI: a person and a machine token
                await people.add_person(session, "lan.le", "Lê Thị Lan", "unit", "25349.police", password, must_change_password=False)
                token = await auth.issue_token(session, "unit", "25349.police", label="hotline gateway")
                await session.execute(auth.api_token.update().values(last_used_at=auth.utcnow() - timedelta(minutes=5)))
            for role in ("routing", "reporting"):
                principal = await auth.TokenVerifier(makers[role]).verify(token)  # reads the token, notes its last use
                assert principal is not None and principal.subject == "25349.police", role
                await audit.record_reads(makers[role], role, principal, "GET /v1/cases/{id}", [f"incident-{role}"])
                await audit.record_denial(makers[role], audit.DenialLog(), role, "GET /v1/cases", 401, "token is unknown",
                                          principal=None, token_id=None, address="10.0.0.9")
            intake = makers["intake"]
            outcome = await signin.sign_in(intake, "Lan.Le", password, "10.0.0.1", lifetime=timedelta(hours=12),
                                           idle_timeout=timedelta(minutes=30))
            assert outcome.answer is not None, outcome.reason
            assert (await signin.sign_in(intake, "lan.le", "wrong", "10.0.0.1", lifetime=timedelta(hours=12),
                                         idle_timeout=timedelta(minutes=30))).answer is None
            session_principal = await auth.TokenVerifier(intake).verify(outcome.answer["token"])
            officer = people.Actor.of(session_principal, "POST /v1/users")
            async with intake() as session, session.begin():  # people administered over HTTP
                await people.add_person(session, "thu.tran", "Trần Thị Thu", "unit", "25349.police", created_by=officer)
                await people.set_state(session, "thu.tran", "disabled", officer)
                await people.set_state(session, "thu.tran", "active", officer)
                await people.reset_password(session, "thu.tran", officer)
            await signin.change_password(intake, session_principal, password, password + "-mới")
            async with intake() as session, session.begin():
                await signin.sign_out(session, session_principal)
            async with intake() as session:
                items, _ = await audit.query(session, limit=100)
            actions = [item["action"] for item in items]
            for action in ("read", "denied", "sign_in", "sign_in_failed", "user_added", "user_disabled", "password_reset",
                           "password_changed", "sign_out", "token_issued"):
                assert action in actions, action
            async with makers["baove_auth"]() as session:
                touched = (await session.execute(auth.api_token.select().where(auth.api_token.c.label == "hotline gateway"))).one()
            assert touched.last_used_at > auth.utcnow() - timedelta(minutes=1)
        finally:
            for engine in engines.values():
                await engine.dispose()
        verified = cli(migrated, "audit", "verify")
        assert verified.returncode == 0 and "audit chain OK" in verified.stdout, verified.stdout + verified.stderr[-2000:]
