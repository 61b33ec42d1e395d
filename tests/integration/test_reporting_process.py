"""Reporting's indicators of the Decree 56/2017 case process (issue 17, point 6), as a district statistician checks them:
initial assessments within 12 hours, plans within 5 working days (Tết counted), closed cases by final risk level,
cases and children in temporary care. SQLite and PostgreSQL; then through a real RabbitMQ with redelivery and a restart.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aio_pika
import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from services.reporting import documents, revisions
from services.reporting.app import MIGRATIONS, create_runtime
from services.reporting.models import CareFact, StepFact, StepOverdueFact
from services.reporting.models import inbox_message as reporting_inbox
from shared import topology
from shared.auth import issue_token
from shared.db import make_sessionmaker
from shared.events import (
    Envelope,
    IncidentCareDecided,
    IncidentClosureRecorded,
    IncidentErased,
    IncidentLinked,
    IncidentRecorded,
    IncidentReopened,
    IncidentStepChanged,
    IncidentStepOverdue,
    parse_payload,
)
from shared.migrate import upgrade
from shared.runtime import AUTH_MIGRATIONS
from shared.settings import CommonSettings, ReportingSettings
from tests.integration.test_reporting_db import Generated, feed, incident
from tests.support import delete_topology_queues, eventually, make_runtime, migrate

pytestmark = pytest.mark.integration

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
PERSON = "Nguyễn Thị Cán Bộ (25349.cp_officer)"  # the `by` of every event: it must never reach reporting's tables


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=HCM)


def iid(g: Generated) -> str:
    return g.envelope.payload["incident_id"]


def routed(event) -> Envelope:
    return event.envelope(correlation_id=event.incident_id, producer="routing")


def step(g: Generated, frm: str, to: str, at: datetime) -> Envelope:
    return routed(
        IncidentStepChanged(
            incident_id=iid(g), commune_code=g.commune, from_step=frm, to_step=to, record_id=str(uuid.uuid4()), by=PERSON, at=at
        )
    )


def late(g: Generated, which: str, due_at: datetime) -> Envelope:
    return routed(
        IncidentStepOverdue(
            incident_id=iid(g),
            commune_code=g.commune,
            step=which,
            due_at=due_at,
            escalated_to=(f"{g.commune}.chairman",),
            at=due_at + timedelta(minutes=1),
        )
    )


def care(g: Generated, starts: date, ends: date, version: int) -> Envelope:
    return routed(
        IncidentCareDecided(
            incident_id=iid(g), commune_code=g.commune, starts_on=starts, ends_on=ends, version=version, by=PERSON, at=vn(2025, 1, 7, 10)
        )
    )


def closed(g: Generated, level: str, at: datetime) -> Envelope:
    return routed(IncidentClosureRecorded(incident_id=iid(g), commune_code=g.commune, risk_level=level, at=at))


class Story:
    """Two communes of district 694 in January 2025, with every process event of their cases."""

    def __init__(self) -> None:
        rng = random.Random(17)
        n = iter(range(1700, 1800))
        self.received: dict[str, datetime] = {}

        def report(commune: str, received: datetime) -> Generated:
            g = incident(next(n), commune, received, rng=rng, use_received=True, category="violence")
            self.received[iid(g)] = received.replace(tzinfo=HCM)
            return g

        # 25349: A assessed after 11 hours, B after 13 hours (escalated), C never (escalated).
        self.a = report("25349", datetime(2025, 1, 6, 8, 0))
        self.b = report("25349", datetime(2025, 1, 6, 9, 0))
        self.c = report("25349", datetime(2025, 1, 7, 9, 0))
        # 25348: D and E reported on Friday 24 January 2025, the last working day before Tết (25/1 to 2/2 off): their
        # 5 working days are 3 to 7 February, so a plan is due by 24:00 on 7 February. D's plan on the 7th is in
        # time; E's on the 10th is late. (Without the holidays both were due on 31 January: both late.)
        self.d = report("25348", datetime(2025, 1, 24, 10, 0))
        self.e = report("25348", datetime(2025, 1, 24, 11, 0))
        # F (December 2024) in care over New Year; G is a later report of F's child, linked to F, with its own care
        # decision: one case, F's children counted once.
        self.f = report("25349", datetime(2024, 12, 18, 9, 0))
        self.g = report("25349", datetime(2025, 1, 2, 9, 0))

    def reports(self) -> list[Envelope]:
        return [x.envelope for x in (self.a, self.b, self.c, self.d, self.e, self.f, self.g)]

    def recorded(self) -> list[Envelope]:
        """The reports as reporting's queue receives them: incident.recorded, the facts alone."""
        out = []
        for x in (self.a, self.b, self.c, self.d, self.e, self.f, self.g):
            event = IncidentRecorded(incident_id=iid(x), facts=parse_payload(x.envelope).facts)
            out.append(event.envelope(correlation_id=event.incident_id, producer="intake"))
        return out

    def process(self) -> list[Envelope]:
        a, b, c, d, e, f, g = self.a, self.b, self.c, self.d, self.e, self.f, self.g
        received = {iid(x): self.received[iid(x)] for x in (a, b, c, d, e)}
        plan_due = vn(2025, 2, 8, 0, 0)
        return [
            step(a, "received", "initial_assessment", received[iid(a)] + timedelta(hours=11)),
            late(b, "initial_assessment", received[iid(b)] + timedelta(hours=12)),
            step(b, "received", "initial_assessment", received[iid(b)] + timedelta(hours=13)),
            late(c, "initial_assessment", received[iid(c)] + timedelta(hours=12)),
            step(d, "received", "initial_assessment", received[iid(d)] + timedelta(hours=2)),
            step(e, "received", "initial_assessment", received[iid(e)] + timedelta(hours=3)),
            step(d, "initial_assessment", "detailed_assessment", vn(2025, 2, 4, 9)),
            step(d, "detailed_assessment", "plan", vn(2025, 2, 7, 16)),
            step(e, "initial_assessment", "detailed_assessment", vn(2025, 2, 5, 9)),
            late(e, "plan", plan_due),
            step(e, "detailed_assessment", "plan", vn(2025, 2, 10, 9)),
            # A review sent D back to planning in March: its plan was still first recorded in time.
            step(d, "review", "plan", vn(2025, 3, 20, 9)),
            # Closings: A at low risk; B closed at high, reopened, closed again at medium (delivered newest first).
            closed(a, "low", vn(2025, 1, 20, 9)),
            closed(b, "medium", vn(2025, 1, 30, 9)),
            closed(b, "high", vn(2025, 1, 15, 9)),
            routed(IncidentReopened(incident_id=iid(b), commune_code="25349", by=PERSON, at=vn(2025, 1, 16, 9))),
            # Temporary care: B 7 to 21 January, extended to 5 February (the extension delivered first).
            care(b, date(2025, 1, 7), date(2025, 2, 5), 2),
            care(b, date(2025, 1, 7), date(2025, 1, 21), 1),
            care(f, date(2024, 12, 20), date(2025, 1, 3), 1),
            intake_linked(g, f),
            care(g, date(2025, 1, 2), date(2025, 1, 10), 1),
        ]


