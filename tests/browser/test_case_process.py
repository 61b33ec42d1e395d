"""The plan (Mẫu 04) and its approval (Mẫu 05) on the case page (issue 17), as a commune's cp_officer drafts it on a
phone (390 px): task rows with a unit of the commune each, one more row on asking, a row without its unit refused by
name; the chairman reads the plan in the approval form and approves it on a phone; the school finds its task, with its
words and due day, in its inbox. In Vietnamese, passing axe-core, with no sideways scroll; screenshots at 390 and 1280 px."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.console.vi import VN
from tests.browser.conftest import DESKTOP, PHONE, api, axe_check, console_url, eventually, shot, sign_in
from tests.browser.test_assessment import process_text, reloaded_until
from tests.browser.test_new_screens import no_horizontal_scroll, report


def _to_detailed_assessment(system, incident_id: str) -> None:
    """Mẫu 02 and Mẫu 03 over routing's API, once routing has the case."""
    now = datetime.now(UTC)
    with api(system, "routing", "25349.cp_officer") as http:
        def routed() -> bool:
            return http.get(f"/v1/incidents/{incident_id}/process").status_code == 200

        eventually(routed, timeout=40, what="routing has the case")
        answer = http.post(f"/v1/incidents/{incident_id}/assessment", json={
            "harm": "Bị đánh gây bầm tím ở tay", "danger_level": "medium", "urgent_protection": False, "measures_taken": "",
            "assessed_by": "Lê Văn Cường", "assessed_at": now.isoformat()})
        assert answer.status_code == 200, answer.text
        answer = http.post(f"/v1/incidents/{incident_id}/detailed-assessment", json={
            "meeting_at": now.isoformat(), "participants": "Công an xã, Trạm y tế, nhà trường, gia đình",
            "needs": "Chăm sóc y tế; hỗ trợ tâm lý; đi học lại", "assessed_by": "Lê Văn Cường"})
        assert answer.status_code == 200, answer.text


def test_the_plan_drafted_and_approved_on_a_phone(console_system, browser, artefacts):
    incident_id = report(console_system, "25349.hamlet.ap-2")
    _to_detailed_assessment(console_system, incident_id)
    due = datetime.now(VN).date() + timedelta(days=10)

    context, page = sign_in(browser, "b-cp", PHONE)
    page.goto(console_url(f"/cases/{incident_id}"))
    reloaded_until(page, "#plan-form", "the plan form")
    text = process_text(page)
    assert "Lập kế hoạch hỗ trợ, can thiệp (Mẫu 04), trong 5 ngày làm việc" in text and "Hạn: hết ngày " in text, text
    plan = page.locator("#plan-form")
    assert plan.locator("fieldset.task").count() == 3
    plan.get_by_label("Nhu cầu của trẻ và mục tiêu của kế hoạch").fill("Trẻ được chăm sóc y tế và trở lại trường")
    page.locator("#plan-tasks-0-task").fill("Khám và theo dõi vết thương, hỗ trợ tâm lý")
    page.locator("#plan-tasks-0-unit_id").select_option("25349.health")
    page.locator("#plan-tasks-0-due_on").fill(f"{due:%d/%m/%Y}")
    page.locator("#plan-tasks-0-cost_vnd").fill("500.000")
    page.locator("#plan-tasks-0-funding").fill("Ngân sách xã")
    page.locator("#plan-tasks-1-task").fill("Bố trí giáo viên kèm cặp, theo dõi đi học")
    plan.get_by_label("Người lập kế hoạch").fill("Lê Văn Cường")
    no_horizontal_scroll(page)
    axe_check(page, "the plan form at phone")
    shot(page, artefacts, "70-plan-form-phone")

    # The second task has no unit: refused, the row's field named, what was typed kept.
    page.get_by_role("button", name="Ghi kế hoạch").click()
    page.wait_for_load_state()
    assert "Nhiệm vụ 2, đơn vị thực hiện: chọn một đơn vị của xã." in page.locator("main").inner_text()
    assert page.locator("#plan-tasks-0-task").input_value() == "Khám và theo dõi vết thương, hỗ trợ tâm lý"
    assert page.locator("#plan-tasks-1-unit_id").get_attribute("aria-invalid") == "true"
    axe_check(page, "the refused plan at phone")
    shot(page, artefacts, "71-plan-refused-phone")

    # One more row (no script: the form comes back with four), then the school's task and a third.
    page.get_by_role("button", name="+ Thêm nhiệm vụ").click()
    page.wait_for_load_state()
    assert page.locator("#plan-form fieldset.task").count() == 4
    page.locator("#plan-tasks-1-unit_id").select_option(label="Trường Tiểu học Minh Tâm A")
    page.locator("#plan-tasks-1-due_on").fill(f"{due:%d/%m/%Y}")
    page.locator("#plan-tasks-3-task").fill("Thăm gia đình hằng tuần")
    page.locator("#plan-tasks-3-unit_id").select_option("25349.hamlet.ap-2")
    page.locator("#plan-tasks-3-due_on").fill(f"{due:%d/%m/%Y}")
    page.get_by_role("button", name="Ghi kế hoạch").click()
    page.wait_for_load_state()
    text = process_text(page)
    assert "Đã ghi kế hoạch hỗ trợ, can thiệp (Mẫu 04)." in text and "Nhiệm vụ (3)" in text, text
    assert f"hạn: hết ngày {due:%d/%m/%Y} · kinh phí 500.000 đ (Ngân sách xã)" in text, text
    no_horizontal_scroll(page)
    axe_check(page, "the recorded plan at phone")
    shot(page, artefacts, "72-plan-recorded-phone")
    context.close()

    # The chairman approves it, signing for the chairman (a deputy), on a phone.
    context, page = sign_in(browser, "b-chair", PHONE)
    page.goto(console_url(f"/cases/{incident_id}"))
    approval = page.locator("#plan_approval-form")
    assert "Kế hoạch trình phê duyệt (Mẫu 04, phiên bản 1)" in approval.inner_text()
    assert "Thăm gia đình hằng tuần" in approval.inner_text() and "Trường Tiểu học Minh Tâm A" in approval.inner_text()
    no_horizontal_scroll(page)
    axe_check(page, "the approval form at phone")
    shot(page, artefacts, "73-plan-approval-phone")
    approval.get_by_label("Số quyết định").fill("15/QĐ-UBND")
    approval.get_by_label("Người ký").fill("Võ Văn Bình")
    approval.get_by_label("Phó Chủ tịch (KT. Chủ tịch)").check()
    page.get_by_role("button", name="Phê duyệt kế hoạch").click()
    page.wait_for_load_state()
    text = process_text(page)
    assert "Đã phê duyệt kế hoạch (Mẫu 05)." in text and "Đang thực hiện kế hoạch" in text, text
    reloaded_until(page, "ol.timeline li:has-text('Chủ tịch UBND xã đã phê duyệt kế hoạch (Mẫu 05)')", "the approval on the timeline")
    no_horizontal_scroll(page)
    axe_check(page, "the approved plan at phone")
    shot(page, artefacts, "74-plan-approved-phone")
    context.close()

    # The school's inbox: its task's words and due day.
    context, page = sign_in(browser, "b-school", PHONE)
    page.goto(console_url("/inbox"))
    item = page.locator("article.item", has_text="Bố trí giáo viên kèm cặp")
    assert f"Hạn hoàn thành: hết ngày {due:%d/%m/%Y}" in item.inner_text()
    no_horizontal_scroll(page)
    axe_check(page, "the task in the inbox at phone")
    shot(page, artefacts, "75-plan-task-inbox-phone")
    context.close()

    context, page = sign_in(browser, "b-cp", DESKTOP)
    page.goto(console_url(f"/cases/{incident_id}"))
    assert "Đánh giá kết quả, mức độ nguy cơ (Mẫu 06)" in process_text(page)
    no_horizontal_scroll(page)
    axe_check(page, "the case in implementation at desktop")
    shot(page, artefacts, "76-plan-implementation-desktop")
    context.close()


