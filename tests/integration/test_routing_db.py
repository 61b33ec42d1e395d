"""Routing over a real database (SQLite and PostgreSQL): routing once, and what a unit sees in its inbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.routing.models import Assignment, AssignmentChange, Unit, outbox_message
from services.routing.registry import load_units_into
from shared.cursor import encode_cursor
from shared.events import IncidentRouted
from shared.reference import load_demo_units
from tests.routing_support import SCHOOL, reported, route, routing_runtime
from tests.support import bearer, client, issue_token

UNITS = ("25349.police", "25349.cp_officer", "25349.justice", "25349.health", "25339.cp_officer")


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    runtime.tokens = {unit: await issue_token(runtime, "unit", unit) for unit in UNITS}
    runtime.tokens["admin"] = await issue_token(runtime, "admin", "admin")
    runtime.tokens["district"] = await issue_token(runtime, "district", "694")
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def outbox(runtime, event_type: str) -> list[dict]:
    async with runtime.sessionmaker() as session:
        rows = (await session.execute(select(outbox_message.c.body).where(outbox_message.c.event_type == event_type))).scalars()
        return [json.loads(body) for body in rows]


async def inbox(runtime, unit: str, token: str | None = None, **params):
    async with client(runtime) as http:
        return await http.get(f"/v1/agencies/{unit}/assignments", params=params, headers=bearer(runtime.tokens[token or unit]))


async def post(runtime, path: str, token: str, json_body: dict | None = None):
    async with client(runtime) as http:
        return await http.post(path, json=json_body, headers=bearer(runtime.tokens[token]))


def mine(answer, incident_id: str) -> dict:
    [item] = [i for i in answer.json()["items"] if i["incident_id"] == incident_id]
    return item


class TestRoutingOnce:
    async def test_an_incident_delivered_twice_is_stored_once(self, routing):
        event = reported(category="violence", urgency="high")
        first = await route(routing, event)
        again = await route(routing, reported(incident_id=event.incident_id, category="violence", urgency="high"))
        assert len(first) == 1 and again == []
        async with routing.sessionmaker() as session:
            units = (await session.execute(select(Assignment.unit_id).where(Assignment.incident_id == event.incident_id))).scalars().all()
            changes = (await session.execute(select(func.count()).select_from(AssignmentChange))).scalar_one()
        assert sorted(units) == sorted(
            ["25349.cp_officer", "25349.police", "25349.health", "25349.womens_union", "25349.hamlet.ap-2"]
        )
        assert changes == len(units)
        routed = IncidentRouted.model_validate(first[0].payload)
        assert {a.unit_id for a in routed.assignments} == set(units)

    async def test_the_demo_registry_is_loaded_once_however_often_it_is_loaded(self, routing):
        units = load_demo_units()
        assert await load_units_into(routing, units) == len(units)
        async with routing.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(Unit))).scalar_one() == len(units)


class TestTheInbox:
    async def test_a_unit_sees_its_assignment_with_the_details_it_needs(self, routing):
        event = reported(category="sexual_abuse", urgency="high")
        await route(routing, event)
        answer = await inbox(routing, "25349.police")
        assert answer.status_code == 200
        item = mine(answer, event.incident_id)
        assert item["role"] == "lead" and item["status"] == "pending" and item["overdue"] is False
        assert item["rule"] == "category.sexual_abuse.lead" and item["reason"] and item["rules_version"] == "2025.1"
        assert datetime.fromisoformat(item["due_at"]) == event.facts.received_at + timedelta(hours=4)
        details = item["incident"]
        assert details["category"] == "sexual_abuse" and details["hamlet"] == "25349.hamlet.ap-2"
        assert details["description"] == event.case.description
        assert details["children"][0]["full_name"] == event.case.children[0].full_name
        assert details["children"][0]["school"] == SCHOOL
        assert details["reporter"]["phone"] == event.case.reporter.phone
        assert answer.json()["next_cursor"] is None

    async def test_an_anonymous_reporter_is_shown_without_name_or_phone(self, routing):
        event = reported(anonymous=True)
        await route(routing, event)
        reporter = mine(await inbox(routing, "25349.police"), event.incident_id)["incident"]["reporter"]
        assert reporter == {"name": None, "phone": None, "relation": "neighbour", "anonymous": True}

    async def test_another_unit_gets_404_and_no_data(self, routing):
        event = reported()
        await route(routing, event)
        for token in ("25349.justice", "25339.cp_officer", "district"):
            answer = await inbox(routing, "25349.police", token)
            assert answer.status_code == 404 and event.case.description not in answer.text

    async def test_an_admin_may_read_any_inbox(self, routing):
        event = reported()
        await route(routing, event)
        assert mine(await inbox(routing, "25349.police", "admin"), event.incident_id)["role"] == "lead"

    async def test_no_token_is_401(self, routing):
        async with client(routing) as http:
            assert (await http.get("/v1/agencies/25349.police/assignments")).status_code == 401

    async def test_overdue_comes_first_then_urgency_then_due_time(self, routing):
        now = datetime.now(UTC)
        late = reported(category="injury", urgency="low", received_at=now - timedelta(days=4))
        emergency = reported(category="injury", urgency="emergency")
        medium = reported(category="injury", urgency="medium", received_at=now - timedelta(hours=1))
        medium_newer = reported(category="injury", urgency="medium")
        for event in (medium_newer, late, medium, emergency):
            await route(routing, event)
        items = (await inbox(routing, "25349.health")).json()["items"]
        assert [i["incident_id"] for i in items] == [e.incident_id for e in (late, emergency, medium, medium_newer)]
        assert [i["overdue"] for i in items] == [True, False, False, False]

    async def test_pages_follow_the_cursor_without_gaps_or_repeats(self, routing):
        events = [reported(category="drowning", urgency=u) for u in ("low", "high", "medium", "emergency", "low", "high", "medium")]
        for event in events:
            await route(routing, event)
        everything = [i["assignment_id"] for i in (await inbox(routing, "25349.health", limit=500)).json()["items"]]
        paged, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await inbox(routing, "25349.health", **params)).json()
            assert len(page["items"]) <= 2
            paged += [i["assignment_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == everything and len(everything) == len(events)

    async def test_the_status_filter_and_limits_are_checked(self, routing):
        await route(routing, reported())
        assert len((await inbox(routing, "25349.police", status="pending")).json()["items"]) == 1
        assert (await inbox(routing, "25349.police", status="done")).json()["items"] == []
        assert (await inbox(routing, "25349.police", status="lost")).status_code == 422
        assert (await inbox(routing, "25349.police", limit=501)).status_code == 422
        assert (await inbox(routing, "25349.police", limit=0)).status_code == 422
        assert (await inbox(routing, "25349.police", cursor="not-a-cursor")).status_code == 422

    async def test_filters_by_status_overdue_and_urgency_keep_the_order_and_the_pages(self, routing):
        now = datetime.now(UTC)
        late = reported(category="injury", urgency="low", received_at=now - timedelta(days=4))
        others = [reported(category="injury", urgency=u) for u in ("emergency", "high", "medium", "low", "emergency")]
        for event in (late, *others):
            await route(routing, event)
        items = (await inbox(routing, "25349.health")).json()["items"]
        acked = items[1]["assignment_id"]
        await post(routing, f"/v1/agencies/25349.health/assignments/{acked}/acknowledge", "25349.health")

        def ids(answer) -> list[str]:
            assert answer.status_code == 200, answer.text
            return [i["assignment_id"] for i in answer.json()["items"]]

        everything = ids(await inbox(routing, "25349.health"))
        assert ids(await inbox(routing, "25349.health", status=["acknowledged"])) == [acked]
        both = ids(await inbox(routing, "25349.health", status=["pending", "acknowledged"]))
        assert both == everything
        assert ids(await inbox(routing, "25349.health", overdue="true")) == [everything[0]]
        assert ids(await inbox(routing, "25349.health", overdue="false")) == everything[1:]
        urgent = (await inbox(routing, "25349.health", urgency=["emergency", "high"])).json()["items"]
        assert [i["incident"]["urgency"] for i in urgent] == ["emergency", "emergency", "high"]
        pending_low = (await inbox(routing, "25349.health", status="pending", urgency="low")).json()["items"]
        assert [i["overdue"] for i in pending_low] == [True, False]
        paged, cursor = [], None
        while True:
            params = {"status": ["pending"], "urgency": ["emergency", "medium", "low"], "limit": 1, **({"cursor": cursor} if cursor else {})}
            page = (await inbox(routing, "25349.health", **params)).json()
            paged += [i["assignment_id"] for i in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert paged == [i for i in everything if i != acked and i in ids(await inbox(routing, "25349.health", urgency=["emergency", "medium", "low"]))]
        assert (await inbox(routing, "25349.health", urgency="urgent")).status_code == 422
        assert (await inbox(routing, "25349.health", overdue="maybe")).status_code == 422

    async def test_a_tampered_cursor_is_422_not_an_error(self, routing):
        position = {"as_of": "2025-03-02T08:00:00+00:00", "overdue": 1, "urgency": 0, "due_at": "2025-03-02T09:00:00+00:00", "id": "a"}
        assert (await inbox(routing, "25349.police", cursor=encode_cursor(position))).status_code == 200
        for bad in ({"as_of": "2025-03-02T08:00:00"}, {"overdue": "x"}, {"due_at": 5}, {"id": None, "extra": 1}):
            answer = await inbox(routing, "25349.police", cursor=encode_cursor({**position, **bad}))
            assert answer.status_code == 422, bad


class TestTheLifecycle:
    async def lead_of(self, routing, **kwargs) -> tuple[str, str]:
        event = reported(**kwargs)
        await route(routing, event)
        item = mine(await inbox(routing, "25349.police"), event.incident_id)
        return event.incident_id, item["assignment_id"]

    async def test_acknowledge_then_work_then_done_each_publishing_an_event(self, routing):
        _, assignment = await self.lead_of(routing)
        base = f"/v1/agencies/25349.police/assignments/{assignment}"
        ack = await post(routing, f"{base}/acknowledge", "25349.police")
        assert ack.status_code == 200 and ack.json()["status"] == "acknowledged" and ack.json()["acknowledged_at"]
        working = await post(routing, f"{base}/status", "25349.police", {"status": "in_progress"})
        assert working.status_code == 200 and working.json()["status"] == "in_progress" and working.json()["handoff"] is None
        done = await post(routing, f"{base}/status", "25349.police", {"status": "done", "note": "child safe with her aunt"})
        assert done.status_code == 200 and done.json()["status"] == "done" and done.json()["note"] == "child safe with her aunt"
        [acked] = await outbox(routing, "assignment.acknowledged")
        assert acked["payload"]["assignment_id"] == assignment and acked["payload"]["by"] == "25349.police"
        changed = await outbox(routing, "assignment.status_changed")
        assert [(c["payload"]["from_status"], c["payload"]["to_status"]) for c in changed] == [
            ("acknowledged", "in_progress"),
            ("in_progress", "done"),
        ]
        assert "child safe" not in json.dumps(changed)  # the note stays in routing
        async with routing.sessionmaker() as session:
            history = (
                await session.execute(
                    select(AssignmentChange.from_status, AssignmentChange.to_status, AssignmentChange.principal)
                    .where(AssignmentChange.assignment_id == assignment)
                    .order_by(AssignmentChange.id)
                )
            ).all()
        assert [tuple(h) for h in history] == [
            (None, "pending", "routing"),
            ("pending", "acknowledged", "25349.police"),
            ("acknowledged", "in_progress", "25349.police"),
            ("in_progress", "done", "25349.police"),
        ]

    async def test_an_illegal_move_is_409_naming_the_allowed_ones(self, routing):
        _, assignment = await self.lead_of(routing)
        base = f"/v1/agencies/25349.police/assignments/{assignment}"
        early = await post(routing, f"{base}/status", "25349.police", {"status": "done"})
        assert early.status_code == 409
        assert early.json()["detail"]["allowed"] == ["acknowledged", "declined"] and early.json()["detail"]["message"]
        await post(routing, f"{base}/acknowledge", "25349.police")
        twice = await post(routing, f"{base}/acknowledge", "25349.police")
        assert twice.status_code == 409 and twice.json()["detail"]["allowed"] == ["in_progress", "declined"]
        assert len(await outbox(routing, "assignment.acknowledged")) == 1

    async def test_declining_without_a_note_is_422(self, routing):
        _, assignment = await self.lead_of(routing)
        answer = await post(routing, f"/v1/agencies/25349.police/assignments/{assignment}/status", "25349.police", {"status": "declined"})
        assert answer.status_code == 422 and "note" in json.dumps(answer.json()["detail"])

    async def test_a_declined_lead_is_handed_to_the_cp_officer(self, routing):
        incident_id, assignment = await self.lead_of(routing, category="sexual_abuse", urgency="medium")
        answer = await post(
            routing,
            f"/v1/agencies/25349.police/assignments/{assignment}/status",
            "25349.police",
            {"status": "declined", "note": "not a police matter: family dispute"},
        )
        assert answer.status_code == 200 and answer.json()["status"] == "declined"
        handoff = answer.json()["handoff"]
        assert handoff["unit_id"] == "25349.cp_officer"
        cp_items = [i for i in (await inbox(routing, "25349.cp_officer")).json()["items"] if i["incident_id"] == incident_id]
        assert {(i["role"], i["origin"]) for i in cp_items} == {("support", "routing"), ("lead", f"decline:{assignment}")}
        [lead] = [i for i in cp_items if i["role"] == "lead"]
        assert lead["assignment_id"] == handoff["assignment_id"] and lead["status"] == "pending"
        assert lead["rules_version"] == "handoff" and "25349.police" in lead["reason"]
        assert datetime.fromisoformat(lead["due_at"]) > datetime.now(UTC) + timedelta(hours=23)
        [declined] = await outbox(routing, "assignment.status_changed")
        assert declined["payload"]["to_status"] == "declined" and declined["payload"]["has_note"] is True
        handoffs = [r for r in await outbox(routing, "incident.routed") if r["payload"]["rules_version"] == "handoff"]
        [routed] = handoffs
        assert [a["assignment_id"] for a in routed["payload"]["assignments"]] == [handoff["assignment_id"]]
        assert "family dispute" not in json.dumps(routed)

    async def test_a_declined_support_is_not_handed_off(self, routing):
        event = reported(category="sexual_abuse")
        await route(routing, event)
        item = mine(await inbox(routing, "25349.health"), event.incident_id)
        answer = await post(
            routing, f"/v1/agencies/25349.health/assignments/{item['assignment_id']}/status", "25349.health",
            {"status": "declined", "note": "no medical need"},
        )
        assert answer.status_code == 200 and answer.json()["handoff"] is None
        assert [r for r in await outbox(routing, "incident.routed") if r["payload"]["rules_version"] == "handoff"] == []

    async def test_another_unit_cannot_touch_the_assignment(self, routing):
        _, assignment = await self.lead_of(routing)
        as_other = await post(routing, f"/v1/agencies/25349.police/assignments/{assignment}/acknowledge", "25349.justice")
        wrong_inbox = await post(routing, f"/v1/agencies/25349.justice/assignments/{assignment}/acknowledge", "25349.justice")
        assert as_other.status_code == 404 and wrong_inbox.status_code == 404
        assert await outbox(routing, "assignment.acknowledged") == []


class TestTheUnitRegistry:
    async def test_the_cp_officer_and_admins_see_the_communes_units(self, routing):
        for token in ("25349.cp_officer", "admin"):
            async with client(routing) as http:
                answer = await http.get("/v1/units", params={"commune": "25349"}, headers=bearer(routing.tokens[token]))
            assert answer.status_code == 200
            units = {u["id"]: u for u in answer.json()["items"]}
            assert units["25349.police"]["type"] == "police" and units[SCHOOL]["type"] == "school"
            assert all(u["id"].startswith("25349.") for u in units.values())

    async def test_others_are_refused(self, routing):
        for token in ("25349.police", "25339.cp_officer", "district"):
            async with client(routing) as http:
                answer = await http.get("/v1/units", params={"commune": "25349"}, headers=bearer(routing.tokens[token]))
            assert answer.status_code == 403

    async def test_the_registry_pages_by_cursor(self, routing):
        seen, cursor = [], None
        async with client(routing) as http:
            while True:
                params = {"commune": "25349", "limit": 3, **({"cursor": cursor} if cursor else {})}
                page = (await http.get("/v1/units", params=params, headers=bearer(routing.tokens["admin"]))).json()
                seen += [u["id"] for u in page["items"]]
                if not (cursor := page["next_cursor"]):
                    break
        assert seen == sorted(seen) and len(seen) == len(set(seen)) and "25349.cp_officer" in seen