def intake_linked(later: Generated, earlier: Generated) -> Envelope:
    event = IncidentLinked(incident_id=iid(later), linked_to=iid(earlier), commune_code=later.commune, by=PERSON, at=vn(2025, 1, 3, 9))
    return event.envelope(correlation_id=event.incident_id, producer="intake")


async def summary(client: httpx.AsyncClient, token: str, org_unit: str, period: str) -> dict:
    response = await client.get(f"/v1/summaries/{org_unit}", params={"period": period}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def process_of(ind: dict) -> dict:
    return {k: ind[k] for k in ("initial_assessment", "plan", "cases_closed_by_risk_level", "temporary_care")}


def expected_january(story: Story) -> dict[str, dict]:
    """What the statistician counts by hand for January 2025."""
    children_f, children_b = len(story.f.children), len(story.b.children)
    commune_25349 = {
        "initial_assessment": {"assessed": 2, "assessed_within_12_hours": 1, "escalated_overdue": 2},
        "plan": {"planned": 0, "planned_within_5_working_days": 0, "due_unknown": 0, "escalated_overdue": 0},
        "cases_closed_by_risk_level": {"high": 0, "medium": 1, "low": 1},
        # B and F (G is F's case): F's children once, never G's.
        "temporary_care": {"cases": 2, "children": children_f + children_b},
    }
    commune_25348 = {
        "initial_assessment": {"assessed": 2, "assessed_within_12_hours": 2, "escalated_overdue": 0},
        "plan": {"planned": 2, "planned_within_5_working_days": 1, "due_unknown": 0, "escalated_overdue": 1},
        "cases_closed_by_risk_level": {"high": 0, "medium": 0, "low": 0},
        "temporary_care": {"cases": 0, "children": 0},
    }
    district = {
        "initial_assessment": {"assessed": 4, "assessed_within_12_hours": 3, "escalated_overdue": 2},
        "plan": {"planned": 2, "planned_within_5_working_days": 1, "due_unknown": 0, "escalated_overdue": 1},
        "cases_closed_by_risk_level": {"high": 0, "medium": 1, "low": 1},
        "temporary_care": {"cases": 2, "children": children_f + children_b},
    }
    return {"25349": commune_25349, "25348": commune_25348, "694": district}


async def reporting_app(database_url: str, tmp_path: Path):
    common = CommonSettings(data_dir=tmp_path)
    runtime = create_runtime(ReportingSettings(database_url=database_url, common=common))
    return runtime, httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.api), base_url="http://reporting")


