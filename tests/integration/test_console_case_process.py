"""The case page's process forms after the initial assessment (issue 17) over intake's and routing's real APIs and
databases (SQLite and PostgreSQL): the commune's cp_officer records the emergency measures, the detailed assessment
(Mẫu 03), the plan (Mẫu 04, task rows with a unit of the commune each, one more row on asking) and the review (Mẫu 06);
the chairman the temporary care decision and the plan's approval (Mẫu 05), reading the plan it approves; the plan's
tasks reach their units' inboxes with their text and due day. Each form refused names its field in Vietnamese (the
console's checks and routing's 422), a step out of order is explained in words, and only the right person sees each form."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.console import forms, vi
from services.routing.models import Assignment
from services.routing.process import Step
from tests.integration.test_console_activities import csrf, signed_in
from tests.integration.test_console_assessment import new_case, section
from tests.integration.test_console_notifications import console_over_intake_and_routing
from tests.integration.test_routing_case_process import finish
from tests.support import bearer, client, issue_token

PEOPLE = (
    ("p-cp", "Lê Văn Cường", "unit", "25349.cp_officer"),
    ("p-chair", "Võ Văn Bình", "unit", "25349.chairman"),
    ("p-police", "Nguyễn Văn An", "unit", "25349.police"),
    ("p-health", "Trần Thị Hoa", "unit", "25349.health"),
    ("p-admin", "Quản Trị", "admin", "admin"),
)
HEALTH, SCHOOL = "25349.health", "25349.school.th-minh-tam-a"


@pytest.fixture
async def console(tmp_path, database_url):
    async with console_over_intake_and_routing(tmp_path, database_url, PEOPLE) as app:
        yield app


def vn_day(days: int = 0) -> str:
    return (datetime.now(vi.VN).date() + timedelta(days=days)).isoformat()


def vn_minute(ago: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) - ago).astimezone(vi.VN).strftime("%d/%m/%Y %H:%M")


async def assessed(console, urgent: bool = True, received_ago: timedelta = timedelta(hours=2)) -> str:
    """A case with its initial assessment recorded over routing's API."""
    incident_id, _ = await new_case(console, received_ago=received_ago)
    body = {"harm": "Bị đánh gây bầm tím ở tay", "danger_level": "high" if urgent else "low", "urgent_protection": urgent,
            "measures_taken": "Đưa đến trạm y tế xã" if urgent else "", "assessed_by": "Lê Văn Cường",
            "assessed_at": (datetime.now(UTC) - timedelta(minutes=30)).isoformat()}
    async with client(console.routing) as http:
        token = await issue_token(console.routing, "unit", "25349.cp_officer")
        answer = await http.post(f"/v1/incidents/{incident_id}/assessment", json=body, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return incident_id


async def submit(browser, incident_id: str, action: str, **fields):
    page = await browser.get(f"/cases/{incident_id}")
    return await browser.post(f"/cases/{incident_id}", data={"csrf_token": csrf(page.text), "action": action, **fields})


async def recorded(browser, incident_id: str, action: str, **fields) -> str:
    answer = await submit(browser, incident_id, action, **fields)
    assert answer.status_code == 303, answer.text[:3000]
    assert answer.headers["location"] == f"/cases/{incident_id}?recorded={action}#process"
    return section((await browser.get(answer.headers["location"])).text)


async def finish_all(console, incident_id: str) -> None:
    """Every unit of the case does its open assignments (over routing's API)."""
    async with console.routing.sessionmaker() as session:
        units = set((await session.execute(select(Assignment.unit_id).where(Assignment.incident_id == incident_id))).scalars())
    console.routing.tokens = {u: await issue_token(console.routing, "unit", u) for u in units}
    for unit in units:
        await finish(console.routing, unit, incident_id)


MEASURES = {"measures": "Tách trẻ khỏi người gây hại, đưa về nhà bà ngoại", "separation_proposed": "yes", "taken_by": "Công an xã"}
DETAILED = {"participants": "Công an xã, Trạm y tế, nhà trường, gia đình", "needs": "Chăm sóc y tế; hỗ trợ tâm lý; đi học lại",
            "findings": "", "assessed_by": "Lê Văn Cường"}


def plan_fields(**changes) -> dict:
    body = {
        "goals": "Trẻ được chăm sóc y tế và trở lại trường", "drafted_by": "Lê Văn Cường", "tasks_count": "3",
        "tasks-0-task": "Khám và theo dõi vết thương, hỗ trợ tâm lý", "tasks-0-unit_id": HEALTH,
        "tasks-0-due_on": datetime.now(vi.VN).date().strftime("%d/%m/%Y"), "tasks-0-cost_vnd": "500.000", "tasks-0-funding": "Ngân sách xã",
        "tasks-1-task": "Bố trí giáo viên kèm cặp, theo dõi đi học", "tasks-1-unit_id": SCHOOL, "tasks-1-due_on": vn_day(10),
        "tasks-1-cost_vnd": "", "tasks-1-funding": "",
        "tasks-2-task": "", "tasks-2-unit_id": "", "tasks-2-due_on": "", "tasks-2-cost_vnd": "", "tasks-2-funding": "",
    }
    return body | changes


APPROVAL = {"decision_no": "15/QĐ-UBND", "approved_on": vn_day(), "signed_by": "Võ Văn Bình", "signed_as": "deputy"}


def review_fields(overall: str) -> dict:
    return {"harm_severity": overall, "abuser_access": "low", "care_obstacles": overall, "child_capacity": "medium",
            "overall": overall, "notes": "", "reviewed_by": "Lê Văn Cường"}


async def test_the_process_from_the_emergency_measures_to_the_review_on_the_case_page(console):
    incident_id = await assessed(console)
    cp, chair = await signed_in(console, "p-cp"), await signed_in(console, "p-chair")
    shown = section((await cp.get(f"/cases/{incident_id}")).text)
    # Urgent: the emergency measures are the next move (open), the detailed assessment the other (folded).
    assert '<div class="step-form" id="emergency_measures-form"' in shown and '<details class="amend" id="detailed_assessment-form">' in shown
    assert "hết ngày " in shown and "Lập kế hoạch hỗ trợ, can thiệp (Mẫu 04), trong 5 ngày làm việc" in shown
    assert not re.search(r"Hạn: \d\d/\d\d/\d{4} 00:00", shown)  # 24:00 is written as the end of the day before
    shown = await recorded(cp, incident_id, "emergency_measures", **MEASURES)
    assert "Đã ghi biện pháp can thiệp khẩn cấp." in shown and "Tách trẻ khỏi người gây hại" in shown and "1 (hiện hành)" in shown

    # The chairman decides the temporary care the measures propose: at most 15 days, shown to the end of its last day.
    page = await chair.get(f"/cases/{incident_id}")
    assert '<div class="step-form" id="care_decision-form"' in section(page.text)
    ends = datetime.now(vi.VN).date() + timedelta(days=14)
    shown = await recorded(chair, incident_id, "care_decision", decision_no="12/QĐ-UBND", placement="Nhà bà ngoại, ấp 2",
                           starts_on=vn_day(), ends_on=ends.strftime("%d/%m/%Y"), extension_reason="", signed_by="Võ Văn Bình", signed_as="chairman")
    assert f"đến <strong>hết ngày {ends:%d/%m/%Y}</strong>" in shown and "Phó Chủ tịch" not in shown.split("Ký với tư cách")[1][:40]

    shown = await recorded(cp, incident_id, "detailed_assessment", meeting_at=vn_minute(timedelta(minutes=10)), **DETAILED)
    assert "Đã ghi đánh giá chi tiết (Mẫu 03)." in shown and "Chăm sóc y tế; hỗ trợ tâm lý" in shown
    # The plan's form: three empty task rows, each unit one of the commune's from routing's registry.
    page = await cp.get(f"/cases/{incident_id}")
    shown = section(page.text)
    assert '<div class="step-form" id="plan-form"' in shown and shown.count("<legend>Nhiệm vụ ") == 3
    assert f'<option value="{HEALTH}">' in shown and f'<option value="{SCHOOL}">' in shown and "25339." not in shown
    assert 'placeholder="ngày/tháng/năm"' in shown and "Ngày/tháng/năm, ví dụ 07/12/2026." in shown
    # "Thêm nhiệm vụ": the page again with a fourth row, what was typed kept.
    more = await cp.post(f"/cases/{incident_id}", data={"csrf_token": csrf(page.text), "action": "add_task:plan", **plan_fields()})
    assert more.status_code == 200 and section(more.text).count("<legend>Nhiệm vụ ") == 4
    assert 'value="Khám và theo dõi vết thương, hỗ trợ tâm lý"' in more.text and f'<option value="{HEALTH}" selected>' in more.text
    assert f'value="{(datetime.now(vi.VN).date() + timedelta(days=10)):%d/%m/%Y}"' in more.text  # typed as 2026-12-10, shown as 10/12/2026

    shown = await recorded(cp, incident_id, "plan", **plan_fields())
    assert "Đã ghi kế hoạch hỗ trợ, can thiệp (Mẫu 04)." in shown and "Nhiệm vụ (2)" in shown
    assert f"hạn: hết ngày {datetime.now(vi.VN).date():%d/%m/%Y} · kinh phí 500.000 đ (Ngân sách xã)" in shown
    assert 'value="plan_approval"' not in shown  # the cp_officer does not approve

    # The chairman reads the plan in the approval form and approves it as a deputy.
    shown = section((await chair.get(f"/cases/{incident_id}")).text)
    approving = shown.split('id="plan_approval-form"')[1]
    assert "Kế hoạch trình phê duyệt (Mẫu 04, phiên bản 1)" in approving and "Bố trí giáo viên kèm cặp" in approving
    shown = await recorded(chair, incident_id, "plan_approval", **APPROVAL)
    assert "Đã phê duyệt kế hoạch (Mẫu 05)." in shown and "Đang thực hiện kế hoạch" in shown
    assert "Phó Chủ tịch (KT. Chủ tịch)" in shown and "Mẫu 04, phiên bản 1" in shown

    # The health station's inbox: the task's words and its due day.
    health = await signed_in(console, "p-health")
    inbox = (await health.get("/inbox")).text
    assert "Nhiệm vụ: Khám và theo dõi vết thương, hỗ trợ tâm lý" in inbox
    assert f"Hạn hoàn thành: hết ngày {datetime.now(vi.VN).date():%d/%m/%Y}" in inbox

    # The review at medium risk: the case cannot close; the page says why, and offers a new plan.
    shown = await recorded(cp, incident_id, "review", reviewed_at=vn_minute(), **review_fields("medium"))
    assert "Đã ghi đánh giá kết quả (Mẫu 06)." in shown and "Mức độ nguy cơ chung" in shown
    assert '<div class="step-form" id="plan-form"' in shown and "Lập kế hoạch mới (quay lại bước lập kế hoạch)" in shown
    assert 'value="Khám và theo dõi vết thương, hỗ trợ tâm lý"' in shown  # the new plan starts from the last
    await finish_all(console, incident_id)  # every unit done: only the review's level stands in the way
    refused = await submit(cp, incident_id, "close", risk_level="medium", outcome="chưa an toàn")
    assert refused.status_code == 409 and "Chưa thể kết thúc: lần đánh giá gần nhất (Mẫu 06) thấy trẻ vẫn còn nguy cơ" in refused.text


async def test_refused_forms_name_their_fields_in_vietnamese(console):
    incident_id = await assessed(console, received_ago=timedelta(hours=3))
    cp, chair = await signed_in(console, "p-cp"), await signed_in(console, "p-chair")
    # The console's checks: a task with no unit, nothing typed in the others; the page keeps what was typed.
    answer = await submit(cp, incident_id, "detailed_assessment", meeting_at=vn_minute(), **{**DETAILED, "needs": ""})
    assert answer.status_code == 422 and "Nhu cầu của trẻ: bắt buộc, tối đa 4.000 ký tự." in answer.text
    assert 'id="detailed_assessment-needs" name="needs" maxlength="4000" required aria-invalid="true"' in answer.text
    assert '<div class="step-form" id="detailed_assessment-form"' in section(answer.text)  # opened, with the error
    # Routing's 422: a needs meeting before the report was received.
    answer = await submit(cp, incident_id, "detailed_assessment", meeting_at=vn_minute(timedelta(hours=5)), **DETAILED)
    assert answer.status_code == 422, answer.text[:2000]
    assert "Thời điểm họp xác định nhu cầu: không được trước lúc tiếp nhận báo cáo." in answer.text
    await recorded(cp, incident_id, "detailed_assessment", meeting_at=vn_minute(), **DETAILED)
    answer = await submit(cp, incident_id, "plan", **plan_fields(**{"tasks-1-unit_id": ""}))
    assert answer.status_code == 422 and "Nhiệm vụ 2, đơn vị thực hiện: chọn một đơn vị của xã." in answer.text
    assert 'id="plan-tasks-1-unit_id" name="tasks-1-unit_id" aria-invalid="true"' in answer.text
    answer = await submit(cp, incident_id, "plan", **plan_fields(**{f"tasks-{i}-{f[0]}": "" for i in range(3) for f in forms.TASK_FIELDS}))
    assert answer.status_code == 422 and "Kế hoạch cần ít nhất một nhiệm vụ" in answer.text
    # Routing's 422 on a task row: a unit of another commune (a forged choice), named by the page's row number.
    answer = await submit(cp, incident_id, "plan", **plan_fields(**{"tasks-0-task": "", "tasks-0-unit_id": "", "tasks-0-due_on": "",
                                                                 "tasks-0-cost_vnd": "", "tasks-0-funding": "", "tasks-2-task": "Hỗ trợ pháp lý",
                                                                 "tasks-2-unit_id": "25339.justice", "tasks-2-due_on": vn_day(3)}))
    assert answer.status_code == 422, answer.text[:2000]
    assert "Nhiệm vụ 3, đơn vị thực hiện: đơn vị không thuộc xã của vụ việc." in answer.text
    # The chairman's care decision over 15 days without a reason: routing names the extension's reason.
    answer = await submit(chair, incident_id, "care_decision", decision_no="12/QĐ-UBND", placement="Nhà bà ngoại", starts_on=vn_day(),
                          ends_on=vn_day(19), extension_reason="", signed_by="Võ Văn Bình", signed_as="chairman")
    assert answer.status_code == 422, answer.text[:2000]
    assert "Lý do gia hạn (bắt buộc khi quá 15 ngày): tạm thời cách ly quá 15 ngày: ghi lý do gia hạn." in answer.text
    answer = await submit(chair, incident_id, "care_decision", decision_no="", placement="Nhà bà ngoại", starts_on=vn_day(),
                          ends_on="31/02/2026", extension_reason="", signed_by="Võ Văn Bình", signed_as="")
    assert answer.status_code == 422
    assert "Chưa ghi được: 3 mục cần sửa, được đánh dấu bên dưới." in answer.text
    for words in ("Số quyết định: bắt buộc", "Đến hết ngày: bắt buộc, ngày theo dạng ngày/tháng/năm, ví dụ 07/12/2026.", "Ký với tư cách: chọn Chủ tịch hoặc Phó Chủ tịch."):
        assert words in answer.text, words
    # A step out of order, in words: a review before any plan; the chairman's approval with no plan.
    answer = await submit(cp, incident_id, "review", reviewed_at=vn_minute(), **review_fields("low"))
    assert answer.status_code == 409, answer.text[:2000]
    assert "Không ghi được đánh giá kết quả, mức độ nguy cơ (Mẫu 06) ở bước này." in answer.text
    assert "Hồ sơ đang ở bước “Đã đánh giá chi tiết (Mẫu 03)”. Việc tiếp theo có thể làm: lập kế hoạch hỗ trợ, can thiệp (Mẫu 04)." in answer.text
    answer = await submit(cp, incident_id, "review", reviewed_at=vn_minute(), **{**review_fields("low"), "overall": ""})
    assert answer.status_code == 422 and "Mức độ nguy cơ chung: chọn Cao, Trung bình hoặc Thấp." in answer.text
    answer = await submit(cp, incident_id, "plan_approval", **APPROVAL)
    assert answer.status_code == 409 and "Chỉ Chủ tịch UBND xã (hoặc Phó Chủ tịch ký thay) được ghi quyết định phê duyệt kế hoạch (Mẫu 05)." in answer.text
    async with client(console.routing) as http:
        process = (await http.get(f"/v1/incidents/{incident_id}/process",
                                  headers=bearer(await issue_token(console.routing, "unit", "25349.cp_officer")))).json()
    assert process["step"] == "detailed_assessment" and sorted(r["form"] for r in process["records"]) == ["detailed_assessment", "initial_assessment"]


async def test_only_the_right_person_sees_each_form(console):
    incident_id = await assessed(console)
    pages = {who: (await (await signed_in(console, who)).get(f"/cases/{incident_id}")).text for who in ("p-cp", "p-chair", "p-admin", "p-police")}
    cp_forms = ('value="emergency_measures"', 'value="detailed_assessment"')
    chair_forms = ('value="care_decision"',)
    assert all(f in pages["p-cp"] for f in cp_forms) and not any(f in pages["p-cp"] for f in chair_forms)
    assert all(f in pages["p-chair"] for f in chair_forms) and not any(f in pages["p-chair"] for f in cp_forms)
    assert not any(f in pages["p-admin"] for f in cp_forms + chair_forms) and "Quy trình bảo vệ trẻ em" in pages["p-admin"]
    assert "Quy trình bảo vệ trẻ em" not in pages["p-police"] and "emergency_measures" not in pages["p-police"]
    cp = await signed_in(console, "p-cp")
    await recorded(cp, incident_id, "detailed_assessment", meeting_at=vn_minute(), **DETAILED)
    await recorded(cp, incident_id, "plan", **plan_fields())
    pages = {who: section((await (await signed_in(console, who)).get(f"/cases/{incident_id}")).text) for who in ("p-cp", "p-chair", "p-admin")}
    assert 'value="plan_approval"' in pages["p-chair"] and 'value="plan_approval"' not in pages["p-cp"] + pages["p-admin"]
    assert 'value="plan"' in pages["p-cp"] and "Sửa đổi kế hoạch trước khi phê duyệt" in pages["p-cp"]
    assert 'value="plan"' not in pages["p-chair"] + pages["p-admin"]
    # The police's own inbox shows no plan task of another unit.
    assert "Khám và theo dõi" not in (await (await signed_in(console, "p-police")).get("/inbox")).text


def test_every_step_and_overdue_of_the_process_has_its_timeline_label():
    for step in Step:
        if step is not Step.received:
            assert f"step.{step.value}" in vi.TIMELINE, step
    for kind in ("step_overdue.plan", "step_overdue.temporary_care", "care_decided"):
        assert kind in vi.TIMELINE, kind
    assert vi.end_day("2026-12-07T17:00:00+00:00") == "hết ngày 07/12/2026"  # 24:00 in Vietnam
    assert vi.end_day("2026-12-07T03:30:00+00:00") == "07/12/2026 10:30"
