"""Erasure and retention in intake over a real database (SQLite and PostgreSQL): the rows, the outbox, the audit."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import make_url, select, text, update

from services.intake import erasure
from services.intake.models import Incident, TimelineEntry, outbox_message
from services.intake.retention import RetentionPolicy
from shared import audit
from shared.db import is_sqlite, scrub, utcnow
from tests.support import bearer, client, incident_payload, issue_token, make_runtime, migrate

NAME, PHONE, BIRTH = "Ozymandra Retentiontest", "0933222111", "2012-11-30"


@pytest.fixture
async def intake(tmp_path, database_url):
    runtime = make_runtime("intake", tmp_path, database_url)
    await migrate(runtime)
    runtime.tokens = {"police": await issue_token(runtime, "unit", "25349.police")}
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def report(runtime) -> str:
    payload = incident_payload(
        description=f"{NAME} hurt, call {PHONE}",
        children=[{"full_name": NAME, "sex": "female", "birth_date": BIRTH, "special_circumstances": ["disabled"]}],
        reporter={"name": "Reporter", "phone": PHONE, "relation": "aunt", "anonymous": False},
    )
    async with client(runtime) as http:
        answer = await http.post("/v1/incidents", json=payload, headers=bearer(runtime.tokens["police"]))
    assert answer.status_code == 202, answer.text
    return answer.json()["incident_id"]


async def close(runtime, incident_id: str, days_ago: float) -> None:
    at = utcnow() - timedelta(days=days_ago)
    async with runtime.unit_of_work() as uow:
        uow.session.add(TimelineEntry(incident_id=incident_id, at=at, kind="closed", principal="25349.cp_officer",
                                      detail={"risk_level": "low", "outcome": f"{NAME} is safe"}))
        await uow.session.execute(update(Incident).where(Incident.id == incident_id).values(status="closed"))


async def publish_all(runtime) -> None:
    async with runtime.unit_of_work() as uow:
        await uow.session.execute(update(outbox_message).values(published_at=utcnow()))


async def stored(runtime, incident_id: str) -> str:
    """Everything intake's tables hold about the incident, as text."""
    async with runtime.sessionmaker() as session:
        incident = await session.get(Incident, incident_id)
        entries = (await session.execute(select(TimelineEntry.detail).where(TimelineEntry.incident_id == incident_id))).scalars().all()
        bodies = (await session.execute(select(outbox_message.c.body).where(outbox_message.c.correlation_id == incident_id))).scalars().all()
    return json.dumps([incident.description, incident.children, incident.reporter, entries, bodies], ensure_ascii=False)


class TestErasingInIntake:
    async def test_the_case_is_blanked_the_facts_stay_the_event_is_staged_and_the_erasure_audited(self, intake):
        incident_id = await report(intake)
        await close(intake, incident_id, 1)
        assert NAME in await stored(intake, incident_id)
        await publish_all(intake)

        done = await erasure.erase(intake, incident_id, principal="admin", username="lan", token_id=None,
                                   reason="request ref 17", endpoint="test")
        assert done.new
        await intake.forget({incident_id})  # what the endpoint and the command do next
        held = await stored(intake, incident_id)
        for personal in (NAME, PHONE, BIRTH):
            assert personal not in held
        async with intake.sessionmaker() as session:
            incident = await session.get(Incident, incident_id)
            bodies = (await session.execute(select(outbox_message.c.event_type, outbox_message.c.body)
                                            .where(outbox_message.c.correlation_id == incident_id))).all()
        assert (incident.status, incident.category, incident.hamlet) == ("erased", "violence", "25349.hamlet.ap-2")
        assert incident.children == [{"sex": "female", "age_band": "11-15", "special_circumstances": ["disabled"]}]
        assert [t for t, _ in bodies] == ["incident.erased"]  # the published report is gone
        erased = json.loads(next(b for t, b in bodies if t == "incident.erased"))
        assert erased["payload"] == {"incident_id": incident_id, "commune_code": "25349", "cause": "request", "at": erased["payload"]["at"]}
        async with intake.auth_sessionmaker() as session:
            [entry], _ = await audit.query(session, incident_id=incident_id, action="erased")
        assert (entry["principal"], entry["username"], entry["detail"]) == ("admin", "lan", "request ref 17")

        # The bytes too: nothing left in SQLite's file and its WAL (the erasure checkpointed); PostgreSQL vacuums.
        if not is_sqlite(intake.engine):
            await scrub(intake.engine, erasure.PERSONAL_TABLES)  # what the erasure did: it must not fail
        else:
            async with intake.engine.connect() as conn:  # zeroed free space whatever the build's default
                assert (await conn.execute(text("PRAGMA secure_delete"))).scalar() == 1
            path = Path(make_url(intake.db_url).database)
            for file in (path, path.with_name(path.name + "-wal")):
                content = file.read_bytes() if file.exists() else b""
                assert not [p for p in (NAME, PHONE, BIRTH) if p.encode() in content], file

        again = await erasure.erase(intake, incident_id, principal="admin", username="lan", token_id=None,
                                    reason="request ref 17", endpoint="test")
        assert not again.new


class TestRetention:
    async def test_only_cases_closed_longer_than_the_period_are_erased(self, intake):
        old, recent, still_open = await report(intake), await report(intake), await report(intake)
        await close(intake, old, 40)
        await close(intake, recent, 20)
        await publish_all(intake)
        unpublished = await report(intake)
        await close(intake, unpublished, 50)
        erased = await erasure.apply_retention(intake, RetentionPolicy(closed_case_days=30), batch=1)
        assert erased == [unpublished, old]
        for gone in erased:
            assert NAME not in await stored(intake, gone)
        async with intake.sessionmaker() as session:
            types = (await session.execute(select(outbox_message.c.event_type).where(outbox_message.c.correlation_id == unpublished))).scalars()
            assert sorted(types) == ["incident.erased", "incident.reported"]  # still to be published, without its case
        for kept in (recent, still_open):
            assert NAME in await stored(intake, kept)
        assert await erasure.apply_retention(intake, RetentionPolicy(closed_case_days=30), batch=1) == []
        async with intake.auth_sessionmaker() as session:
            entries, _ = await audit.query(session, action="erased")
        assert {(e["incident_id"], e["principal"]) for e in entries} == {(old, "retention"), (unpublished, "retention")}
