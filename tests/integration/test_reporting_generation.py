"""Generated reports against real databases: due reports, revisions for late events, timeliness, replicas, the API.

Runs on SQLite and PostgreSQL. The clock is a test's own: events are folded in and reports generated
at chosen moments, with the API called in process without its lifespan (no broker: the outbox is read directly).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, update

from services.reporting import revisions
from services.reporting.models import IncidentFact
from shared.enums import Role
from shared.events import (
    EVENT_TYPES,
    AssignmentAcknowledged,
    ChildCase,
    ChildFacts,
    Envelope,
    IncidentCase,
    IncidentClosureRecorded,
    IncidentFacts,
    IncidentReopened,
    IncidentReported,
)
from shared.plans import ActivityCounts
from shared.settings import CommonSettings
from tests.reporting_support import World, make_runtime

UTC = UTC
VN = timezone(timedelta(hours=7))


def reported(commune: str, occurred_local: datetime, *, children: int = 1) -> Envelope:
    incident_id = str(uuid.uuid4())
    facts = IncidentFacts(
        commune_code=commune,
        hamlet=None,
        category="violence",
        urgency="high",
        channel="phone",
        occurred_at=occurred_local.replace(tzinfo=VN),
        received_at=occurred_local.replace(tzinfo=VN) + timedelta(hours=2),
        children=tuple(ChildFacts(sex="female", age_band="6-10") for _ in range(children)),
    )
    case = IncidentCase(description="riêng tư", children=(ChildCase(full_name="Nguyễn Thị A", sex="female"),))
    event = IncidentReported(incident_id=incident_id, reported_by=f"{commune}.police", facts=facts, case=case)
    return event.envelope(correlation_id=incident_id, producer="intake")



async def before_the_six_month_report(world: World) -> None:
    """Incidents of November 2024 to April 2025 in the three communes, one at 23:30 on 30 April in Vietnam."""
    await world.feed(
        reported("25349", datetime(2024, 11, 1, 0, 0)),
        reported("25349", datetime(2025, 4, 30, 23, 30), children=2),
        reported("25348", datetime(2025, 2, 14, 9, 0)),
    )


class TestTheFirstRevision:
    async def test_nothing_is_generated_before_the_window_closes(self, world: World):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 4, 30, 16, 59, tzinfo=UTC)  # 23:59 on 30 April in Vietnam
        assert await world.generate() == []

    async def test_once_30_april_is_over_each_commune_gets_its_report_and_an_event(self, world: World):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 4, 30, 17, 0, tzinfo=UTC)  # 00:00 on 1 May
        assert await world.generate() == [("25339", "2025-6M", 1), ("25348", "2025-6M", 1), ("25349", "2025-6M", 1)]
        rows = {r.org_unit: r for r in await world.rows()}
        assert rows["25349"].summary["indicators"]["incidents_total"] == 2
        assert rows["25349"].summary["indicators"]["children_total"] == 3
        assert rows["25339"].summary["indicators"]["incidents_total"] == 0, "a commune with no incident reports a true zero"
        assert all(r.on_time and r.due_date.isoformat() == "2025-05-10" for r in rows.values())
        events = [e for e in await world.published() if e["event_type"] == "report.generated"]
        assert sorted((e["payload"]["org_unit"], e["payload"]["revision"]) for e in events) == [("25339", 1), ("25348", 1), ("25349", 1)]

    async def test_a_second_pass_with_nothing_new_generates_nothing(self, world: World):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        world.clock.now += timedelta(minutes=1)
        assert await world.generate() == []
        world.clock.now += timedelta(hours=1)
        assert await world.generate() == []
        assert len(await world.rows()) == 3 and len(await world.published()) == 3


class TestLateEvents:
    async def test_an_incident_that_arrives_after_the_report_makes_a_new_revision_of_that_commune_only(self, world: World):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        world.clock.now = datetime(2025, 5, 20, tzinfo=UTC)
        await world.feed(reported("25348", datetime(2025, 3, 3, 8, 0)), reported("25349", datetime(2025, 5, 1, 0, 0)))
        world.clock.now += timedelta(seconds=5)
        assert await world.generate() == [("25348", "2025-6M", 2)]
        second = {(r.org_unit, r.revision): r for r in await world.rows()}[("25348", 2)]
        assert second.summary["indicators"]["incidents_total"] == 2 and not second.on_time
        assert second.as_of == world.clock.now

        s = await world.json("/v1/summaries/694", "district:694", period="2025-6M")
        reports = {r["code"]: r for r in s["completeness"]["reports"]}
        assert reports["25348"]["revision"] == 2 and reports["25348"]["produced_on_time"] is True, "the first revision's time"
        assert reports["25348"]["on_time"] is None and reports["25348"]["timeliness"] == "late", "nothing sent by 10 May"
        assert (s["completeness"]["reports_produced"], s["completeness"]["reports_sent"], s["completeness"]["reports_on_time"]) == (3, 0, 0)

    async def test_a_late_acknowledgement_changes_the_response_figures_and_so_the_report(self, world: World):
        envelope = reported("25349", datetime(2025, 3, 3, 8, 0))
        await world.feed(envelope)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        incident_id = envelope.correlation_id
        at = datetime(2025, 5, 5, tzinfo=UTC)
        ack = AssignmentAcknowledged(
            incident_id=incident_id, assignment_id="a1", unit_id="25349.police", unit_type="police", role=Role.lead,
            commune_code="25349", by="25349.police", at=at, due_at=at, assigned_at=at - timedelta(minutes=5),
        )
        world.clock.now = datetime(2025, 5, 6, tzinfo=UTC)
        await world.feed(ack.envelope(correlation_id=incident_id, producer="routing"))
        assert await world.generate() == [("25349", "2025-6M", 2)]
        latest = await world.json("/v1/reports/25349/2025-6M/latest")
        assert latest["summary"]["indicators"]["response"]["police"]["median_seconds_to_acknowledge"] == 300.0

    async def test_a_closure_then_a_reopening_changes_the_report_each_time_whatever_the_order(self, world: World):
        envelope = reported("25349", datetime(2025, 3, 3, 8, 0))
        incident_id = envelope.correlation_id
        await world.feed(envelope)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        closed = IncidentClosureRecorded(incident_id=incident_id, commune_code="25349", risk_level="low", at=datetime(2025, 5, 3, tzinfo=UTC))
        reopened = IncidentReopened(incident_id=incident_id, commune_code="25349", by="b", at=datetime(2025, 5, 4, tzinfo=UTC))
        world.clock.now = datetime(2025, 5, 5, tzinfo=UTC)
        await world.feed(reopened.envelope(correlation_id=incident_id, producer="routing"))
        await world.feed(closed.envelope(correlation_id=incident_id, producer="routing"))  # older, arrives later
        assert await world.generate() == []  # reopened after it was closed: still open, same numbers
        s = await world.json("/v1/summaries/25349", period="2025-6M")
        assert (s["indicators"]["cases_open"], s["indicators"]["cases_closed"]) == (1, 0)
        closed_again = closed.model_copy(update={"at": datetime(2025, 5, 6, tzinfo=UTC)})
        world.clock.now = datetime(2025, 5, 7, tzinfo=UTC)
        await world.feed(closed_again.envelope(correlation_id=incident_id, producer="routing"))
        assert await world.generate() == [("25349", "2025-6M", 2)]
        s = await world.json("/v1/summaries/25349", period="2025-6M")
        assert (s["indicators"]["cases_closed"], s["revision"]) == (1, 2)

    async def test_a_fact_that_committed_after_a_check_it_predates_is_still_found(self, world: World):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        check = world.clock.now
        # A write stamped 30 s before the check, committed after it (a slow transaction): the next pass looks again.
        late = reported("25339", datetime(2025, 1, 1, 12, 0))
        world.clock.now = check - timedelta(seconds=30)
        await world.feed(late)
        world.clock.now = check + timedelta(minutes=1)
        assert await world.generate() == [("25339", "2025-6M", 2)]

    async def test_a_recheck_that_finds_the_same_numbers_stores_nothing_and_stops_looking(self, world: World):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        # The same incident again under another event id: the read model keeps it once.
        async with world.runtime.sessionmaker() as session, session.begin():
            await session.execute(update(IncidentFact).values(ingested_at=world.clock.now + timedelta(seconds=1)))
        world.clock.now += timedelta(seconds=10)
        assert await world.generate() == []
        rows = await world.rows()
        assert [r.revision for r in rows] == [1, 1, 1] and {r.checked_at for r in rows if r.org_unit != "25339"} == {world.clock.now}


class TestReplicas:
    async def test_two_schedulers_at_once_store_each_revision_once_and_publish_it_once(self, world: World, tmp_path: Path):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 11, 2, tzinfo=UTC)
        other = await make_runtime(world.database_url, CommonSettings(data_dir=tmp_path), world.clock)
        try:
            made = await asyncio.gather(world.generate(), world.generate(other))
        finally:
            await other.engine.dispose()
            await other.auth_engine.dispose()
        rows = await world.rows()
        keys = [(r.org_unit, r.period, r.revision) for r in rows]
        assert len(keys) == len(set(keys)) == 6
        assert sorted(made[0] + made[1]) == sorted(keys)
        assert len(await world.published()) == 6


class TestReadingReports:
    async def prepare(self, world: World) -> None:
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        world.clock.now = datetime(2025, 5, 20, tzinfo=UTC)
        await world.feed(reported("25349", datetime(2025, 4, 1, 8, 0)))
        world.clock.now += timedelta(seconds=1)
        await world.generate()

    async def test_the_list_shows_every_revision_newest_first_for_a_commune_or_its_district(self, world: World):
        await self.prepare(world)
        page = await world.json("/v1/reports/25349", "25349.cp_officer", period="2025-6M")
        assert [(i["revision"], i["incidents_total"], i["on_time"]) for i in page["items"]] == [(2, 3, False), (1, 2, True)]
        district = await world.json("/v1/reports/694", "district:694", limit=3)
        assert len(district["items"]) == 3 and district["next_cursor"]
        rest = await world.json("/v1/reports/694", "district:694", limit=3, cursor=district["next_cursor"])
        assert len(rest["items"]) == 1 and rest["next_cursor"] is None

    async def test_a_former_district_lists_only_the_reports_of_days_the_commune_was_its(self, world: World):
        """25349 left district 694 on 1 July 2025: its 2026-6M report is not 694's, with or without a period."""
        await self.prepare(world)
        await world.feed(reported("25349", datetime(2025, 12, 3, 9, 0)))
        world.clock.now = datetime(2026, 5, 2, tzinfo=UTC)
        await world.generate()
        every = {(i["org_unit"], i["period"]) for i in (await world.json("/v1/reports/25349", limit=500))["items"]}
        assert ("25349", "2026-6M") in every
        for path in ("/v1/reports/25349", "/v1/reports/694"):
            listed = {(i["org_unit"], i["period"]) for i in (await world.json(path, "district:694", limit=500))["items"]}
            assert ("25349", "2025-6M") in listed and not [p for _, p in listed if p.startswith("2026")], (path, listed)

    @pytest.mark.parametrize("cursor", ["²", "not a cursor", "eyJpZCI6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OX0"])  # the last: id 10^25
    async def test_a_cursor_not_given_out_is_422_naming_the_cursor(self, world: World, cursor):
        answer = await world.get("/v1/reports/694", "district:694", cursor=cursor)
        assert answer.status_code == 422, answer.text
        assert [e["loc"] for e in answer.json()["detail"]] == [["query", "cursor"]]

    async def test_a_revision_holds_the_numbers_of_its_moment(self, world: World):
        await self.prepare(world)
        first = await world.json("/v1/reports/25349/2025-6M/1")
        latest = await world.json("/v1/reports/25349/2025-6M/latest")
        live = await world.json("/v1/summaries/25349", period="2025-6M")
        assert first["summary"]["indicators"]["incidents_total"] == 2
        assert latest["revision"] == 2 and latest["summary"]["indicators"] == live["indicators"]
        assert live["revision"] == 2 and live["report"]["produced_on_time"] is True and live["report"]["sent"] is False

    async def test_a_revision_exports_as_xlsx_with_its_own_numbers(self, world: World):
        await self.prepare(world)
        response = await world.get("/v1/reports/25349/2025-6M/1/export", format="xlsx")
        assert response.status_code == 200
        assert 'filename="baove-25349-2025-6M-r1.xlsx"' in response.headers["content-disposition"]
        rows = list(load_workbook(io.BytesIO(response.content)).active.iter_rows(values_only=True))
        # A commune's 2 incidents are a small cell on the published export (BAOVE_REPORTING_SMALL_CELL_THRESHOLD=5).
        assert next(r for r in rows if r[0] == "Tổng số vụ việc")[3] == "<5"
        assert ("Lần báo cáo (phiên bản)", "1") in [(r[0], r[1]) for r in rows]
        world.runtime.api.state.small_cells = 0  # protection off: the revision's own number
        response = await world.get("/v1/reports/25349/2025-6M/1/export", format="xlsx")
        rows = list(load_workbook(io.BytesIO(response.content)).active.iter_rows(values_only=True))
        assert next(r for r in rows if r[0] == "Tổng số vụ việc")[3] == 2

    async def test_the_district_export_has_a_timeliness_sheet(self, world: World):
        await self.prepare(world)
        response = await world.get("/v1/summaries/694/export", "district:694", period="2025-6M", format="xlsx")
        book = load_workbook(io.BytesIO(response.content))
        rows = list(book["Tiến độ báo cáo"].iter_rows(values_only=True))
        assert rows[0][0] == "Mã xã" and [(r[0], r[2], r[3], r[6], r[7]) for r in rows[1:]] == [
            ("25339", "Có", 1, None, "Chưa lập"), ("25348", "Có", 1, None, "Chưa lập"), ("25349", "Có", 2, None, "Chưa lập"),
        ], "figures produced, no document sent"

    async def test_access_and_missing_revisions(self, world: World):
        await self.prepare(world)
        assert (await world.get("/v1/reports/25349", "district:695")).status_code == 404
        assert (await world.get("/v1/reports/25348/2025-6M/1", "25349.cp_officer")).status_code == 404
        assert (await world.get("/v1/reports/25349/2025-6M/9")).status_code == 404
        assert (await world.get("/v1/reports/25349/2025-6M/first")).status_code == 422
        assert (await world.get("/v1/reports/25349", period="2025Q7")).status_code == 422
        assert (await world.get("/v1/reports/25349", cursor="abc")).status_code == 422

    async def test_a_calendar_period_has_no_report_status(self, world: World):
        await self.prepare(world)
        s = await world.json("/v1/summaries/694", period="2025Q1")
        assert s["completeness"]["reports"] is None and s["revision"] is None


