"""Reporting's generated reports in process: a test clock, the API without its lifespan, tokens (tests/integration)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest_asyncio
from sqlalchemy import select

from services.reporting import revisions
from services.reporting.app import MIGRATIONS, create_runtime
from services.reporting.fold import handle_event
from services.reporting.models import GeneratedReport, outbox_message
from shared.auth import issue_token
from shared.db import make_sessionmaker
from shared.events import Envelope, parse_payload
from shared.migrate import upgrade
from shared.runtime import AUTH_MIGRATIONS
from shared.settings import CommonSettings, ReportingSettings


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    runtime: object
    clock: Clock
    client: httpx.AsyncClient
    tokens: dict[str, str]
    database_url: str

    async def feed(self, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            async with self.runtime.sessionmaker() as session, session.begin():
                await handle_event(session, parse_payload(envelope), envelope, clock=self.clock)

    async def generate(self, runtime=None) -> list[tuple[str, str, int]]:
        state = self.runtime.api.state
        made = await revisions.generate_due_reports(
            runtime or self.runtime, state.hierarchy, state.plans, clock=self.clock, settle=timedelta(minutes=2)
        )
        return sorted((r.org_unit, r.period, r.revision) for r in made)

    async def rows(self) -> list[GeneratedReport]:
        async with self.runtime.sessionmaker() as session:
            return list((await session.execute(select(GeneratedReport).order_by(GeneratedReport.id))).scalars())

    async def published(self) -> list[dict]:
        async with self.runtime.sessionmaker() as session:
            bodies = (await session.execute(select(outbox_message.c.body).order_by(outbox_message.c.id))).scalars()
            return [json.loads(b) for b in bodies]

    async def get(self, path: str, who: str = "admin", **params) -> httpx.Response:
        return await self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    async def json(self, path: str, who: str = "admin", **params) -> dict:
        response = await self.get(path, who, **params)
        assert response.status_code == 200, response.text
        return response.json()


async def make_runtime(database_url: str, common: CommonSettings, clock: Clock):
    runtime = create_runtime(ReportingSettings(database_url=database_url, common=common))
    runtime.api.state.clock = clock
    return runtime


@pytest_asyncio.fixture
async def world(database_url: str, tmp_path: Path):
    common = CommonSettings(data_dir=tmp_path)
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    await asyncio.to_thread(upgrade, AUTH_MIGRATIONS, common.auth_url())
    clock = Clock(datetime(2025, 4, 20, 3, tzinfo=UTC))
    runtime = await make_runtime(database_url, common, clock)
    subjects = {"admin": ("admin", "admin"), "district:694": ("district", "694"), "district:695": ("district", "695"),
                "25349.cp_officer": ("unit", "25349.cp_officer")}
    async with make_sessionmaker(runtime.auth_engine)() as session, session.begin():
        tokens = {name: await issue_token(session, kind, subject, label="test") for name, (kind, subject) in subjects.items()}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.api), base_url="http://reporting") as client:
        yield World(runtime, clock, client, tokens, database_url)
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def unit_tokens(world: World, *subjects: str) -> None:
    """More tokens, for units (a commune's chairman, its police), named by their subject."""
    async with make_sessionmaker(world.runtime.auth_engine)() as session, session.begin():
        for subject in subjects:
            world.tokens[subject] = await issue_token(session, "unit", subject, label="test")
