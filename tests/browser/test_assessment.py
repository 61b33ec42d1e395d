"""The initial assessment (Mẫu 02, issue 17) on the case page, as the commune's cp_officer records it on a phone
(390 px) and reads it at a desk (1280 px), and as the chairman reads it: in Vietnamese, passing axe-core, with no
sideways scroll; the step reaches the case's "Diễn biến" through routing's incident.step_changed."""

from __future__ import annotations

from tests.browser.conftest import DESKTOP, PHONE, api, axe_check, console_url, eventually, shot, sign_in
from tests.browser.test_new_screens import no_horizontal_scroll, report
from tests.support import incident_payload

SECTION = "Quy trình bảo vệ trẻ em"


def reloaded_until(page, selector: str, what: str) -> None:
    def there() -> bool:
        page.reload()
        return page.locator(selector).count() == 1

    eventually(there, timeout=40, what=what)


def process_text(page) -> str:
    return page.locator("section", has=page.locator("#process")).inner_text()


def test_the_cp_officer_records_the_initial_assessment_on_a_phone(console_system, browser, artefacts):
    incident_id = report(console_system, "25349.hamlet.ap-2")
    context, page = sign_in(browser, "b-cp", PHONE)
    page.goto(console_url(f"/cases/{incident_id}"))
    # Routing takes the report a moment after intake: the section appears once it has the case.
    reloaded_until(page, "#process", "the process section")
    text = process_text(page)
    assert "Đã tiếp nhận thông báo (Mẫu 01)" in text and "Đánh giá ban đầu (Mẫu 02), trong 12 giờ" in text and "còn " in text, text
    no_horizontal_scroll(page)
    axe_check(page, "the assessment form at phone")
    shot(page, artefacts, "60-assessment-form-phone")

    # Urgent with no measures: the console names the field, and keeps what was typed.
    page.get_by_label("Tổn hại hoặc nguy cơ tổn hại đối với trẻ").fill("Bị đánh gây bầm tím ở tay")
    page.get_by_label("Cao").check()
    page.get_by_label("Có", exact=True).check()
    page.get_by_label("Người đánh giá").fill("Lê Văn Cường")
    page.get_by_role("button", name="Ghi đánh giá ban đầu").click()
    page.wait_for_load_state()
    assert "Biện pháp đã thực hiện: bắt buộc khi trẻ cần bảo vệ khẩn cấp" in page.locator("main").inner_text()
    assert page.get_by_label("Người đánh giá").input_value() == "Lê Văn Cường"
    no_horizontal_scroll(page)
    axe_check(page, "the refused assessment at phone")
    shot(page, artefacts, "61-assessment-refused-phone")

    page.get_by_label("Biện pháp đã thực hiện (bắt buộc khi cần bảo vệ khẩn cấp)").fill("Đưa đến trạm y tế xã; tạm ở nhà bà ngoại")
    page.get_by_role("button", name="Ghi đánh giá ban đầu").click()
    page.wait_for_load_state()
    text = process_text(page)
    assert "Đã ghi đánh giá ban đầu (Mẫu 02)." in text and "Đã đánh giá ban đầu (Mẫu 02)" in text and "1 (hiện hành)" in text, text
    # The step reaches the timeline through the broker: routing's outbox, intake.timeline.
    reloaded_until(page, "ol.timeline li:has-text('Đã đánh giá ban đầu')", "the step on the timeline")
    no_horizontal_scroll(page)
    axe_check(page, "the recorded assessment at phone")
    shot(page, artefacts, "62-assessment-recorded-phone")
    context.close()

    # At a desk: the amendment form starts from the current version.
    context, page = sign_in(browser, "b-cp", DESKTOP)
    page.goto(console_url(f"/cases/{incident_id}"))
    assert "Sửa đổi đánh giá ban đầu" in process_text(page)
    assert not page.get_by_label("Người đánh giá").is_visible()  # the amendment is folded until asked for
    page.get_by_text("Sửa đổi đánh giá ban đầu (tạo phiên bản mới)").click()
    assert page.get_by_label("Người đánh giá").input_value() == "Lê Văn Cường"
    no_horizontal_scroll(page)
    axe_check(page, "the assessment at desktop")
    shot(page, artefacts, "63-assessment-desktop")
    context.close()


def test_the_chairman_reads_the_process_without_its_form(console_system, browser, artefacts):
    # An emergency goes to the chairman too (domain.md section 4): the case is theirs to open.
    with api(console_system, "intake", "25349.hamlet.ap-2") as http:
        answer = http.post("/v1/incidents", json=incident_payload(urgency="emergency", hamlet="25349.hamlet.ap-2"))
    assert answer.status_code == 202, answer.text
    incident_id = answer.json()["incident_id"]
    for width, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context, page = sign_in(browser, "b-chair", viewport)
        page.goto(console_url(f"/cases/{incident_id}"))
        reloaded_until(page, "#process", "the process section")
        assert "Đánh giá ban đầu (Mẫu 02), trong 12 giờ" in process_text(page)
        assert page.locator("form button[value=assess]").count() == 0
        no_horizontal_scroll(page)
        axe_check(page, f"the chairman's process at {width}")
        shot(page, artefacts, f"64-chairman-process-{width}")
        context.close()
