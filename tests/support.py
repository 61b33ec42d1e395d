"""Factories and helpers shared by the tests."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from shared import auth
from shared.db import make_engine, make_sessionmaker
from shared.settings import CommonSettings, IntakeSettings, ReportingSettings, RoutingSettings

SETTINGS = {"intake": IntakeSettings, "routing": RoutingSettings, "reporting": ReportingSettings}
_seq = itertools.count(1)


def incident_payload(**overrides: Any) -> dict[str, Any]:
    """A valid report, as an agency's client would send it."""
    n = next(_seq)
    body = {
        "commune_code": "25349",
        "hamlet": "25349.hamlet.ap-2",
        "category": "violence",
        "urgency": "high",
        "channel": "hotline_111",
        "occurred_at": "2025-03-02T08:00:00+07:00",
        "description": f"Neighbour heard a child crying and being beaten, report {n}",
        "children": [
            {
                "full_name": f"Nguyễn Thị Test{n}",
                "sex": "female",
                "birth_date": "2013-05-01",
                "school": "25349.school.th-minh-tam-a",
                "special_circumstances": [],
            }
        ],
        "reporter": {"name": f"Trần Văn Reporter{n}", "phone": f"0912{n:06d}", "relation": "neighbour", "anonymous": False},
    }
    body.update(overrides)
    return body


def make_runtime(service: str, tmp_path: Path, database_url: str | None = None, amqp_url: str | None = None, **extra: Any):
    """A service's runtime on a test database and data folder (and broker, when given); `extra` are more settings."""
    common = CommonSettings(data_dir=tmp_path, **({"amqp_url": SecretStr(amqp_url)} if amqp_url else {}))
    settings = SETTINGS[service](
        database_url=SecretStr(database_url) if database_url else None, common=common, graceful_timeout=5.0, **extra
    )
    return importlib.import_module(f"services.{service}.app").create_runtime(settings)


async def migrate(runtime) -> None:
    await asyncio.to_thread(runtime.migrate)


async def issue_token(runtime, kind: str, subject: str, **kwargs) -> str:
    """A named machine token for `subject` (a person's token: pass `username=`)."""
    kwargs.setdefault("label", "test")
    engine = make_engine(runtime.common.auth_url())
    async with make_sessionmaker(engine)() as session, session.begin():
        token = await auth.issue_token(session, kind, subject, **kwargs)
    await engine.dispose()
    return token


def client(runtime) -> httpx.AsyncClient:
    """HTTP to the app in process, without its lifespan (no broker needed)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.api), base_url="http://test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def eventually(
    check: Callable[[], Any], *, timeout: float = 10.0, what: str | Callable[[], str] = "condition", interval: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy and return that; fail naming `what` after `timeout` seconds.

    When `check` returns an awaitable (an async check), this returns a coroutine to await instead. `what` may be
    a function, called on failure, to tell what was still missing then.
    """
    deadline = time.monotonic() + timeout
    result = check()
    if inspect.isawaitable(result):
        return _eventually_async(check, result, deadline, timeout, what, interval)
    while not result:
        assert time.monotonic() < deadline, _failure(what, timeout)
        time.sleep(interval)
        result = check()
    return result


def _failure(what: str | Callable[[], str], timeout: float) -> str:
    return f"{what() if callable(what) else what} not reached in {timeout} s"


async def _eventually_async(check, first, deadline: float, timeout: float, what, interval: float) -> Any:
    result = await first
    while not result:
        assert time.monotonic() < deadline, _failure(what, timeout)
        await asyncio.sleep(interval)
        result = await check()
    return result


async def delete_topology_queues(amqp_url: str) -> str:
    """A clean slate on a test vhost: delete every queue the topology knows (and its dead letters)."""
    import aio_pika

    from shared import topology

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for spec in topology.CONSUMER_QUEUES:
        for name in (spec.name, spec.dead_letter_name):
            await channel.queue_delete(name)
    await connection.close()
    return amqp_url
