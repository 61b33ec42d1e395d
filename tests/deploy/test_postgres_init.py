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
from pathlib import Path

import asyncpg
import pytest

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
                    assert not await can_connect(url(cluster, role, database)), (role, database)

    def test_the_services_migrations_run_with_these_roles(self, cluster):
        env = {
            **os.environ,
            "BAOVE_ENV": "prod",
            "BAOVE_AUTH_DATABASE_URL": url(cluster, "baove_auth"),
            **{f"BAOVE_{s.upper()}_DATABASE_URL": url(cluster, s) for s in ("intake", "routing", "reporting", "console")},
        }
        result = subprocess.run([sys.executable, "-m", "services.cli", "migrate"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]

        async def tables(role: str) -> set[str]:
            connection = await asyncpg.connect(url(cluster, role))
            rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            await connection.close()
            return {r["tablename"] for r in rows}

        for role in DATABASES:
            assert "alembic_version" in asyncio.run(tables(role)), role
