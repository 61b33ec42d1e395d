"""report.due (issue 18): reporting reminds a commune of its plan report 7 and 1 days before the due date, once per
commune, period and reminder, across passes and two schedulers, and never once the document was sent.

Runs on SQLite and PostgreSQL with a test clock, the API in process (as test_reporting_generation.py); the outbox is
read directly. 2025-6M is due on 10 May 2025 (Vietnam's date): the reminders fall on 3 May and 9 May.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from services.reporting.periods import DEFAULT_PLANS
from services.reporting.reminders import remind_due_reports, reminders_due
from shared.events import ChildFacts, IncidentFacts, IncidentRecorded
from shared.settings import CommonSettings, ReportingSettings
from tests.integration.test_report_documents import NARRATIVE, ok
from tests.reporting_support import World, make_runtime, unit_tokens

VN = timezone(timedelta(hours=7))
DAYS = ReportingSettings(report_due_days="7,1").report_due_days


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=VN).astimezone(UTC)


async def remind(world: World, runtime=None) -> list[tuple[str, str, int]]:
    state = world.runtime.api.state
    made = await remind_due_reports((runtime or world.runtime).unit_of_work, state.hierarchy, state.plans, DAYS, clock=world.clock)
    return sorted(made)


async def due_events(world: World) -> list[dict]:
    return [e["payload"] for e in await world.published() if e["event_type"] == "report.due"]


async def an_incident(world: World) -> None:
    incident_id = str(uuid.uuid4())
    at = datetime(2025, 3, 3, 8, tzinfo=VN)
    facts = IncidentFacts(
        commune_code="25349", hamlet=None, category="violence", urgency="high", channel="phone",
        occurred_at=at, received_at=at, children=(ChildFacts(sex="female", age_band="6-10"),),
    )
    await world.feed(IncidentRecorded(incident_id=incident_id, facts=facts).envelope(correlation_id=incident_id, producer="intake"))


def test_the_settings_and_the_days_a_reminder_is_due():
    assert DAYS == (7, 1)
    due = {d: reminders_due(DEFAULT_PLANS, d, DAYS) for d in (date(2025, 5, 2), date(2025, 5, 3), date(2025, 5, 8), date(2025, 5, 9),
                                                                  date(2025, 5, 10), date(2025, 5, 11))}
    assert [(p.id, n) for p, n in due[date(2025, 5, 3)]] == [("2025-6M", 7)]
    assert [(p.id, n) for p, n in due[date(2025, 5, 8)]] == [("2025-6M", 7)], "the 7-day reminder until the 1-day one is due"
    assert [(p.id, n) for p, n in due[date(2025, 5, 9)]] == [("2025-6M", 1)]
    assert [(p.id, n) for p, n in due[date(2025, 5, 10)]] == [("2025-6M", 1)]
    assert due[date(2025, 5, 2)] == [] and due[date(2025, 5, 11)] == []


class TestReportDue:
    async def test_seven_and_one_day_before_once_each_and_never_after_the_document_was_sent(self, world: World, tmp_path: Path):
        await an_incident(world)
        await unit_tokens(world, "25348.cp_officer", "25349.chairman")
        world.clock.now = datetime(2025, 5, 2, 10, tzinfo=UTC)
        await world.generate()
        # 25349 sends its report on 2 May; 25348 has a draft; 25339 has nothing.
        base = "/v1/reports/25349/2025-6M/document"
        await ok(world, "PUT", base, "25349.cp_officer", json={"narrative": NARRATIVE})
        await ok(world, "POST", f"{base}/submit", "25349.cp_officer")
        await ok(world, "POST", f"{base}/approve", "25349.chairman", json={"signer_name": "Nguyễn Quốc Trung"})
        await ok(world, "POST", f"{base}/send", "25349.cp_officer")
        await ok(world, "PUT", "/v1/reports/25348/2025-6M/document", "25348.cp_officer", json={"narrative": {"situation": "x"}})

        world.clock.now = local_midnight(date(2025, 5, 3)) - timedelta(seconds=1)  # 23:59:59 on 2 May in Vietnam
        assert await remind(world) == []
        world.clock.now = local_midnight(date(2025, 5, 3))
        assert await remind(world) == [("25339", "2025-6M", 7), ("25348", "2025-6M", 7)]
        events = sorted(await due_events(world), key=lambda e: e["org_unit"])
        assert events == [
            {"org_unit": "25339", "period": "2025-6M", "due": "2025-05-10", "days_before": 7, "days_left": 7, "status": "none"},
            {"org_unit": "25348", "period": "2025-6M", "due": "2025-05-10", "days_before": 7, "days_left": 7, "status": "draft"},
        ]
        world.clock.now += timedelta(hours=1)
        assert await remind(world) == []
        world.clock.now = local_midnight(date(2025, 5, 8)) + timedelta(hours=12)
        assert await remind(world) == []

        # 9 May: two schedulers at once publish each 1-day reminder once.
        world.clock.now = local_midnight(date(2025, 5, 9)) + timedelta(hours=8)
        other = await make_runtime(world.database_url, CommonSettings(data_dir=tmp_path), world.clock)
        try:
            made = await asyncio.gather(remind(world), remind(world, other))
        finally:
            await other.engine.dispose()
            await other.auth_engine.dispose()
        assert sorted(made[0] + made[1]) == [("25339", "2025-6M", 1), ("25348", "2025-6M", 1)]
        events = await due_events(world)
        assert len(events) == 4
        assert sorted((e["org_unit"], e["days_before"], e["days_left"]) for e in events if e["days_before"] == 1) == [
            ("25339", 1, 1), ("25348", 1, 1)
        ]
        assert not [e for e in events if e["org_unit"] == "25349"], "its document was sent"

        world.clock.now = local_midnight(date(2025, 5, 11))
        assert await remind(world) == []
        assert len(await due_events(world)) == 4
        envelopes = [e for e in await world.published() if e["event_type"] == "report.due"]
        assert {e["producer"] for e in envelopes} == {"reporting"}
        assert {e["correlation_id"] for e in envelopes} == {"report:25339:2025-6M", "report:25348:2025-6M"}

    async def test_a_restarted_scheduler_does_not_remind_again(self, world: World, tmp_path: Path):
        await an_incident(world)
        world.clock.now = local_midnight(date(2025, 5, 9))
        assert len(await remind(world)) == 3
        restarted = await make_runtime(world.database_url, CommonSettings(data_dir=tmp_path), world.clock)
        try:
            assert await remind(world, restarted) == []
        finally:
            await restarted.engine.dispose()
            await restarted.auth_engine.dispose()
        assert len(await due_events(world)) == 3
