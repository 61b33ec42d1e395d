"""Shared test fixtures: a real RabbitMQ (own vhost per run) and real databases (SQLite and PostgreSQL).

With CI=true a missing broker or database fails the run; elsewhere it skips with the reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.harness import vhost

CI = os.environ.get("CI", "").lower() == "true"
AMQP_BASE = os.environ.get("BAOVE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_BASE = os.environ.get("BAOVE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


# Each folder is a layer; its marker lets a run pick layers (`-m unit`, `-m "not chaos"`).
LAYERS = ("unit", "integration", "e2e", "chaos", "deploy", "browser", "cluster")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else None
        if folder in LAYERS:
            item.add_marker(folder)


def unavailable(what: str, why: str) -> None:
    message = f"{what} is not available ({why})"
    if CI:
        pytest.fail(message + ": CI needs it", pytrace=False)
    pytest.skip(message)


async def _amqp_ok(url: str) -> str | None:
    import aio_pika

    try:
        connection = await asyncio.wait_for(aio_pika.connect(url), 5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """A fresh vhost on the real broker, so tests never touch a running system's queues."""
    problem = asyncio.run(_amqp_ok(AMQP_BASE))
    if problem:
        unavailable("RabbitMQ", problem)
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl", "needed to create a test vhost")
    with vhost(AMQP_BASE) as url:
        yield url


async def _pg_execute(url: str, *statements: str) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncio.wait_for(asyncpg.connect(dsn), 5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        asyncio.run(_pg_execute(PG_BASE, "SELECT 1"))
    except Exception as exc:
        unavailable("PostgreSQL", f"{type(exc).__name__}: {exc}")
    return PG_BASE


@pytest.fixture
def pg_database(pg_server):
    """A new, empty PostgreSQL database; a factory so a test can ask for several."""
    made: list[str] = []

    def make() -> str:
        name = f"baove_test_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_execute(pg_server, f'CREATE DATABASE "{name}"'))
        made.append(name)
        return pg_server.rsplit("/", 1)[0] + "/" + name

    yield make
    for name in made:
        asyncio.run(_pg_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path: Path):
    """Each database test runs on the embedded default and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_database")()
