"""The whole Decree 56/2017 process on routing, over a real database (SQLite and PostgreSQL): an emergency case taken
through every step (Mẫu 02-06, the chairman's care and approval decisions), its plan's tasks handed to two units, a
review at medium risk sending it back to planning, a second at low, and closing; the plan's 5-working-day deadline
and the temporary care's end escalated once; bad forms refused with the field named; erasure blanking the free text."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from services.routing.cases import handle_linked
from services.routing.deadlines import DeadlineWatcher
from services.routing.erasure import handle_erased
from services.routing.models import Assignment, RoutedIncident, outbox_message
from shared.events import IncidentErased, IncidentLinked
from shared.workdays import VN
from tests.routing_support import MovedClock, close_runtime, reported, route, routing_runtime
from tests.support import bearer, client, issue_token

CP, CHAIR, HEALTH, SCHOOL, POLICE = "25349.cp_officer", "25349.chairman", "25349.health", "25349.school.th-minh-tam-a", "25349.police"
HAMLET = "25349.hamlet.ap-2"
ROUTED = (CP, CHAIR, POLICE, HAMLET, HEALTH, SCHOOL)  # where the routing decision sends an emergency of this kind


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    runtime.tokens = {unit: await issue_token(runtime, "unit", unit) for unit in ROUTED}
    yield runtime
    await close_runtime(runtime)


async def post(runtime, path: str, unit: str, body: dict | None = None):
    async with client(runtime) as http:
        return await http.post(path, json=body, headers=bearer(runtime.tokens[unit]))


async def record(runtime, incident_id: str, form: str, unit: str, body: dict, status: int = 200) -> dict:
    answer = await post(runtime, f"/v1/incidents/{incident_id}/{form}", unit, body)
    assert answer.status_code == status, answer.text
    return answer.json()


async def process_of(runtime, incident_id: str, unit: str = CP) -> dict:
    async with client(runtime) as http:
        answer = await http.get(f"/v1/incidents/{incident_id}/process", headers=bearer(runtime.tokens[unit]))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def inbox(runtime, unit: str) -> list[dict]:
    async with client(runtime) as http:
        answer = await http.get(f"/v1/agencies/{unit}/assignments", headers=bearer(runtime.tokens[unit]))
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def outbox(runtime, event_type: str) -> list[dict]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(outbox_message.c.body).where(outbox_message.c.event_type == event_type).order_by(outbox_message.c.id))
        return [json.loads(body) for body in rows.scalars()]


async def finish(runtime, unit: str, incident_id: str) -> int:
    """The unit does its open assignments of the case; how many it did."""
    done = 0
    for item in await inbox(runtime, unit):
        if item["incident_id"] != incident_id or item["status"] in ("done", "declined"):
            continue
        base = f"/v1/agencies/{unit}/assignments/{item['assignment_id']}"
        if item["status"] == "pending":
            assert (await post(runtime, f"{base}/acknowledge", unit)).status_code == 200
        if item["status"] in ("pending", "acknowledged"):
            assert (await post(runtime, f"{base}/status", unit, {"status": "in_progress"})).status_code == 200
        assert (await post(runtime, f"{base}/status", unit, {"status": "done", "note": "đã thực hiện"})).status_code == 200
        done += 1
    return done


def watcher(runtime, now: datetime) -> DeadlineWatcher:
    state = runtime.api.state
    return DeadlineWatcher(runtime, state.rule_sets, MovedClock(now), state.metrics)


def now_iso(minutes_ago: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


def today() -> date:
    return datetime.now(VN).date()


ASSESSMENT = {
    "harm": "bị đánh gây thương tích ở tay", "danger_level": "high", "urgent_protection": True,
    "measures_taken": "đưa đến trạm y tế", "assessed_by": "Cán bộ LĐ-TB&XH xã",
}
MEASURES = {"measures": "tách trẻ khỏi người gây hại, đưa về nhà bà ngoại", "separation_proposed": True, "taken_by": "Công an xã"}


def care(days: int = 15, **changes) -> dict:
    body = {
        "decision_no": "12/QĐ-UBND", "placement": "nhà bà ngoại, ấp 2", "starts_on": today().isoformat(),
        "ends_on": (today() + timedelta(days=days - 1)).isoformat(), "signed_by": "Nguyễn Văn Chủ", "signed_as": "chairman",
    }
    return body | changes


DETAILED = {"participants": "Công an xã, Trạm y tế, nhà trường, gia đình", "needs": "chăm sóc y tế; hỗ trợ tâm lý; đi học lại", "assessed_by": "Cán bộ LĐ-TB&XH xã"}


def plan(*, version: int = 1) -> dict:
    due = (today() + timedelta(days=10)).isoformat()
    return {
        "goals": f"trẻ được chăm sóc y tế và trở lại trường (kế hoạch lần {version})",
        "tasks": [
            {"task": "Khám và theo dõi vết thương, hỗ trợ tâm lý", "unit_id": HEALTH, "due_on": due, "cost_vnd": 500000, "funding": "ngân sách xã"},
            {"task": "Bố trí giáo viên kèm cặp, theo dõi đi học", "unit_id": SCHOOL, "due_on": due},
        ],
        "drafted_by": "Cán bộ LĐ-TB&XH xã",
    }


APPROVAL = {"decision_no": "15/QĐ-UBND", "approved_on": date.today().isoformat(), "signed_by": "Trần Thị Phó", "signed_as": "deputy"}


def review(overall: str) -> dict:
    return {
        "harm_severity": overall, "abuser_access": "low", "care_obstacles": overall, "child_capacity": "medium", "overall": overall,
        "notes": "", "reviewed_by": "Cán bộ LĐ-TB&XH xã", "reviewed_at": now_iso(),
    }


async def new_case(runtime, received_at: datetime | None = None) -> str:
    event = reported(urgency="emergency", received_at=received_at or datetime.now(UTC) - timedelta(hours=2))
    await route(runtime, event)
    return event.incident_id


class TestEveryStep:
    async def test_an_emergency_case_from_its_report_to_its_closing(self, routing):
        incident_id = await new_case(routing)
        url = f"/v1/incidents/{incident_id}"
        await record(routing, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso(90)})
        read = await record(routing, incident_id, "emergency-measures", CP, MEASURES | {"taken_at": now_iso(80)})
        assert read["step"] == "emergency_measures" and read["allowed"] == ["detailed_assessment"]
        read = await record(routing, incident_id, "care-decision", CHAIR, care())
        assert datetime.fromisoformat(read["care_ends_at"]) == datetime.combine(today() + timedelta(days=15), datetime.min.time(), VN)
        assert read["step"] == "emergency_measures"  # a decision beside the steps
        read = await record(routing, incident_id, "detailed-assessment", CP, DETAILED | {"meeting_at": now_iso(30)})
        assert read["deadline"]["step"] == "plan" and read["deadline"]["watched"]
        read = await record(routing, incident_id, "plan", CP, plan())
        assert read["step"] == "plan" and read["allowed"] == ["plan_approved"] and read["deadline"] is None

        # The cp_officer may not approve; the chairman's deputy does, and the two tasks go to their units.
        assert (await post(routing, f"{url}/plan-approval", CP, APPROVAL)).status_code == 403
        read = await record(routing, incident_id, "plan-approval", CHAIR, APPROVAL)
        assert read["step"] == "implementation" and read["allowed"] == ["review"]
        [approval] = [r for r in read["records"] if r["form"] == "plan_approval"]
        assert approval["data"]["plan_version"] == 1 and approval["data"]["signed_as"] == "deputy"
        for unit, words in ((HEALTH, "Khám và theo dõi"), (SCHOOL, "giáo viên kèm cặp")):
            [task] = [i for i in await inbox(routing, unit) if i["incident_id"] == incident_id and i["origin"].startswith("plan:")]
            assert words in task["task"] and task["role"] == "support" and "Mẫu 04" in task["reason"]
            assert datetime.fromisoformat(task["due_at"]) == datetime.combine(today() + timedelta(days=11), datetime.min.time(), VN)
        [routed] = [r for r in await outbox(routing, "incident.routed") if r["payload"]["rules_version"] == "plan"]
        assert {a["unit_id"] for a in routed["payload"]["assignments"]} == {HEALTH, SCHOOL}
        assert "Khám" not in json.dumps(routed)  # the task's words stay in routing
        assert await finish(routing, HEALTH, incident_id) >= 1 and await finish(routing, SCHOOL, incident_id) >= 1

        # A review at medium risk: the case may not close; a new plan takes it back to planning.
        read = await record(routing, incident_id, "review", CP, review("medium"))
        assert read["step"] == "review" and read["allowed"] == ["closed", "plan"]
        for unit in ROUTED:  # the routing decision's own assignments, done too
            await finish(routing, unit, incident_id)
        refused = await post(routing, f"{url}/close", CP, {"risk_level": "medium", "outcome": "chưa an toàn"})
        assert refused.status_code == 409 and "medium" in refused.json()["detail"]["message"]
        read = await record(routing, incident_id, "plan", CP, plan(version=2))
        assert read["step"] == "plan"
        await record(routing, incident_id, "plan-approval", CHAIR, APPROVAL | {"decision_no": "20/QĐ-UBND"})
        assert await finish(routing, HEALTH, incident_id) >= 1 and await finish(routing, SCHOOL, incident_id) >= 1
        await record(routing, incident_id, "review", CP, review("low"))
        closed = await post(routing, f"{url}/close", CP, {"risk_level": "low", "outcome": "trẻ an toàn, đi học lại"})
        assert closed.status_code == 200, closed.text

        read = await process_of(routing, incident_id, CHAIR)
        assert read["step"] == "closed" and read["allowed"] == []
        steps = [(h["from_step"], h["to_step"], h["by"]) for h in read["history"]]
        assert steps == [
            ("received", "initial_assessment", CP),
            ("initial_assessment", "emergency_measures", CP),
            ("emergency_measures", "detailed_assessment", CP),
            ("detailed_assessment", "plan", CP),
            ("plan", "plan_approved", CHAIR),
            ("plan_approved", "implementation", CHAIR),
            ("implementation", "review", CP),
            ("review", "plan", CP),
            ("plan", "plan_approved", CHAIR),
            ("plan_approved", "implementation", CHAIR),
            ("implementation", "review", CP),
            ("review", "closed", CP),
        ]
        ats = [h["at"] for h in read["history"]]
        assert ats == sorted(ats)
        versions = {(r["form"], r["version"]) for r in read["records"]}
        assert {("plan", 1), ("plan", 2), ("plan_approval", 2), ("review", 2)} <= versions  # the old kept
        published = [(e["payload"]["from_step"], e["payload"]["to_step"]) for e in await outbox(routing, "incident.step_changed")]
        assert published == [(f, t) for f, t, _ in steps]
        [decided] = await outbox(routing, "incident.care_decided")
        assert decided["payload"]["ends_on"] == (today() + timedelta(days=14)).isoformat() and "placement" not in decided["payload"]

    async def test_a_reopened_case_goes_back_to_its_review_and_may_be_planned_again(self, routing):
        incident_id = await new_case(routing)
        await record(routing, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso(60)})
        for unit in ROUTED:
            await finish(routing, unit, incident_id)
        # Closed early, at the initial assessment (e.g. the report proved groundless): allowed.
        closed = await post(routing, f"/v1/incidents/{incident_id}/close", CP, {"risk_level": "low", "outcome": "không có căn cứ"})
        assert closed.status_code == 200, closed.text
        assert (await process_of(routing, incident_id))["step"] == "closed"
        refused = await post(routing, f"/v1/incidents/{incident_id}/detailed-assessment", CP, DETAILED | {"meeting_at": now_iso()})
        assert refused.status_code == 409
        assert (await post(routing, f"/v1/incidents/{incident_id}/reopen", CP, {"reason": "có thông tin mới"})).status_code == 200
        read = await process_of(routing, incident_id)
        assert read["step"] == "initial_assessment" and "detailed_assessment" in read["allowed"]


class TestDeadlines:
    async def test_a_plan_not_made_in_5_working_days_escalates_once_to_the_chairman(self, routing):
        # Received on Friday 13 February 2026, the last working day before Tết (16-20 February, off): the 5 working
        # days are 23-27 February, so the plan is due at the end of Friday 27 February (Vietnam).
        received = datetime(2026, 2, 13, 2, 0, tzinfo=UTC)
        incident_id = await new_case(routing, received)
        assessed = (received + timedelta(hours=3)).isoformat()
        await record(routing, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": assessed})
        read = await process_of(routing, incident_id)
        due = datetime(2026, 2, 28, tzinfo=VN)
        assert read["deadline"]["step"] == "plan" and datetime.fromisoformat(read["deadline"]["due_at"]) == due
        assert await watcher(routing, due - timedelta(seconds=1)).tick_steps() == 0
        assert await watcher(routing, due + timedelta(seconds=1)).tick_steps() == 1
        assert await watcher(routing, due + timedelta(days=2)).tick_steps() == 0  # once
        [told] = await outbox(routing, "incident.step_overdue")
        assert (told["payload"]["step"], told["payload"]["escalated_to"]) == ("plan", [CHAIR])
        assert datetime.fromisoformat(told["payload"]["due_at"]) == due

    async def test_a_plan_made_in_time_is_not_escalated(self, routing):
        incident_id = await new_case(routing)
        await record(routing, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso(60)})
        await record(routing, incident_id, "detailed-assessment", CP, DETAILED | {"meeting_at": now_iso(30)})
        await record(routing, incident_id, "plan", CP, plan())
        assert await watcher(routing, datetime.now(UTC) + timedelta(days=30)).tick_steps() == 0
        assert await outbox(routing, "incident.step_overdue") == []

    async def test_the_end_of_a_temporary_care_is_told_once_and_an_extension_watches_its_new_end(self, routing):
        incident_id = await new_case(routing)
        await record(routing, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso(60)})
        await record(routing, incident_id, "emergency-measures", CP, MEASURES | {"taken_at": now_iso(50)})
        read = await record(routing, incident_id, "care-decision", CHAIR, care(days=10))
        end = datetime.fromisoformat(read["care_ends_at"])
        await record(routing, incident_id, "detailed-assessment", CP, DETAILED | {"meeting_at": now_iso(30)})
        await record(routing, incident_id, "plan", CP, plan())  # the plan's deadline is not in the way
        assert await watcher(routing, end - timedelta(seconds=1)).tick_steps() == 0
        assert await watcher(routing, end + timedelta(seconds=1)).tick_steps() == 1
        assert await watcher(routing, end + timedelta(days=1)).tick_steps() == 0
        [told] = await outbox(routing, "incident.step_overdue")
        assert told["payload"]["step"] == "temporary_care" and told["payload"]["escalated_to"] == [CHAIR]
        assert (await process_of(routing, incident_id))["care_escalated_at"] is not None
        # Extended past 15 days: needs a reason; with it, a new version and a new end, watched afresh.
        refused = await post(routing, f"/v1/incidents/{incident_id}/care-decision", CHAIR, care(days=25))
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "extension_reason"]
        read = await record(routing, incident_id, "care-decision", CHAIR, care(days=25, extension_reason="gia đình chưa bảo đảm an toàn"))
        assert read["care_escalated_at"] is None and datetime.fromisoformat(read["care_ends_at"]) > end
        assert await watcher(routing, end + timedelta(days=2)).tick_steps() == 0
        assert [e["payload"]["version"] for e in await outbox(routing, "incident.care_decided")] == [1, 2]


class TestBadForms:
    @pytest.mark.parametrize(
        ("form", "body", "field"),
        [
            ("plan", {"goals": "g", "tasks": [], "drafted_by": "x"}, "tasks"),
            ("plan", {"goals": "g", "tasks": [{"task": "t", "unit_id": "25339.health", "due_on": "2026-12-30"}], "drafted_by": "x"}, "unit_id"),
            ("plan", {"goals": "g", "tasks": [{"task": "t", "unit_id": "25349.school.nowhere", "due_on": "2026-12-30"}], "drafted_by": "x"}, "unit_id"),
            ("plan", {"goals": "g", "tasks": [{"task": "t", "unit_id": "25349.health", "due_on": "2026-12-30", "cost_vnd": -5}], "drafted_by": "x"}, "cost_vnd"),
            ("review", {**review("low"), "overall": "none"}, "overall"),
            ("detailed-assessment", {**DETAILED, "meeting_at": "2026-11-30T09:00:00"}, "meeting_at"),
        ],
    )
    async def test_the_field_at_fault_is_named(self, routing, form, body, field):
        incident_id = await new_case(routing)
        await record(routing, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso(60)})
        await record(routing, incident_id, "detailed-assessment", CP, DETAILED | {"meeting_at": now_iso(30)})
        if form == "review":
            await record(routing, incident_id, "plan", CP, plan())
            await record(routing, incident_id, "plan-approval", CHAIR, APPROVAL)
        answer = await post(routing, f"/v1/incidents/{incident_id}/{form}", CP, body)
        assert answer.status_code == 422, answer.text
        assert any(field in err["loc"] or field in err["msg"] for err in answer.json()["detail"]), answer.text

    async def test_a_step_out_of_order_is_refused_naming_the_allowed_ones(self, routing):
        incident_id = await new_case(routing)
        answer = await post(routing, f"/v1/incidents/{incident_id}/plan", CP, plan())
        assert answer.status_code == 409 and answer.json()["detail"]["allowed"] == ["initial_assessment"]
        answer = await post(routing, f"/v1/incidents/{incident_id}/care-decision", CHAIR, care())
        assert answer.status_code == 409
        assert (await post(routing, f"/v1/incidents/{incident_id}/assessment", POLICE, ASSESSMENT | {"assessed_at": now_iso()})).status_code == 403


async def test_an_erasure_blanks_every_forms_free_text_and_the_plans_tasks(routing):
    incident_id = await new_case(routing)
    await record(routing, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso(60)})
    await record(routing, incident_id, "emergency-measures", CP, MEASURES | {"taken_at": now_iso(50)})
    await record(routing, incident_id, "care-decision", CHAIR, care())
    await record(routing, incident_id, "detailed-assessment", CP, DETAILED | {"meeting_at": now_iso(30)})
    await record(routing, incident_id, "plan", CP, plan())
    await record(routing, incident_id, "plan-approval", CHAIR, APPROVAL)
    erased = IncidentErased(incident_id=incident_id, commune_code="25349", cause="request", at=datetime.now(UTC))
    async with routing.sessionmaker() as session, session.begin():
        await handle_erased(session, erased, erased.envelope(correlation_id=incident_id, producer="intake"))
    read = await process_of(routing, incident_id)
    text = json.dumps(read, ensure_ascii=False)
    for words in ("đánh gây thương tích", "bà ngoại", "Khám", "giáo viên", "chăm sóc y tế", "gia đình"):
        assert words not in text, words
    [plan_record] = [r for r in read["records"] if r["form"] == "plan"]
    assert [t["unit_id"] for t in plan_record["data"]["tasks"]] == [HEALTH, SCHOOL]  # the structure kept
    async with routing.sessionmaker() as session:
        tasks = (await session.execute(select(Assignment.task).where(Assignment.incident_id == incident_id, Assignment.rule == "plan"))).scalars().all()
        assert tasks and all(t is None for t in tasks)
        assert (await session.get(RoutedIncident, incident_id)).step == "implementation"


async def test_a_report_linked_to_an_earlier_one_joins_its_case_and_its_own_deadline_stops(routing):
    # The school and the hamlet reported the same child; the cp_officer linked the later report to the earlier.
    earlier = await new_case(routing, datetime.now(UTC) - timedelta(hours=3))
    later = await new_case(routing, datetime.now(UTC) - timedelta(hours=2))
    linked = IncidentLinked(incident_id=later, linked_to=earlier, commune_code="25349", by=CP, at=datetime.now(UTC))
    for _ in range(2):  # redelivered: the same outcome
        async with routing.sessionmaker() as session, session.begin():
            await handle_linked(session, linked, linked.envelope(correlation_id=later, producer="intake"))
    read = await process_of(routing, later)
    assert (read["linked_to"], read["deadline"], read["allowed"]) == (earlier, None, [])
    refused = await post(routing, f"/v1/incidents/{later}/assessment", CP, ASSESSMENT | {"assessed_at": now_iso()})
    assert refused.status_code == 409 and refused.json()["detail"]["linked_to"] == earlier
    # Past 12 hours only the earlier report's missing assessment is told to the chairman.
    assert await watcher(routing, datetime.now(UTC) + timedelta(hours=13)).tick_steps() == 1
    assert [e["payload"]["incident_id"] for e in await outbox(routing, "incident.step_overdue")] == [earlier]
    await record(routing, earlier, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso()})


async def test_the_communes_board_lists_open_cases_with_what_is_due_and_no_names(routing):
    waiting = await new_case(routing, datetime.now(UTC) - timedelta(hours=11))  # its 12 hours end in an hour
    planned = await new_case(routing)
    await record(routing, planned, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso()})
    await record(routing, planned, "detailed-assessment", CP, DETAILED | {"meeting_at": now_iso()})
    await record(routing, planned, "plan", CP, plan())
    async with client(routing) as http:
        board = await http.get("/v1/communes/25349/cases", headers=bearer(routing.tokens[CHAIR]))
        approvals = await http.get("/v1/communes/25349/cases", params={"step": "plan"}, headers=bearer(routing.tokens[CHAIR]))
        police = await http.get("/v1/communes/25349/cases", headers=bearer(routing.tokens[POLICE]))
    assert board.status_code == 200, board.text
    items = board.json()["items"]
    assert [i["incident_id"] for i in items][:1] == [waiting]  # the soonest deadline first
    assert items[0]["deadline"]["step"] == "initial_assessment" and not items[0]["deadline"]["overdue"]
    assert [(i["incident_id"], i["allowed"]) for i in approvals.json()["items"]] == [(planned, ["plan_approved"])]
    assert "Nguyễn" not in board.text and "đánh" not in board.text  # no child's name, no free text
    assert police.status_code == 403