async def close(runtime, client) -> None:
    await client.aclose()
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


@pytest.fixture
async def admin(database_url: str, tmp_path: Path) -> str:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    common = CommonSettings(data_dir=tmp_path)
    await asyncio.to_thread(upgrade, AUTH_MIGRATIONS, common.auth_url())
    runtime, client = await reporting_app(database_url, tmp_path)
    async with make_sessionmaker(runtime.auth_engine)() as session, session.begin():
        token = await issue_token(session, "admin", "admin", label="test")
    await close(runtime, client)
    return token


class TestProcessIndicators:
    async def test_the_numbers_a_district_statistician_checks(self, database_url: str, tmp_path: Path, admin: str):
        story = Story()
        runtime, client = await reporting_app(database_url, tmp_path)
        try:
            # Process events first for some cases (any order), then the reports, then the rest.
            process = story.process()
            await feed(runtime, process[:6])
            await feed(runtime, story.reports())
            await feed(runtime, process[6:])
            expected = expected_january(story)
            district = await summary(client, admin, "694", "202501")
            assert process_of(district["indicators"]) == expected["694"]
            rows = {row["code"]: process_of(row["indicators"]) for row in district["communes"]}
            assert rows["25349"] == expected["25349"] and rows["25348"] == expected["25348"]
            assert rows["25339"]["initial_assessment"]["assessed"] == 0
            # The risk levels add up to the cases closed; a commune reads its own the same.
            assert sum(district["indicators"]["cases_closed_by_risk_level"].values()) == district["indicators"]["cases_closed"] == 2
            assert process_of((await summary(client, admin, "25349", "202501"))["indicators"]) == expected["25349"]
            # February: only B is still in care (its extension to 5 February); D and E were reported in January.
            february = (await summary(client, admin, "694", "202502"))["indicators"]
            assert february["temporary_care"] == {"cases": 1, "children": len(story.b.children)}
            assert february["plan"]["planned"] == 0
            # December: F alone in care (G's report came in January, and is F's case anyway).
            december = (await summary(client, admin, "25349", "202412"))["indicators"]
            assert december["temporary_care"] == {"cases": 1, "children": len(story.f.children)}

            # A producer's retry (new event ids) of every process event and an erasure change nothing.
            retries = [e.model_copy(update={"event_id": uuid.uuid4()}) for e in process]
            erased = IncidentErased(incident_id=iid(story.a), commune_code="25349", cause="request", at=vn(2025, 3, 1, 9))
            await feed(runtime, [*retries, erased.envelope(correlation_id=erased.incident_id, producer="intake")])
            again = await summary(client, admin, "694", "202501")
            assert process_of(again["indicators"]) == expected["694"]

            # The export, in Vietnamese, with the district's total column.
            response = await client.get(
                "/v1/summaries/694/export", params={"period": "202501", "format": "xlsx"}, headers={"Authorization": f"Bearer {admin}"}
            )
            assert response.status_code == 200
            sheet = load_workbook(io.BytesIO(response.content)).active
            lines = {row[2]: row[3] for row in sheet.iter_rows(values_only=True) if row and len(row) > 3 and row[2]}
            assert lines["Số vụ việc đã đánh giá ban đầu"] == 4
            assert lines["Trong đó đánh giá trong vòng 12 giờ kể từ khi nhận thông báo"] == 3
            assert lines["Số vụ việc đã lập kế hoạch hỗ trợ, can thiệp"] == 2
            assert lines["Trong đó lập trong vòng 5 ngày làm việc"] == 1
            assert lines["Nguy cơ trung bình"] == 1 and lines["Nguy cơ thấp"] == 1 and lines["Nguy cơ cao"] == 0
            assert lines["Số trẻ em được chăm sóc thay thế tạm thời"] == expected["694"]["temporary_care"]["children"]
            # The district's document prints the same in its process table.
            context = documents.district_context(district, {}, datetime.now(UTC))
            [table] = [t for s in context["sections"] for t in s.tables if "Nghị định 56/2017" in t.title]
            printed = {row[1]: row[2] for row in table.rows}
            assert printed["Trong đó đánh giá trong vòng 12 giờ kể từ khi nhận thông báo"] == "3"
            assert printed["Trong đó lập trong vòng 5 ngày làm việc"] == "1"
        finally:
            await close(runtime, client)

        # Nobody's name in the process facts; and after a restart (a new runtime on the same database) the same numbers.
        runtime, client = await reporting_app(database_url, tmp_path)
        try:
            async with runtime.sessionmaker() as session:
                for model in (StepFact, StepOverdueFact, CareFact):
                    rows = (await session.execute(select(model))).scalars().all()
                    assert rows and PERSON not in json.dumps([vars(r) for r in rows], default=str)
                    assert not hasattr(model, "by")
                # The report scheduler sees which reports the process facts change: a care's first and last day too
                # (B's extension to 5 February changes February's report, not only January's of B's report).
                changed = {(c.commune, c.day) for c in await revisions.changed_days(session, datetime(2000, 1, 1, tzinfo=UTC))}
                assert {("25349", date(2025, 2, 5)), ("25349", date(2024, 12, 20)), ("25348", date(2025, 1, 24))} <= changed
                later = await revisions.changed_days(session, datetime.now(UTC) + timedelta(days=1))
                assert later == []
            assert process_of((await summary(client, admin, "694", "202501"))["indicators"]) == expected_january(story)["694"]
        finally:
            await close(runtime, client)


