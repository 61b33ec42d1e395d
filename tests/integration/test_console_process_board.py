"""The console's "Quy trình bảo vệ" board (issue 17) over intake's and routing's real APIs and databases: the
commune's chairman sees the plans waiting for approval and the cases by deadline, without a child's name; other units
do not get the page."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_console_activities import signed_in
from tests.integration.test_console_assessment import PEOPLE, new_case
from tests.integration.test_console_notifications import console_over_intake_and_routing
from tests.support import bearer, client, issue_token


@pytest.fixture
async def console(tmp_path, database_url):
    async with console_over_intake_and_routing(tmp_path, database_url, PEOPLE) as app:
        yield app


async def to_plan(console, incident_id: str) -> None:
    """The cp_officer's forms up to the plan (Mẫu 02, 03, 04), through routing's API."""
    token = await issue_token(console.routing, "unit", "25349.cp_officer")
    now = datetime.now(UTC).isoformat()
    due = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    steps = (
        ("assessment", {"harm": "bị đánh", "danger_level": "high", "urgent_protection": False, "assessed_by": "x", "assessed_at": now}),
        ("detailed-assessment", {"meeting_at": now, "participants": "các đơn vị", "needs": "chăm sóc", "assessed_by": "x"}),
        ("plan", {"goals": "an toàn", "tasks": [{"task": "khám", "unit_id": "25349.health", "due_on": due}], "drafted_by": "x"}),
    )
    async with client(console.routing) as http:
        for form, body in steps:
            answer = await http.post(f"/v1/incidents/{incident_id}/{form}", json=body, headers=bearer(token))
            assert answer.status_code == 200, answer.text


async def test_the_chairman_sees_the_plan_waiting_and_the_assessment_due(console):
    waiting, _ = await new_case(console, received_ago=timedelta(hours=13))  # its 12 hours are past
    planned, _ = await new_case(console)
    await to_plan(console, planned)
    chair = await signed_in(console, "a-chair")
    page = await chair.get("/communes/25349/process")
    assert page.status_code == 200, page.text
    assert 'href="/communes/25349/process"' in page.text, "the menu leads to the board"
    approvals = page.text.split("Kế hoạch chờ Chủ tịch phê duyệt")[1].split("</section>")[0]
    assert f"/cases/{planned}#process" in approvals and f"/cases/{waiting}" not in approvals
    table = page.text.split("<tbody>")[1]
    assert table.index(waiting) < table.index(planned), "the overdue assessment first"
    assert "quá hạn" in table.split(planned)[0] and "Chờ đánh giá ban đầu (Mẫu 02)" in table
    assert "1 quá hạn" in page.text and "1 kế hoạch chờ phê duyệt" in page.text
    cp = await signed_in(console, "a-cp")
    assert "Chờ Chủ tịch UBND xã phê duyệt kế hoạch (Mẫu 05)" in (await cp.get("/communes/25349/process")).text


async def test_no_childs_name_and_no_page_for_other_units(console):
    incident_id, _ = await new_case(console)
    async with client(console.intake) as http:
        token = await issue_token(console.intake, "unit", "25349.cp_officer")
        case = (await http.get(f"/v1/incidents/{incident_id}", headers=bearer(token))).json()
    name = case["children"][0]["full_name"]
    chair = await signed_in(console, "a-chair")
    page = await chair.get("/communes/25349/process")
    assert incident_id in page.text and name not in page.text
    police = await signed_in(console, "a-police")
    assert (await police.get("/communes/25349/process")).status_code == 404
    assert 'href="/communes/25349/process"' not in (await police.get("/inbox")).text


async def test_a_recorded_form_prints_as_pdf_and_docx_for_the_chairman_not_for_the_police(console):
    incident_id, _ = await new_case(console)
    await to_plan(console, incident_id)
    chair = await signed_in(console, "a-chair")
    page = await chair.get(f"/cases/{incident_id}")
    links = sorted(set(re.findall(rf'href="(/cases/{incident_id}/records/[^"]+\.pdf)"', page.text)))
    assert len(links) == 3, "Mẫu 02, 03 and 04 each print"
    pdf = await chair.get(links[-1])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and "attachment" in pdf.headers["content-disposition"]
    docx = await chair.get(links[-1].replace(".pdf", ".docx"))
    assert docx.status_code == 200 and docx.content.startswith(b"PK")
    police = await signed_in(console, "a-police")
    assert (await police.get(links[-1])).status_code in (403, 404)
