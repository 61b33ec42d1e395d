"""The Decree 56/2017 process's first step on routing, over a real database (SQLite and PostgreSQL): the initial
assessment (Mẫu 02) recorded and amended, and its 12-hour deadline escalated once to the chairman, across restarts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.routing.deadlines import DeadlineWatcher
from services.routing.erasure import handle_erased
from services.routing.models import RoutedIncident, outbox_message
from shared.events import IncidentErased
from tests.routing_support import MovedClock, close_runtime, reported, route, routing_runtime
from tests.support import bearer, client, issue_token

CP, CHAIR, POLICE, OTHER_CP = "25349.cp_officer", "25349.chairman", "25349.police", "25339.cp_officer"
TWELVE_HOURS = timedelta(hours=12)


async def start(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    runtime.tokens = {unit: await issue_token(runtime, "unit", unit) for unit in (CP, CHAIR, POLICE, OTHER_CP)}
    return runtime


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await start(tmp_path, database_url)
    yield runtime
    await close_runtime(runtime)


def watcher(runtime, now: datetime) -> DeadlineWatcher:
    state = runtime.api.state
    return DeadlineWatcher(runtime, state.rule_sets, MovedClock(now), state.metrics)


async def outbox(runtime, event_type: str) -> list[dict]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(outbox_message.c.body).where(outbox_message.c.event_type == event_type).order_by(outbox_message.c.id)
        )
        return [json.loads(body) for body in rows.scalars()]


async def case_row(runtime, incident_id: str) -> RoutedIncident:
    async with runtime.sessionmaker() as session:
        return await session.get(RoutedIncident, incident_id)


def assessment(**changes) -> dict:
    body = {
        "harm": "bị đánh gây thương tích ở tay",
        "danger_level": "high",
        "urgent_protection": True,
        "measures_taken": "đưa đến trạm y tế; tạm thời ở nhà bà ngoại",
        "assessed_by": "Cán bộ LĐ-TB&XH xã",
        "assessed_at": datetime.now(UTC).isoformat(),
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def post_assessment(runtime, incident_id: str, unit: str = CP, body: dict | None = None):
    async with client(runtime) as http:
        return await http.post(f"/v1/incidents/{incident_id}/assessment", json=body or assessment(), headers=bearer(runtime.tokens[unit]))


async def get_process(runtime, incident_id: str, unit: str = CP):
    async with client(runtime) as http:
        return await http.get(f"/v1/incidents/{incident_id}/process", headers=bearer(runtime.tokens[unit]))


async def new_case(runtime, received_at: datetime | None = None) -> tuple[str, datetime]:
    event = reported(received_at=received_at or datetime.now(UTC) - timedelta(hours=1))
    await route(runtime, event)
    return event.incident_id, event.facts.received_at


class TestTheInitialAssessment:
    async def test_a_new_case_is_received_with_its_12_hour_deadline(self, routing):
        incident_id, received = await new_case(routing)
        answer = await get_process(routing, incident_id)
        assert answer.status_code == 200, answer.text
        read = answer.json()
        assert (read["step"], read["allowed"], read["records"], read["history"]) == ("received", ["initial_assessment"], [], [])
        deadline = read["deadline"]
        assert deadline["step"] == "initial_assessment" and deadline["watched"] and not deadline["overdue"]
        assert datetime.fromisoformat(deadline["due_at"]) == received + TWELVE_HOURS

    async def test_recorded_in_time_it_moves_the_step_and_ends_the_deadline(self, routing):
        incident_id, received = await new_case(routing)
        answer = await post_assessment(routing, incident_id)
        assert answer.status_code == 200, answer.text
        read = answer.json()
        assert read["step"] == "initial_assessment"
        assert read["allowed"] == ["emergency_measures", "detailed_assessment"]
        # Next: the plan, within 5 working days of the report, watched in its turn.
        assert read["deadline"]["step"] == "plan" and read["deadline"]["watched"] and not read["deadline"]["overdue"]
        [record] = read["records"]
        assert (record["form"], record["version"], record["current"], record["recorded_by"]) == ("initial_assessment", 1, True, CP)
        assert record["data"]["danger_level"] == "high" and record["data"]["urgent_protection"] is True
        [change] = read["history"]
        assert (change["from_step"], change["to_step"], change["record_id"]) == ("received", "initial_assessment", record["record_id"])
        assert (await case_row(routing, incident_id)).step_due_at == datetime.fromisoformat(read["deadline"]["due_at"])
        # Past the 12 hours nothing is escalated: the deadline was met.
        assert await watcher(routing, received + TWELVE_HOURS + timedelta(hours=1)).tick_steps() == 0
        assert await outbox(routing, "incident.step_overdue") == []

    async def test_an_amendment_is_a_new_version_and_the_old_one_is_kept(self, routing):
        incident_id, _ = await new_case(routing)
        assert (await post_assessment(routing, incident_id)).status_code == 200
        answer = await post_assessment(
            routing, incident_id, body=assessment(danger_level="medium", urgent_protection=False, measures_taken="")
        )
        assert answer.status_code == 200, answer.text
        read = answer.json()
        assert [(r["version"], r["current"], r["data"]["danger_level"]) for r in read["records"]] == [
            (1, False, "high"),
            (2, True, "medium"),
        ]
        assert read["step"] == "initial_assessment" and len(read["history"]) == 1


class TestWhoMay:
    async def test_only_the_communes_cp_officer_records(self, routing):
        incident_id, _ = await new_case(routing)
        assert (await post_assessment(routing, incident_id, POLICE)).status_code == 403
        assert (await post_assessment(routing, incident_id, CHAIR)).status_code == 403
        assert (await post_assessment(routing, incident_id, OTHER_CP)).status_code == 404
        assert (await get_process(routing, incident_id)).json()["step"] == "received"

    async def test_its_cp_officer_and_chairman_read_other_units_do_not(self, routing):
        incident_id, _ = await new_case(routing)
        assert (await get_process(routing, incident_id, CHAIR)).status_code == 200
        assert (await get_process(routing, incident_id, POLICE)).status_code == 403
        assert (await get_process(routing, incident_id, OTHER_CP)).status_code == 404
        assert (await get_process(routing, "no-such-incident")).status_code == 404


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (assessment(danger_level=None), "danger_level"),
            (assessment(danger_level="extreme"), "danger_level"),
            (assessment(harm=""), "harm"),
            (assessment(assessed_at="yesterday"), "assessed_at"),
            (assessment(urgent_protection="maybe"), "urgent_protection"),
        ],
    )
    async def test_a_bad_field_is_named(self, routing, body, field):
        incident_id, _ = await new_case(routing)
        answer = await post_assessment(routing, incident_id, body=body)
        assert answer.status_code == 422
        assert any(field in error["loc"] for error in answer.json()["detail"]), answer.json()

    async def test_urgent_protection_needs_the_measures_taken(self, routing):
        incident_id, _ = await new_case(routing)
        answer = await post_assessment(routing, incident_id, body=assessment(measures_taken=""))
        assert answer.status_code == 422 and "measures_taken" in answer.text

    async def test_an_assessment_in_the_future_or_before_the_report_is_refused(self, routing):
        incident_id, received = await new_case(routing)
        for when in (datetime.now(UTC) + timedelta(hours=1), received - timedelta(minutes=1)):
            answer = await post_assessment(routing, incident_id, body=assessment(assessed_at=when.isoformat()))
            assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "assessed_at"]
        assert (await get_process(routing, incident_id)).json()["records"] == []


class TestTheDeadline:
    async def test_a_missing_assessment_escalates_once_to_the_chairman_at_12_hours(self, routing):
        received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        incident_id, _ = await new_case(routing, received)
        assert await watcher(routing, received + TWELVE_HOURS - timedelta(seconds=1)).tick_steps() == 0
        late = received + TWELVE_HOURS + timedelta(seconds=1)
        assert await watcher(routing, late).tick_steps() == 1
        assert await watcher(routing, late).tick_steps() == 0
        await watcher(routing, late + timedelta(days=3)).tick()  # the whole watcher, assignments and steps
        [told] = await outbox(routing, "incident.step_overdue")
        assert told["producer"] == "routing" and told["correlation_id"] == incident_id
        payload = told["payload"]
        assert (payload["step"], payload["escalated_to"], payload["commune_code"]) == ("initial_assessment", [CHAIR], "25349")
        assert datetime.fromisoformat(payload["due_at"]) == received + TWELVE_HOURS
        assert datetime.fromisoformat(payload["at"]) == late
        deadline = (await get_process(routing, incident_id)).json()["deadline"]
        assert deadline["overdue"] and datetime.fromisoformat(deadline["escalated_at"]) == late
        # A late assessment still moves the case on: the escalation stays in the outbox (and intake's timeline), and
        # the plan's deadline, a new one, is watched unflagged.
        answer = await post_assessment(routing, incident_id)
        assert answer.status_code == 200 and answer.json()["step"] == "initial_assessment"
        row = await case_row(routing, incident_id)
        assert row.step_overdue_at is None and row.step_due_at > late
        assert len(await outbox(routing, "incident.step_overdue")) == 1

    async def test_two_watchers_at_once_escalate_once(self, routing):
        received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        incident_id, _ = await new_case(routing, received)
        late = received + TWELVE_HOURS + timedelta(minutes=1)
        told = await asyncio.gather(*(watcher(routing, late).tick_steps() for _ in range(3)))
        assert sum(told) == 1 and len(await outbox(routing, "incident.step_overdue")) == 1

    async def test_the_deadline_survives_a_restart_and_escalates_once_across_it(self, tmp_path, database_url):
        received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        first = await start(tmp_path, database_url)
        incident_id, _ = await new_case(first, received)
        await close_runtime(first)  # routing stops before the deadline: no timer in memory to lose
        second = await start(tmp_path, database_url)
        try:
            late = received + TWELVE_HOURS + timedelta(minutes=5)
            assert await watcher(second, late).tick_steps() == 1
        finally:
            await close_runtime(second)
        third = await start(tmp_path, database_url)
        try:
            assert await watcher(third, late + timedelta(hours=1)).tick_steps() == 0
            assert [m["payload"]["incident_id"] for m in await outbox(third, "incident.step_overdue")] == [incident_id]
        finally:
            await close_runtime(third)

    async def test_a_closed_case_is_not_escalated(self, routing):
        received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        incident_id, _ = await new_case(routing, received)
        async with routing.sessionmaker() as session, session.begin():
            (await session.get(RoutedIncident, incident_id)).status = "closed"
        assert await watcher(routing, received + timedelta(days=1)).tick_steps() == 0


async def test_an_erasure_blanks_the_assessments_free_text_and_keeps_its_levels(routing):
    incident_id, _ = await new_case(routing)
    assert (await post_assessment(routing, incident_id)).status_code == 200
    erased = IncidentErased(incident_id=incident_id, commune_code="25349", cause="request", at=datetime.now(UTC))
    async with routing.sessionmaker() as session, session.begin():
        await handle_erased(session, erased, erased.envelope(correlation_id=incident_id, producer="intake"))
    [record] = (await get_process(routing, incident_id)).json()["records"]
    assert (record["data"]["harm"], record["data"]["measures_taken"], record["data"]["assessed_by"]) == ("", "", "")
    assert (record["data"]["danger_level"], record["data"]["urgent_protection"]) == ("high", True)
