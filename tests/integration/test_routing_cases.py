"""Closing and reopening a case on routing, over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.routing.models import IncidentChange, RoutedIncident, outbox_message
from tests.routing_support import reported, route, routing_runtime
from tests.support import bearer, client, issue_token

CP_OFFICER = "25349.cp_officer"
TOKENS = (CP_OFFICER, "25349.health", "25349.police", "25339.cp_officer")


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    runtime.tokens = {unit: await issue_token(runtime, "unit", unit) for unit in TOKENS}
    runtime.tokens["admin"] = await issue_token(runtime, "admin", "admin")
    runtime.tokens["district"] = await issue_token(runtime, "district", "694")
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def post(runtime, path: str, token: str, body: dict | None = None):
    async with client(runtime) as http:
        return await http.post(path, json=body, headers=bearer(runtime.tokens[token]))


async def inbox(runtime, unit: str) -> list[dict]:
    async with client(runtime) as http:
        answer = await http.get(f"/v1/agencies/{unit}/assignments", headers=bearer(runtime.tokens[unit]))
    return answer.json()["items"]


async def outbox(runtime, event_type: str) -> list[dict]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(outbox_message.c.body).where(outbox_message.c.event_type == event_type).order_by(outbox_message.c.id))
        return [json.loads(body) for body in rows.scalars()]


async def finish(runtime, unit: str, incident_id: str, *, decline: bool = False) -> None:
    """Move the unit's open assignments of the incident to done (or declined)."""
    for item in await inbox(runtime, unit):
        if item["incident_id"] != incident_id or item["status"] in ("done", "declined"):
            continue
        base = f"/v1/agencies/{unit}/assignments/{item['assignment_id']}"
        if decline:
            assert (await post(runtime, f"{base}/status", unit, {"status": "declined", "note": "not ours"})).status_code == 200
            continue
        if item["status"] == "pending":
            assert (await post(runtime, f"{base}/acknowledge", unit)).status_code == 200
        if item["status"] in ("pending", "acknowledged"):
            assert (await post(runtime, f"{base}/status", unit, {"status": "in_progress"})).status_code == 200
        assert (await post(runtime, f"{base}/status", unit, {"status": "done", "note": "ok"})).status_code == 200


async def injury(runtime) -> str:
    """An incident routed to health (lead) and the cp_officer (support)."""
    event = reported(category="injury", urgency="medium", hamlet=None)
    await route(runtime, event)
    return event.incident_id


CLOSE = {"risk_level": "low", "outcome": "child treated and safe at home"}


class TestClosing:
    async def test_a_case_with_open_assignments_is_409_naming_them(self, routing):
        incident_id = await injury(routing)
        await finish(routing, "25349.health", incident_id)
        answer = await post(routing, f"/v1/incidents/{incident_id}/close", CP_OFFICER, CLOSE)
        assert answer.status_code == 409
        detail = answer.json()["detail"]
        assert [(o["unit_id"], o["status"]) for o in detail["open_assignments"]] == [(CP_OFFICER, "pending")]
        assert CP_OFFICER in detail["message"] and detail["current"] == "open"
        assert await outbox(routing, "incident.closed") == [] and await outbox(routing, "incident.closure_recorded") == []
        async with routing.sessionmaker() as session:
            assert (await session.get(RoutedIncident, incident_id)).status == "open"

    async def test_once_every_assignment_is_done_or_declined_the_cp_officer_closes_it(self, routing):
        incident_id = await injury(routing)
        await finish(routing, "25349.health", incident_id)
        await finish(routing, CP_OFFICER, incident_id, decline=True)
        answer = await post(routing, f"/v1/incidents/{incident_id}/close", CP_OFFICER, CLOSE)
        assert answer.status_code == 200, answer.text
        state = answer.json()
        assert state["status"] == "closed" and state["risk_level"] == "low" and state["closed_at"]
        [closed] = await outbox(routing, "incident.closed")
        assert closed["payload"] == {
            "incident_id": incident_id, "commune_code": "25349", "risk_level": "low",
            "outcome": CLOSE["outcome"], "by": CP_OFFICER, "at": closed["payload"]["at"],
        }
        # Its facts alone, for reporting, in the same transaction: no outcome, no principal.
        [facts] = await outbox(routing, "incident.closure_recorded")
        assert facts["payload"] == {"incident_id": incident_id, "commune_code": "25349", "risk_level": "low", "at": closed["payload"]["at"]}
        assert facts["correlation_id"] == incident_id and facts["producer"] == "routing" and facts["emitted_at"] == closed["emitted_at"]
        again = await post(routing, f"/v1/incidents/{incident_id}/close", CP_OFFICER, CLOSE)
        assert again.status_code == 409 and again.json()["detail"]["allowed"] == ["reopen"]

    async def test_an_admin_may_close_it_too(self, routing):
        incident_id = await injury(routing)
        await finish(routing, "25349.health", incident_id)
        await finish(routing, CP_OFFICER, incident_id)
        assert (await post(routing, f"/v1/incidents/{incident_id}/close", "admin", {**CLOSE, "risk_level": "high"})).status_code == 200

    async def test_others_are_refused_and_learn_nothing(self, routing):
        incident_id = await injury(routing)
        assert (await post(routing, f"/v1/incidents/{incident_id}/close", "25349.health", CLOSE)).status_code == 403
        for token in ("25339.cp_officer", "district"):
            assert (await post(routing, f"/v1/incidents/{incident_id}/close", token, CLOSE)).status_code == 404
        assert (await post(routing, "/v1/incidents/no-such-incident/close", CP_OFFICER, CLOSE)).status_code == 404
        async with client(routing) as http:
            assert (await http.post(f"/v1/incidents/{incident_id}/close", json=CLOSE)).status_code == 401

    async def test_the_risk_level_and_outcome_are_checked(self, routing):
        incident_id = await injury(routing)
        for body in ({"risk_level": "extreme", "outcome": "x"}, {"risk_level": "low", "outcome": "  "}, {"risk_level": "low"}):
            answer = await post(routing, f"/v1/incidents/{incident_id}/close", CP_OFFICER, body)
            assert answer.status_code == 422, body


