"""The deadline watcher over a real database (SQLite and PostgreSQL): overdue assignments escalate exactly once,
however often, however concurrently and however interrupted the watcher runs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from services.routing.deadlines import DeadlineWatcher
from services.routing.models import Assignment, outbox_message
from shared.uow import UnitOfWork
from tests.routing_support import MovedClock, close_runtime, reported, route, routing_runtime
from tests.support import bearer, client, eventually, issue_token

CP_OFFICER, CHAIRMAN = "25349.cp_officer", "25349.chairman"


def watcher(runtime, clock: MovedClock) -> DeadlineWatcher:
    state = runtime.api.state
    return DeadlineWatcher(runtime, state.rule_sets, clock, state.metrics)


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    yield runtime
    await close_runtime(runtime)


async def assignments(runtime, incident_id: str) -> list[Assignment]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(Assignment).where(Assignment.incident_id == incident_id).order_by(Assignment.assigned_at, Assignment.id))
        return list(rows.scalars())


async def outbox(runtime, event_type: str, incident_id: str | None = None) -> list[dict]:
    async with runtime.sessionmaker() as session:
        stmt = select(outbox_message.c.body).where(outbox_message.c.event_type == event_type).order_by(outbox_message.c.id)
        if incident_id:
            stmt = stmt.where(outbox_message.c.correlation_id == incident_id)
        return [json.loads(body) for body in (await session.execute(stmt)).scalars()]


def escalations(rows: list[Assignment]) -> list[Assignment]:
    return [a for a in rows if a.origin.startswith("escalation:")]


async def emergency(runtime, **kwargs) -> tuple[str, datetime]:
    event = reported(category="injury", urgency="emergency", **kwargs)
    await route(runtime, event)
    return event.incident_id, event.facts.received_at


class TestAnOverdueEmergency:
    async def test_nothing_happens_before_the_deadline(self, routing):
        incident_id, received = await emergency(routing)
        assert await watcher(routing, MovedClock(received + timedelta(minutes=59))).tick() == 0
        assert all(a.overdue_at is None for a in await assignments(routing, incident_id))

    async def test_past_it_every_pending_assignment_is_flagged_and_escalated_once_to_the_cp_officer_and_chairman(self, routing):
        incident_id, received = await emergency(routing)
        now = received + timedelta(hours=1, minutes=1)
        assert await watcher(routing, MovedClock(now)).tick() == 1
        rows = await assignments(routing, incident_id)
        routed = [a for a in rows if a.origin == "routing"]
        [lead] = [a for a in routed if a.role == "lead"]
        assert {a.unit_id for a in routed} == {"25349.health", CP_OFFICER, CHAIRMAN, "25349.hamlet.ap-2"}
        assert all(a.overdue_at == now and a.status == "pending" for a in routed)
        new = escalations(rows)
        assert sorted(a.unit_id for a in new) == [CHAIRMAN, CP_OFFICER]
        for a in new:
            assert (a.role, a.status, a.rule, a.rules_version) == ("support", "pending", "escalation.overdue", "escalation")
            assert a.origin == f"escalation:{lead.id}" and a.dedupe_key == f"{incident_id}:{a.unit_id}:escalation:{lead.id}"
            assert a.due_at == now + timedelta(hours=1) and a.assigned_at == now and a.overdue_at is None
        overdue = await outbox(routing, "assignment.overdue")
        assert sorted(o["payload"]["assignment_id"] for o in overdue) == sorted(a.id for a in routed)
        assert all(o["payload"]["by"] == "routing" and o["payload"]["at"] == o["emitted_at"] for o in overdue)
        [escalated] = await outbox(routing, "incident.escalated")
        assert escalated["payload"]["overdue_assignment_id"] == lead.id
        assert escalated["payload"]["escalated_to"] == [CP_OFFICER, CHAIRMAN]
        [told] = [r for r in await outbox(routing, "incident.routed") if r["payload"]["rules_version"] == "escalation"]
        assert sorted(a["assignment_id"] for a in told["payload"]["assignments"]) == sorted(a.id for a in new)

    async def test_a_second_tick_and_a_later_one_raise_nothing_twice(self, routing):
        incident_id, received = await emergency(routing)
        clock = MovedClock(received + timedelta(hours=1, minutes=1))
        assert await watcher(routing, clock).tick() == 1
        assert await watcher(routing, clock).tick() == 0
        # Hours later the escalation assignments are late too: flagged, but they go no higher.
        clock.now = received + timedelta(hours=3)
        assert await watcher(routing, clock).tick() == 1
        rows = await assignments(routing, incident_id)
        assert len(escalations(rows)) == 2 and all(a.overdue_at is not None for a in rows)
        assert len(await outbox(routing, "incident.escalated")) == 1
        assert len(await outbox(routing, "assignment.overdue")) == len(rows)
        assert await watcher(routing, clock).tick() == 0

    async def test_acknowledged_assignments_are_not_overdue(self, routing):
        incident_id, received = await emergency(routing)
        async with routing.sessionmaker() as session, session.begin():
            await session.execute(update(Assignment).where(Assignment.incident_id == incident_id).values(status="acknowledged"))
        assert await watcher(routing, MovedClock(received + timedelta(hours=2))).tick() == 0
        assert escalations(await assignments(routing, incident_id)) == []

    async def test_a_later_overdue_assignment_does_not_escalate_to_a_unit_still_holding_an_open_escalation(self, routing):
        incident_id, received = await emergency(routing)
        clock = MovedClock(received + timedelta(hours=1, minutes=1))
        await watcher(routing, clock).tick()
        # A new lead, late in turn, while the cp_officer's escalation is done and the chairman's still open.
        rows = await assignments(routing, incident_id)
        [cp_escalation] = [a for a in escalations(rows) if a.unit_id == CP_OFFICER]
        async with routing.sessionmaker() as session, session.begin():
            await session.execute(update(Assignment).where(Assignment.id == cp_escalation.id).values(status="done"))
            await session.execute(
                update(Assignment).where(Assignment.incident_id == incident_id, Assignment.role == "lead").values(status="acknowledged")
            )
            late = next(a for a in rows if a.unit_id == "25349.hamlet.ap-2")
            await session.execute(
                update(Assignment).where(Assignment.id == late.id).values(overdue_at=None, due_at=clock.now + timedelta(minutes=5))
            )
            await session.execute(
                update(Assignment).where(Assignment.origin.startswith("escalation:")).values(due_at=clock.now + timedelta(days=1))
            )
        clock.now += timedelta(minutes=10)
        assert await watcher(routing, clock).tick() == 1
        new = [a for a in escalations(await assignments(routing, incident_id)) if a.origin == f"escalation:{late.id}"]
        assert [a.unit_id for a in new] == [CP_OFFICER]
        [_, second] = await outbox(routing, "incident.escalated")
        assert second["payload"]["escalated_to"] == [CP_OFFICER] and second["payload"]["overdue_assignment_id"] == late.id

    async def test_the_metrics_count_the_overdue_and_the_escalations(self, routing):
        _, received = await emergency(routing, hamlet=None)
        registry = routing.registry
        assert registry.get_sample_value("baove_assignments_created_total", {"unit_type": "health", "role": "lead"}) == 1
        await watcher(routing, MovedClock(received + timedelta(hours=1, minutes=1))).tick()
        assert registry.get_sample_value("baove_escalations_total") == 1
        assert registry.get_sample_value("baove_assignments_overdue", {"unit_type": "health"}) == 1
        assert registry.get_sample_value("baove_assignments_overdue", {"unit_type": "police"}) == 0
        assert registry.get_sample_value("baove_assignments_created_total", {"unit_type": "chairman", "role": "support"}) == 2
        assert registry.get_sample_value("baove_routing_decision_seconds_count") == 1


class TestInterruptions:
    async def test_a_tick_that_fails_before_its_commit_leaves_everything_for_the_next(self, routing, monkeypatch):
        incident_id, received = await emergency(routing)
        clock = MovedClock(received + timedelta(hours=1, minutes=1))

        async def crash(*_args, **_kwargs):
            raise ConnectionError("the process died here")

        with monkeypatch.context() as patch:
            patch.setattr(UnitOfWork, "stage", crash)
            with pytest.raises(ConnectionError):
                await watcher(routing, clock).tick()
        rows = await assignments(routing, incident_id)
        assert escalations(rows) == [] and all(a.overdue_at is None for a in rows)
        assert await outbox(routing, "assignment.overdue") == []
        assert await watcher(routing, clock).tick() == 1
        assert len(escalations(await assignments(routing, incident_id))) == 2
        assert len(await outbox(routing, "incident.escalated")) == 1

    async def test_the_dedupe_key_holds_if_the_flag_were_lost_and_other_incidents_go_on(self, routing):
        first, received = await emergency(routing)
        clock = MovedClock(received + timedelta(hours=1, minutes=1))
        await watcher(routing, clock).tick()
        second, _ = await emergency(routing)
        # As if the first line had failed: the flags lost, and the escalations closed so none is still held.
        async with routing.sessionmaker() as session, session.begin():
            await session.execute(update(Assignment).where(Assignment.incident_id == first).values(overdue_at=None))
            await session.execute(
                update(Assignment).where(Assignment.incident_id == first, Assignment.origin.startswith("escalation:")).values(status="done")
            )
        clock.now = datetime.now(UTC) + timedelta(hours=1, minutes=1)
        await watcher(routing, clock).tick()
        rows = await assignments(routing, first)
        assert len(escalations(rows)) == 2 and all(a.overdue_at is None for a in rows if a.origin == "routing")
        assert len(escalations(await assignments(routing, second))) == 2
        assert [e["payload"]["incident_id"] for e in await outbox(routing, "incident.escalated")] == [first, second]

    async def test_the_loop_survives_a_failing_tick_and_runs_again(self, routing, monkeypatch):
        incident_id, received = await emergency(routing)
        running = watcher(routing, MovedClock(received + timedelta(hours=1, minutes=1)))
        running.interval = 0.05
        calls = 0
        real_tick = running.tick

        async def flaky_tick():
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("database away")
            return await real_tick()

        monkeypatch.setattr(running, "tick", flaky_tick)
        task = asyncio.create_task(running.run())
        try:

            async def escalated_twice() -> bool:
                return len(escalations(await assignments(routing, incident_id))) == 2

            await eventually(escalated_twice, timeout=5, what="the escalation to both units")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert calls >= 2 and len(escalations(await assignments(routing, incident_id))) == 2


@pytest.fixture
def pg_url(pg_database) -> str:
    return pg_database()


@pytest.mark.postgres
class TestSeveralWatchersOnPostgres:
    async def test_concurrent_watchers_escalate_each_incident_exactly_once(self, tmp_path, pg_url):
        url = pg_url
        replicas = [await routing_runtime(tmp_path / "a", url), await routing_runtime(tmp_path / "b", url)]
        try:
            incidents = [await emergency(replicas[i % 2]) for i in range(12)]
            now = max(received for _, received in incidents) + timedelta(hours=1, minutes=1)
            clock = MovedClock(now)
            watchers = [watcher(r, clock) for r in replicas for _ in range(2)]
            for w in watchers:
                w.batch_size = 5
            handled = await asyncio.gather(*(w.tick() for w in watchers))
            handled += await asyncio.gather(*(w.tick() for w in watchers))
            assert sum(handled) == len(incidents)
            for incident_id, _ in incidents:
                rows = await assignments(replicas[0], incident_id)
                assert sorted(a.unit_id for a in escalations(rows)) == [CHAIRMAN, CP_OFFICER]
                assert len(await outbox(replicas[0], "incident.escalated", incident_id)) == 1
            async with replicas[0].sessionmaker() as session:
                flagged = (await session.execute(select(func.count()).where(Assignment.overdue_at.is_not(None)))).scalar_one()
            assert flagged == 4 * len(incidents)
            assert len(await outbox(replicas[0], "assignment.overdue")) == flagged
        finally:
            for r in replicas:
                await close_runtime(r)


class TestTheInboxShowsIt:
    async def test_the_escalation_is_in_the_cp_officer_and_chairman_inboxes_flagged_and_ordered_first(self, tmp_path, database_url):
        # The service's clock moved ahead, as BAOVE_ROUTING_CLOCK_OFFSET_SECONDS does in development.
        routing = await routing_runtime(tmp_path, database_url, clock_offset_seconds=3660)
        try:
            calm = reported(category="neglect", urgency="low")
            await route(routing, calm)
            incident_id, _ = await emergency(routing)
            state = routing.api.state
            assert await DeadlineWatcher(routing, state.rule_sets, state.clock, state.metrics).tick() == 1
            for unit in (CP_OFFICER, CHAIRMAN):
                token = await issue_token(routing, "unit", unit)
                async with client(routing) as http:
                    answer = await http.get(f"/v1/agencies/{unit}/assignments", headers=bearer(token))
                    overdue_only = await http.get(f"/v1/agencies/{unit}/assignments", params={"overdue": "true"}, headers=bearer(token))
                items = answer.json()["items"]
                # Overdue first, then the emergency's escalation, then the rest.
                expected = [(incident_id, "routing"), (incident_id, "escalation")] + ([(calm.incident_id, "routing")] if unit == CP_OFFICER else [])
                assert [(i["incident_id"], i["origin"].split(":")[0]) for i in items] == expected
                routine, escalation = items[0], items[1]
                assert routine["overdue"] is True and routine["overdue_at"] is not None
                assert escalation["rule"] == "escalation.overdue" and escalation["overdue"] is False and escalation["role"] == "support"
                assert [i["assignment_id"] for i in overdue_only.json()["items"]] == [routine["assignment_id"]]
        finally:
            await close_runtime(routing)
