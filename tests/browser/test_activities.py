"""The activity screen in Chromium at a phone's width: a hamlet's member records an inspection under task IV.10,
reporting's summary counts it, the member withdraws it and the summary no longer does; axe-core on the form."""

from __future__ import annotations

from tests.browser.conftest import api, axe_check, console_url, eventually, shot, sign_in


def hamlet_inspections(system) -> int:
    with api(system, "reporting", "25349.cp_officer") as http:
        answer = http.get("/v1/summaries/25349", params={"period": "2025-6M"})
    answer.raise_for_status()
    rows = answer.json()["activities"]["rows"]
    return sum(r["sites_inspected"] for r in rows if r["unit_id"] == "25349.hamlet.ap-2" and r["task"] == "IV.10")


def test_a_hamlet_member_records_and_withdraws_an_activity_from_the_phone(console_system, browser, artefacts):
    before = hamlet_inspections(console_system)
    context, page = sign_in(browser, "b-hamlet")
    page.get_by_role("link", name="Kết quả hoạt động").click()
    assert page.url == console_url("/activities")
    axe_check(page, "the activity form")
    page.get_by_label("Nhiệm vụ trong kế hoạch (mục IV)").select_option("IV.10")
    page.get_by_label("Loại hoạt động").select_option("inspection")
    page.get_by_label("Ngày thực hiện").fill("2025-03-02")
    page.get_by_label("Số buổi, lượt").fill("1")
    page.get_by_label("Số cơ sở, điểm được kiểm tra").fill("3")
    page.get_by_label("Số người tham dự").fill("12")  # an inspection counts no participants: refused, kept
    page.get_by_role("button", name="Ghi nhận kết quả").click()
    assert "Kết quả chưa được ghi nhận" in page.get_by_role("alert").inner_text()
    assert "không phù hợp với loại hoạt động" in page.locator("#counts-error").inner_text()
    assert page.get_by_label("Số cơ sở, điểm được kiểm tra").input_value() == "3"
    shot(page, artefacts, "40-activity-refused")
    page.get_by_label("Số người tham dự").fill("")
    page.get_by_role("button", name="Ghi nhận kết quả").click()
    assert page.get_by_role("status").inner_text() == "Đã ghi nhận kết quả hoạt động."
    shot(page, artefacts, "41-activity-recorded")
    eventually(lambda: hamlet_inspections(console_system) == before + 3, what="reporting counts the inspection")

    page.get_by_role("button", name="Rút lại").first.click()
    assert page.get_by_role("status").inner_text() == "Đã rút lại hoạt động."
    eventually(lambda: hamlet_inspections(console_system) == before, what="reporting drops the withdrawn inspection")
    context.close()