class TestMetrics:
    async def test_generation_time_is_observed(self, world: World):
        await before_the_six_month_report(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        state = world.runtime.api.state
        await revisions.generate_due_reports(world.runtime, state.hierarchy, state.plans, clock=world.clock, metrics=state.metrics)
        await world.json("/v1/summaries/694", period="2025")
        text = (await world.client.get("/metrics")).text
        assert 'baove_report_generation_seconds_count{level="report"} 3.0' in text
        assert 'baove_report_generation_seconds_count{level="district"} 1.0' in text


async def test_facts_are_stamped_with_the_ingestion_time(world: World):
    await world.feed(reported("25349", datetime(2025, 3, 3, 8, 0)))
    async with world.runtime.sessionmaker() as session:
        assert (await session.execute(select(func.max(IncidentFact.ingested_at)))).scalar_one() == world.clock.now


def activity_event(kind_of_change: str, activity_id: str, revision: int, held_on: str, sessions: int) -> Envelope:
    """An activity.* event of the police's communication under task IV.7 (as intake publishes it)."""
    event = EVENT_TYPES[f"activity.{kind_of_change}"](
        activity_id=activity_id, revision=revision, commune_code="25349", unit_id="25349.police", unit_type="police",
        task_id="IV.7", plan_version="2025.1", kind="communication", held_on=held_on,
        counts=ActivityCounts(sessions=sessions, participants_total=40), by="25349.police", at=datetime(2025, 5, 5, tzinfo=UTC),
    )
    return event.envelope(correlation_id=activity_id, producer="intake")


class TestLateActivities:
    async def test_an_activity_corrected_or_withdrawn_after_the_report_makes_new_revisions(self, world: World):
        await before_the_six_month_report(world)
        await world.feed(activity_event("recorded", "act-1", 1, "2025-03-02", 2))
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        first = {(r.org_unit, r.revision): r for r in await world.rows()}[("25349", 1)]
        assert first.summary["activities"]["totals"]["sessions"] == 2

        world.clock.now = datetime(2025, 5, 6, tzinfo=UTC)
        await world.feed(activity_event("corrected", "act-1", 2, "2025-03-02", 5))
        world.clock.now += timedelta(seconds=5)
        assert await world.generate() == [("25349", "2025-6M", 2)]
        world.clock.now = datetime(2025, 5, 7, tzinfo=UTC)
        await world.feed(activity_event("withdrawn", "act-1", 3, "2025-03-02", 5))
        world.clock.now += timedelta(seconds=5)
        assert await world.generate() == [("25349", "2025-6M", 3)]
        rows = {(r.org_unit, r.revision): r for r in await world.rows()}
        assert rows[("25349", 2)].summary["activities"]["totals"]["sessions"] == 5
        assert rows[("25349", 3)].summary["activities"]["rows"] == []

    async def test_a_withdrawal_that_arrives_before_the_activity_keeps_it_out(self, world: World):
        await world.feed(activity_event("withdrawn", "act-2", 2, "2025-03-02", 3), activity_event("recorded", "act-2", 1, "2025-03-02", 3))
        await world.feed(activity_event("recorded", "act-3", 1, "2025-03-03", 4))
        s = await world.json("/v1/summaries/25349", "25349.cp_officer", period="2025-6M")
        assert s["activities"]["totals"]["activities"] == 1 and s["activities"]["totals"]["sessions"] == 4
