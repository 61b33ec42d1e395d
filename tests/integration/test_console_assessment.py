"""The case page's "Quy trình bảo vệ trẻ em" (issue 17) in process over intake's and routing's real APIs and databases:
the commune's cp_officer records the initial assessment (Mẫu 02) and amends it (both versions shown), a refused form
names its fields in Vietnamese (the console's own checks and routing's 422), the chairman and admins read the
section without its form, and the other units of the case see nothing of it."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.console.vi import VN
from services.intake.models import outbox_message
from services.routing.models import outbox_message as routing_outbox
from shared.events import Envelope, parse_payload
from tests.integration.test_console_activities import csrf, signed_in
from tests.integration.test_console_notifications import console_over_intake_and_routing
from tests.integration.test_routing_process import watcher
from tests.routing_support import route
from tests.support import bearer, client, incident_payload, issue_token

PEOPLE = (
    ("a-cp", "Lê Văn Cường", "unit", "25349.cp_officer"),
    ("a-chair", "Võ Văn Bình", "unit", "25349.chairman"),
    ("a-police", "Nguyễn Văn An", "unit", "25349.police"),
    ("a-school", "Phạm Thị Dung", "unit", "25349.school.th-minh-tam-a"),
    ("a-admin", "Quản Trị", "admin", "admin"),
)
SECTION = "Quy trình bảo vệ trẻ em"


@pytest.fixture
async def console(tmp_path, database_url):
    async with console_over_intake_and_routing(tmp_path, database_url, PEOPLE) as app:
        yield app


async def new_case(console, received_ago: timedelta = timedelta(0)) -> tuple[str, datetime]:
    """A report taken by intake's API, its incident.reported (from intake's outbox) routed by routing's handler
    (as received `received_ago` earlier)."""
    token = await issue_token(console.intake, "unit", "25349.school.th-minh-tam-a")
    body = incident_payload(category="violence", urgency="emergency", occurred_at=None)
    async with client(console.intake) as http:
        answer = await http.post("/v1/incidents", json=body, headers=bearer(token))
    assert answer.status_code == 202, answer.text
    incident_id = answer.json()["incident_id"]
    async with console.intake.sessionmaker() as session:
        rows = (await session.execute(select(outbox_message.c.body).where(outbox_message.c.event_type == "incident.reported"))).scalars()
        envelope = next(e for e in (Envelope.model_validate(json.loads(b)) for b in rows) if e.payload["incident_id"] == incident_id)
    event = parse_payload(envelope)
    event = event.model_copy(update={"facts": event.facts.model_copy(update={"received_at": event.facts.received_at - received_ago})})
    await route(console.routing, event)
    return incident_id, event.facts.received_at


def fields(page: str, **changes) -> dict:
    body = {
        "action": "assess",
        "csrf_token": csrf(page),
        "harm": "Bị đánh gây bầm tím ở tay",
        "danger_level": "high",
        "urgent_protection": "yes",
        "measures_taken": "Đưa đến trạm y tế xã; tạm thời ở với bà ngoại",
        "assessed_by": "Lê Văn Cường",
        "assessed_at": "",
    }
    body.update(changes)
    return body


def section(html: str) -> str:
    return html.split(f">{SECTION}</h2>")[1].split("</section>")[0]


async def test_the_cp_officer_records_the_initial_assessment_then_amends_it(console):
    incident_id, _ = await new_case(console)
    cp = await signed_in(console, "a-cp")
    page = await cp.get(f"/cases/{incident_id}")
    assert page.status_code == 200 and SECTION in page.text
    shown = section(page.text)
    assert "Đã tiếp nhận thông báo (Mẫu 01)" in shown and "Đánh giá ban đầu (Mẫu 02), trong 12 giờ" in shown
    assert "còn 1" in shown and 'value="assess"' in shown  # 12 hours from a report just received: "còn 11 giờ 59 phút"
    answer = await cp.post(f"/cases/{incident_id}", data=fields(page.text))
    assert answer.status_code == 303, answer.text
    after = await cp.get(answer.headers["location"])
    shown = section(after.text)
    assert "Đã ghi đánh giá ban đầu (Mẫu 02)." in shown and "Đã đánh giá ban đầu (Mẫu 02)" in shown
    assert "Bị đánh gây bầm tím ở tay" in shown and "1 (hiện hành)" in shown
    assert "Lập kế hoạch hỗ trợ, can thiệp (Mẫu 04), trong 5 ngày làm việc" in shown
    # The amendment starts from the current version; both versions are shown, the old one folded.
    assert "Sửa đổi đánh giá ban đầu" in shown and 'value="Lê Văn Cường"' in shown
    answer = await cp.post(f"/cases/{incident_id}", data=fields(after.text, danger_level="medium", harm="Bầm tím ở tay và lưng"))
    assert answer.status_code == 303, answer.text
    amended = section((await cp.get(answer.headers["location"])).text)
    assert "phiên bản 2" in amended and "2 phiên bản" in amended
    assert "Bầm tím ở tay và lưng" in amended and "2 (hiện hành)" in amended
    assert "Phiên bản 1" in amended and "(đã được sửa đổi)" in amended and "Bị đánh gây bầm tím ở tay" in amended
    async with client(console.routing) as http:
        process = (await http.get(f"/v1/incidents/{incident_id}/process", headers=bearer(await issue_token(console.routing, "unit", "25349.cp_officer")))).json()
    assert [(r["version"], r["current"], r["data"]["danger_level"]) for r in process["records"]] == [(1, False, "high"), (2, True, "medium")]
    # The step moved once: one incident.step_changed in routing's outbox, ids and step names only; none for the amendment.
    async with console.routing.sessionmaker() as session:
        rows = (await session.execute(select(routing_outbox.c.body).where(routing_outbox.c.event_type == "incident.step_changed"))).scalars().all()
    [changed] = [json.loads(body)["payload"] for body in rows]
    assert changed == {
        "incident_id": incident_id, "commune_code": "25349", "from_step": "received", "to_step": "initial_assessment",
        "record_id": process["records"][0]["record_id"], "by": "25349.cp_officer", "at": changed["at"],
    }


async def test_a_refused_assessment_names_its_fields_in_vietnamese(console):
    incident_id, received = await new_case(console)
    cp = await signed_in(console, "a-cp")
    page = await cp.get(f"/cases/{incident_id}")
    # The console's own checks: urgent protection with no measures, no assessor.
    answer = await cp.post(f"/cases/{incident_id}", data=fields(page.text, measures_taken="", assessed_by=""))
    assert answer.status_code == 422
    assert "Biện pháp đã thực hiện: bắt buộc khi trẻ cần bảo vệ khẩn cấp" in answer.text
    assert "Người đánh giá: bắt buộc" in answer.text
    assert 'id="measures_taken" name="measures_taken" maxlength="4000" aria-invalid="true"' in answer.text
    assert "Bị đánh gây bầm tím ở tay" in answer.text  # what was typed is kept
    # Routing's 422: an assessment dated before the report was received, and a harm too long for the API.
    before = (received - timedelta(hours=2)).astimezone(VN).strftime("%Y-%m-%dT%H:%M")
    answer = await cp.post(f"/cases/{incident_id}", data=fields(page.text, assessed_at=before))
    assert answer.status_code == 422, answer.text
    assert "Thời điểm đánh giá: không được trước lúc tiếp nhận báo cáo" in answer.text
    assert 'aria-invalid="true" aria-describedby="assessed_at-error"' in answer.text
    answer = await cp.post(f"/cases/{incident_id}", data=fields(page.text, measures_taken="x" * 4001))
    assert answer.status_code == 422 and "Biện pháp đã thực hiện: bắt buộc khi trẻ cần bảo vệ khẩn cấp, tối đa 4.000 ký tự." in answer.text
    # Nothing was recorded; a form without its CSRF token is refused.
    still = section((await cp.get(f"/cases/{incident_id}")).text)
    assert "Đã tiếp nhận thông báo (Mẫu 01)" in still and "hiện hành" not in still
    forged = await cp.post(f"/cases/{incident_id}", data={**fields(page.text), "csrf_token": "x"})
    assert forged.status_code == 403


async def test_the_chairman_and_admins_read_it_other_units_see_nothing(console):
    incident_id, _ = await new_case(console)
    cp = await signed_in(console, "a-cp")
    page = await cp.get(f"/cases/{incident_id}")
    assert (await cp.post(f"/cases/{incident_id}", data=fields(page.text))).status_code == 303
    for reader in ("a-chair", "a-admin"):
        shown = await (await signed_in(console, reader)).get(f"/cases/{incident_id}")
        assert shown.status_code == 200 and SECTION in shown.text, reader
        assert "Bị đánh gây bầm tím ở tay" in section(shown.text) and 'value="assess"' not in shown.text, reader
    # The chairman cannot record one either: routing refuses, the page says so.
    chair = await signed_in(console, "a-chair")
    refused = await chair.post(f"/cases/{incident_id}", data=fields((await chair.get(f"/cases/{incident_id}")).text))
    assert refused.status_code == 409 and "Chỉ cán bộ phụ trách bảo vệ trẻ em của xã được ghi đánh giá ban đầu." in refused.text
    # Before any assessment the chairman reads that there is none.
    fresh, _ = await new_case(console)
    assert "Chưa có đánh giá ban đầu (Mẫu 02)." in section((await chair.get(f"/cases/{fresh}")).text)
    for other in ("a-police", "a-school"):
        shown = await (await signed_in(console, other)).get(f"/cases/{incident_id}")
        assert shown.status_code == 200, other
        assert SECTION not in shown.text and "Mẫu 02" not in shown.text and "bầm tím" not in shown.text, other


async def test_a_missed_12_hours_shows_overdue_and_that_the_chairman_was_told(console):
    incident_id, received = await new_case(console, received_ago=timedelta(hours=13))
    assert await watcher(console.routing, datetime.now(UTC)).tick_steps() == 1
    cp = await signed_in(console, "a-cp")
    shown = section((await cp.get(f"/cases/{incident_id}")).text)
    assert '<span class="overdue">quá hạn 1 giờ' in shown and "Đã báo Chủ tịch UBND xã lúc" in shown
    assert 'value="assess"' in shown  # late, it can still be recorded