class TestReopening:
    async def closed_case(self, routing) -> str:
        incident_id = await injury(routing)
        await finish(routing, "25349.health", incident_id)
        await finish(routing, CP_OFFICER, incident_id)
        assert (await post(routing, f"/v1/incidents/{incident_id}/close", CP_OFFICER, CLOSE)).status_code == 200
        return incident_id

    async def test_a_reopened_case_goes_back_to_the_cp_officer_as_lead_and_is_recorded(self, routing):
        incident_id = await self.closed_case(routing)
        answer = await post(routing, f"/v1/incidents/{incident_id}/reopen", CP_OFFICER, {"reason": "the child was hurt again"})
        assert answer.status_code == 200, answer.text
        state = answer.json()
        assert state["status"] == "open" and state["closed_at"] is None and state["lead"]["unit_id"] == CP_OFFICER
        [lead] = [i for i in await inbox(routing, CP_OFFICER) if i["assignment_id"] == state["lead"]["assignment_id"]]
        assert (lead["role"], lead["status"], lead["rule"], lead["rules_version"]) == ("lead", "pending", "reopen", "reopen")
        assert lead["origin"].startswith("reopen:")
        [reopened] = await outbox(routing, "incident.reopened")
        assert reopened["payload"]["by"] == CP_OFFICER and "hurt again" not in json.dumps(reopened)
        told = [r for r in await outbox(routing, "incident.routed") if r["payload"]["rules_version"] == "reopen"]
        assert [a["assignment_id"] for a in told[0]["payload"]["assignments"]] == [lead["assignment_id"]]
        assert "hurt again" not in json.dumps(told)

    async def test_it_closes_again_only_once_the_new_lead_is_done_and_the_history_keeps_every_step(self, routing):
        incident_id = await self.closed_case(routing)
        await post(routing, f"/v1/incidents/{incident_id}/reopen", "admin", {"reason": "new report from the school"})
        blocked = await post(routing, f"/v1/incidents/{incident_id}/close", CP_OFFICER, CLOSE)
        assert blocked.status_code == 409 and [o["unit_id"] for o in blocked.json()["detail"]["open_assignments"]] == [CP_OFFICER]
        await finish(routing, CP_OFFICER, incident_id)
        assert (await post(routing, f"/v1/incidents/{incident_id}/close", CP_OFFICER, {**CLOSE, "risk_level": "medium"})).status_code == 200
        async with routing.sessionmaker() as session:
            history = (
                await session.execute(
                    select(IncidentChange.action, IncidentChange.principal, IncidentChange.risk_level, IncidentChange.note)
                    .where(IncidentChange.incident_id == incident_id)
                    .order_by(IncidentChange.id)
                )
            ).all()
        assert [tuple(h) for h in history] == [
            ("closed", CP_OFFICER, "low", CLOSE["outcome"]),
            ("reopened", "admin", None, "new report from the school"),
            ("closed", CP_OFFICER, "medium", CLOSE["outcome"]),
        ]
        assert len(await outbox(routing, "incident.closed")) == 2

    async def test_an_open_case_cannot_be_reopened(self, routing):
        incident_id = await injury(routing)
        answer = await post(routing, f"/v1/incidents/{incident_id}/reopen", CP_OFFICER, {"reason": "why not"})
        assert answer.status_code == 409 and answer.json()["detail"]["allowed"] == ["close"]

    async def test_a_reason_is_required_and_others_are_refused(self, routing):
        incident_id = await self.closed_case(routing)
        assert (await post(routing, f"/v1/incidents/{incident_id}/reopen", CP_OFFICER, {})).status_code == 422
        assert (await post(routing, f"/v1/incidents/{incident_id}/reopen", "25349.police", {"reason": "x"})).status_code == 403
        assert (await post(routing, f"/v1/incidents/{incident_id}/reopen", "25339.cp_officer", {"reason": "x"})).status_code == 404