def test_the_emergency_measures_form_on_a_phone(console_system, browser, artefacts):
    incident_id = report(console_system, "25349.hamlet.ap-2")
    with api(console_system, "routing", "25349.cp_officer") as http:
        def routed() -> bool:
            return http.get(f"/v1/incidents/{incident_id}/process").status_code == 200

        eventually(routed, timeout=40, what="routing has the case")
        answer = http.post(f"/v1/incidents/{incident_id}/assessment", json={
            "harm": "Bị đánh gây bầm tím ở tay", "danger_level": "high", "urgent_protection": True,
            "measures_taken": "Đưa đến trạm y tế xã", "assessed_by": "Lê Văn Cường", "assessed_at": datetime.now(UTC).isoformat()})
        assert answer.status_code == 200, answer.text
    context, page = sign_in(browser, "b-cp", PHONE)
    page.goto(console_url(f"/cases/{incident_id}"))
    form = page.locator("#emergency_measures-form")
    # A time that is no time (31 November) is refused by name, what was typed kept; typed right, it is recorded.
    form.get_by_label("Biện pháp can thiệp khẩn cấp đã áp dụng").fill("Tách trẻ khỏi người gây hại, đưa về nhà bà ngoại")
    form.get_by_label("Thời điểm thực hiện").fill("31/11/2026 10:00")
    form.get_by_label("Người, cơ quan thực hiện").fill("Công an xã")
    form.get_by_label("Có").check()
    page.get_by_role("button", name="Ghi biện pháp khẩn cấp").click()
    page.wait_for_load_state()
    assert "Thời điểm thực hiện: bắt buộc, ngày giờ theo dạng ngày/tháng/năm giờ:phút, ví dụ 30/11/2026 14:05." in page.locator("main").inner_text()
    assert page.locator("#emergency_measures-taken_by").input_value() == "Công an xã"
    no_horizontal_scroll(page)
    axe_check(page, "the refused emergency measures at phone")
    shot(page, artefacts, "77-emergency-measures-refused-phone")
    page.locator("#emergency_measures-taken_at").fill(datetime.now(VN).strftime("%d/%m/%Y %H:%M"))
    page.get_by_role("button", name="Ghi biện pháp khẩn cấp").click()
    page.wait_for_load_state()
    text = process_text(page)
    assert "Đã ghi biện pháp can thiệp khẩn cấp." in text and "Tách trẻ khỏi người gây hại" in text, text
    shot(page, artefacts, "78-emergency-measures-recorded-phone")
    context.close()
