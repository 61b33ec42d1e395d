"""The agencies' workflow end to end: every inbox works its assignments, a declined lead comes back, an unacknowledged
emergency escalates exactly once across crashes of routing, and the closed case's timeline tells it all in order."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import datetime

import pytest

from shared.enums import Category
from tests.e2e.support import CHAIRMAN, CP_OFFICER, HAMLET, expected_units, inbox, post
from tests.harness import ROOT, SERVICES
from tests.support import eventually

WATCH_INTERVAL = 0.3
# Routing's clock a little over an hour ahead: every emergency (1 h to acknowledge) posted so far is overdue.
LATE = {"BAOVE_ROUTING_CLOCK_OFFSET_SECONDS": "3700", "BAOVE_ROUTING_WATCH_INTERVAL_SECONDS": str(WATCH_INTERVAL)}
ESCALATION = "escalation.overdue"
CLOSE = {"risk_level": "medium", "outcome": "Gia đình đã được hỗ trợ; trẻ an toàn (family supported, child safe)"}


def assignments_of(system, unit: str, incident_id: str, **params) -> list[dict]:
    return [a for a in inbox(system, unit, **params) if a["incident_id"] == incident_id]


def act(system, unit: str, assignment_id: str, action: str, body: dict | None = None):
    with system.http("routing", unit) as http:
        return http.post(f"/v1/agencies/{unit}/assignments/{assignment_id}/{action}", json=body)


def case_action(system, as_unit: str, incident_id: str, action: str, body: dict):
    with system.http("routing", as_unit) as http:
        return http.post(f"/v1/incidents/{incident_id}/{action}", json=body)


def work_through(system, unit: str, assignment_id: str) -> None:
    """acknowledge -> in_progress -> done, checking each answer and that an illegal move is refused."""
    acked = act(system, unit, assignment_id, "acknowledge")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged", acked.text
    again = act(system, unit, assignment_id, "acknowledge")
    assert again.status_code == 409 and again.json()["detail"]["allowed"] == ["in_progress", "declined"], again.text
    working = act(system, unit, assignment_id, "status", {"status": "in_progress"})
    assert working.status_code == 200 and working.json()["status"] == "in_progress", working.text
    done = act(system, unit, assignment_id, "status", {"status": "done", "note": "đã xử lý (handled)"})
    assert done.status_code == 200 and done.json()["status"] == "done", done.text


def timeline(system, incident_id: str, as_unit: str = CP_OFFICER) -> list[dict]:
    with system.http("intake", as_unit) as http:
        answer = http.get(f"/v1/incidents/{incident_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["timeline"]


class TestEveryInboxWorksItsAssignments:
    def test_an_incident_of_each_category_goes_to_done_in_every_inbox_it_reaches(self, system):
        posted = {category.value: post(system, category=category.value, urgency="high", hamlet=HAMLET) for category in Category}
        for category, incident_id in posted.items():
            units = expected_units(category)
            routed = eventually(
                lambda: {u: assignments_of(system, u, incident_id) for u in units} if all(assignments_of(system, u, incident_id) for u in units) else None,
                what=f"{category} in every inbox",
            )
            for unit, [assignment] in routed.items():
                assert assignment["role"] == units[unit] and assignment["status"] == "pending"
                work_through(system, unit, assignment["assignment_id"])
        for category, incident_id in posted.items():
            for unit in expected_units(category):
                [done] = assignments_of(system, unit, incident_id)
                assert done["status"] == "done" and done["acknowledged_at"], (category, unit)
                assert assignments_of(system, unit, incident_id, status=["pending", "acknowledged", "in_progress"]) == []

    def test_a_declined_lead_comes_back_to_the_cp_officer_who_takes_it_to_done(self, system):
        incident_id = post(system, category="online_abuse", urgency="medium", hamlet=HAMLET)
        [lead] = eventually(lambda: assignments_of(system, "25349.police", incident_id), what="the police lead")
        no_note = act(system, "25349.police", lead["assignment_id"], "status", {"status": "declined"})
        assert no_note.status_code == 422
        declined = act(system, "25349.police", lead["assignment_id"], "status", {"status": "declined", "note": "không thuộc thẩm quyền (not ours)"})
        assert declined.status_code == 200 and declined.json()["handoff"]["unit_id"] == CP_OFFICER
        handed = [a for a in assignments_of(system, CP_OFFICER, incident_id) if a["origin"] == f"decline:{lead['assignment_id']}"]
        assert [(a["role"], a["status"], a["rules_version"]) for a in handed] == [("lead", "pending", "handoff")]
        assert handed[0]["assignment_id"] == declined.json()["handoff"]["assignment_id"]
        work_through(system, CP_OFFICER, handed[0]["assignment_id"])
        kinds = eventually(
            lambda: [e["kind"] for e in timeline(system, incident_id)] if "assignment.done" in [e["kind"] for e in timeline(system, incident_id)] else None,
            what="the handoff on the timeline",
        )
        assert kinds.index("assignment.declined") < [i for i, k in enumerate(kinds) if k == "routed"][1] < kinds.index("assignment.done")


@pytest.fixture(scope="module")
def escalated(system) -> list[str]:
    """Emergencies nobody acknowledges; routing is SIGKILLed at several points while its moved clock makes them overdue."""
    incidents = [post(system, category="drowning", urgency="emergency", hamlet=HAMLET) for _ in range(3)]
    for incident_id in incidents:
        eventually(lambda: assignments_of(system, CHAIRMAN, incident_id), what="the emergency in the chairman's inbox")
    system.kill("routing")
    # The watcher looks at start: kills before, during and after its first ticks.
    system.overrides["routing"] = LATE
    for delay in (0.5, 1.0, 1.5, 2.0, 3.0):
        system.start("routing")
        time.sleep(delay)
        system.kill("routing")
    system.restart("routing", **LATE)

    def all_escalated() -> bool:
        return all(
            any(a["rule"] == ESCALATION for a in assignments_of(system, unit, incident_id))
            for incident_id in incidents
            for unit in (CP_OFFICER, CHAIRMAN)
        )

    eventually(all_escalated, what="the escalations")
    system.kill("routing")
    system.restart("routing", **LATE)
    time.sleep(5 * WATCH_INTERVAL)
    return incidents


class TestAnUnacknowledgedEmergency:
    def test_it_escalates_to_the_cp_officer_and_the_chairman_exactly_once_despite_the_kills(self, system, escalated):
        for incident_id in escalated:
            for unit in (CP_OFFICER, CHAIRMAN):
                mine = assignments_of(system, unit, incident_id)
                [escalation] = [a for a in mine if a["rule"] == ESCALATION]
                assert (escalation["role"], escalation["status"], escalation["rules_version"]) == ("support", "pending", "escalation")
                [routine] = [a for a in mine if a["origin"] == "routing"]
                assert routine["overdue"] is True and routine["overdue_at"]
                assert escalation["origin"].startswith("escalation:")
            overdue_only = assignments_of(system, "25349.health", incident_id, overdue="true")
            assert [a["role"] for a in overdue_only] == ["lead"]

    def test_the_timeline_tells_of_it_once(self, system, escalated):
        for incident_id in escalated:
            def told() -> list[dict] | None:
                entries = timeline(system, incident_id)
                return entries if [e["kind"] for e in entries].count("assignment.overdue") == len(expected_units("drowning")) + 1 else None

            entries = eventually(told, what="every overdue assignment on the timeline")
            kinds = [e["kind"] for e in entries]
            assert kinds.count("escalated") == 1
            [escalation] = [e for e in entries if e["kind"] == "escalated"]
            assert escalation["detail"]["to"] == [CP_OFFICER, CHAIRMAN] and escalation["principal"] == "routing"
            assert [e["detail"]["rules_version"] for e in entries if e["kind"] == "routed"] == ["2025.1", "escalation"]


class TestClosingTheCase:
    def test_the_cp_officer_closes_it_once_everything_is_done_or_declined_and_the_timeline_lists_every_step(self, system, escalated):
        incident_id = escalated[0]
        units = [*expected_units("drowning"), CHAIRMAN]
        held = {unit: assignments_of(system, unit, incident_id) for unit in units}
        assert sum(len(a) for a in held.values()) == len(units) + 2  # the routing decision and two escalations

        blocked = case_action(system, CP_OFFICER, incident_id, "close", CLOSE)
        assert blocked.status_code == 409 and len(blocked.json()["detail"]["open_assignments"]) == len(units) + 2

        for unit, assignments in held.items():
            for assignment in assignments:
                if unit == HAMLET:
                    declined = act(system, unit, assignment["assignment_id"], "status", {"status": "declined", "note": "gia đình đã chuyển đi (family moved)"})
                    assert declined.status_code == 200 and declined.json()["handoff"] is None
                else:
                    work_through(system, unit, assignment["assignment_id"])
        as_police = case_action(system, "25349.police", incident_id, "close", CLOSE)
        assert as_police.status_code == 403
        closed = case_action(system, CP_OFFICER, incident_id, "close", CLOSE)
        assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text

        def closed_timeline() -> list[dict] | None:
            entries = timeline(system, incident_id)
            return entries if entries[-1]["kind"] == "closed" else None

        entries = eventually(closed_timeline, what="the closing on the timeline")
        kinds = [e["kind"] for e in entries]
        times = [datetime.fromisoformat(e["at"]) for e in entries]
        assert times == sorted(times)

        assert (kinds[0], entries[0]["principal"]) == ("reported", "25349.police")
        decision = entries[1]
        assert (decision["kind"], decision["principal"], decision["detail"]["rules_version"]) == ("routed", "routing", "2025.1")
        assert "category.drowning.lead" in decision["detail"]["rules"]
        assert {a["unit_id"] for a in decision["detail"]["assignments"]} == set(units)
        overdue = [i for i, k in enumerate(kinds) if k == "assignment.overdue"]
        assert len(overdue) == len(units) and kinds[overdue[-1] + 1 : overdue[-1] + 3] == ["escalated", "routed"]
        assert entries[overdue[-1] + 2]["detail"]["rules_version"] == "escalation"

        changes = [e for e in entries if e["kind"] in ("assignment.acknowledged", "assignment.in_progress", "assignment.done", "assignment.declined")]
        worked = len(units) - 1 + 2  # every assignment but the hamlet's, and the two escalations
        assert len(changes) == 3 * worked + 1
        assert all(e["principal"] == e["detail"]["unit_id"] for e in changes)
        assert min(kinds.index(e["kind"]) for e in changes) > overdue[-1] + 2

        last = entries[-1]
        assert (last["principal"], last["detail"]["risk_level"], last["detail"]["outcome"]) == (CP_OFFICER, "medium", CLOSE["outcome"])
        with system.http("intake", CP_OFFICER) as http:
            assert http.get(f"/v1/incidents/{incident_id}").json()["status"] == "closed"

    def test_reopening_is_recorded_and_gives_the_cp_officer_the_lead(self, system, escalated):
        incident_id = escalated[0]
        reopened = case_action(system, CP_OFFICER, incident_id, "reopen", {"reason": "trẻ lại bị đánh (hurt again)"})
        assert reopened.status_code == 200 and reopened.json()["lead"]["unit_id"] == CP_OFFICER, reopened.text

        def reopened_timeline() -> list[dict] | None:
            entries = timeline(system, incident_id)
            return entries if entries[-1]["kind"] == "routed" and entries[-2]["kind"] == "reopened" else None

        entries = eventually(reopened_timeline, what="the reopening on the timeline")
        assert entries[-2]["principal"] == CP_OFFICER and entries[-1]["detail"]["rules_version"] == "reopen"
        [lead] = [a for a in assignments_of(system, CP_OFFICER, incident_id) if a["origin"].startswith("reopen:")]
        assert (lead["role"], lead["status"]) == ("lead", "pending")


class TestAnOfficerChangesTheRules:
    def test_a_loaded_rule_set_routes_the_next_incident_and_a_bad_one_is_refused_with_its_line(self, system, tmp_path):
        shown = system.cli("rules", "show")
        assert shown.startswith("# rule set 2025.1: active") and 'version: "2025.1"' in shown
        table = shown.split("\n", 1)[1].replace('version: "2025.1"', 'version: "2025.1-b"')
        table = table.replace("  injury:\n    lead: health", "  injury:\n    lead: police")
        path = tmp_path / "rules.yaml"
        path.write_text(table, encoding="utf-8")
        assert "rule set 2025.1-b is active (was 2025.1)" in system.cli("rules", "load", str(path))

        incident_id = post(system, category="injury", urgency="low", hamlet=None)
        [lead] = eventually(lambda: assignments_of(system, "25349.police", incident_id), what="the injury in the police inbox")
        assert (lead["role"], lead["rule"], lead["rules_version"]) == ("lead", "category.injury.lead", "2025.1-b")

        path.write_text(table.replace('"2025.1-b"', '"2025.1-c"').replace("    lead: police", "    lead: polis", 1), encoding="utf-8")
        refused = system.run_cli("rules", "load", str(path))
        assert refused.returncode == 2 and "unknown unit type 'polis'" in refused.stderr and f"{path}:" in refused.stderr
        assert system.cli("rules", "show").startswith("# rule set 2025.1-b: active")


class TestTheRoutingMetrics:
    def test_they_count_overdue_assignments_acknowledgements_and_decisions(self, system, escalated):
        with system.http("routing") as http:
            lines = dict(line.rsplit(" ", 1) for line in http.get("/metrics").text.splitlines() if not line.startswith("#"))
        # The two emergencies left untouched: their routine assignments are pending past due.
        for unit_type in ("health", "police", "cp_officer", "hamlet", "chairman"):
            assert float(lines[f'baove_assignments_overdue{{unit_type="{unit_type}"}}']) == len(escalated) - 1
        assert float(lines['baove_assignment_ack_seconds_count{unit_type="health"}']) >= 1
        assert float(lines["baove_routing_decision_seconds_count"]) >= 1
        assert float(lines['baove_assignments_created_total{role="lead",unit_type="police"}']) >= 1


class TestTheEventContract:
    def test_each_service_publishes_only_the_events_the_asyncapi_document_says_it_sends(self, system, escalated):
        document = json.loads((ROOT / "docs" / "contracts" / "asyncapi.json").read_text(encoding="utf-8"))
        sender = {key.split(".send.")[1]: key.split(".send.")[0] for key, op in document["operations"].items() if op["action"] == "send"}
        published = {}
        for service in SERVICES:
            with closing(sqlite3.connect(f"file:{system.data_dir / f'{service}.db'}?mode=ro", uri=True)) as db:
                published[service] = {row[0] for row in db.execute("SELECT DISTINCT event_type FROM outbox_message")}
        assert {"incident.reported", "incident.recorded"} <= published["intake"]
        assert published["intake"] <= {"incident.reported", "incident.recorded", "incident.possible_duplicate"}
        assert {"incident.routed", "assignment.acknowledged", "assignment.status_changed", "incident.escalated"} <= published["routing"]
        assert {(e, s) for s, events in published.items() for e in events} <= {(e, s) for e, s in sender.items()}