# -- through RabbitMQ --------------------------------------------------------------------------------------------


async def publish(amqp_url: str, envelopes: list[Envelope]) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(topology.EVENTS.name)
    for envelope in envelopes:
        await exchange.publish(
            aio_pika.Message(
                envelope.model_dump_json().encode(),
                message_id=str(envelope.event_id),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id="guest",
            ),
            routing_key=envelope.event_type,
        )
    await connection.close()


async def folded(runtime) -> int:
    async with runtime.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(reporting_inbox))).scalar_one()


class TestThroughTheBroker:
    async def test_bound_deduplicated_and_kept_across_a_restart(self, amqp_url: str, database_url: str, tmp_path: Path):
        await delete_topology_queues(amqp_url)
        story = Story()
        events = [*story.recorded(), *story.process()]

        async def start():
            runtime = make_runtime("reporting", tmp_path, database_url=database_url, amqp_url=amqp_url)
            await migrate(runtime)
            await runtime.broker.connect()
            await topology.declare(runtime.broker)
            await runtime.broker.start()
            return runtime

        async def stop(runtime) -> None:
            await runtime.broker.stop()
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()

        runtime = await start()
        try:
            # Every event twice under the same event id (a redelivery): the inbox folds each once.
            await publish(amqp_url, events + events)
            await eventually(lambda: _at_least(runtime, len(events)), timeout=20, what=f"{len(events)} events folded")
            await asyncio.sleep(0.5)  # the duplicates, had they been folded, would be counted by now
            assert await folded(runtime) == len(events)
        finally:
            await stop(runtime)
        runtime = await start()  # a restart: the read model and the inbox are in the database
        try:
            await publish(amqp_url, events[-3:])
            await asyncio.sleep(0.5)
            assert await folded(runtime) == len(events)
            token = await _admin_token(runtime)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.api), base_url="http://t") as client:
                district = await summary(client, token, "694", "202501")
            assert process_of(district["indicators"]) == expected_january(story)["694"]
        finally:
            await stop(runtime)


async def _at_least(runtime, n: int) -> bool:
    return await folded(runtime) >= n


async def _admin_token(runtime) -> str:
    async with make_sessionmaker(runtime.auth_engine)() as session, session.begin():
        return await issue_token(session, "admin", "admin", label="test")
