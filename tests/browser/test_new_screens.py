"""The screens the privacy, report-document and duplicate work added, as their people see them on a phone (390 px) and
at a desk (1280 px): each in Vietnamese, passing axe-core, and showing a child's name only to whom the case belongs."""

from __future__ import annotations

from tests.browser.conftest import DESKTOP, PHONE, api, axe_check, console_url, eventually, shot, sign_in
from tests.support import incident_payload

CHILD = "Lê Thị Hoa Mai"
WIDTHS = {"phone": PHONE, "desktop": DESKTOP}


def report(system, unit: str, **child) -> str:
    body = incident_payload(
        hamlet="25349.hamlet.ap-2",
        description="Hàng xóm nghe tiếng trẻ khóc và bị đánh ở nhà",
        children=[{"full_name": CHILD, "sex": "female", "birth_date": "2015-04-09", "school": "25349.school.th-minh-tam-a",
                   "special_circumstances": [], **child}],
    )
    with api(system, "intake", unit) as http:
        answer = http.post("/v1/incidents", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()["incident_id"]


def both_widths(browser, username: str, path: str, artefacts, name: str, check) -> None:
    """Open `path` as `username` at each width, run `check(page)`, axe-core, and keep a full-page screenshot."""
    for width, viewport in WIDTHS.items():
        context, page = sign_in(browser, username, viewport)
        page.goto(console_url(path))
        check(page)
        axe_check(page, f"{name} at {width}")
        shot(page, artefacts, f"50-{name}-{width}")
        context.close()


def no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "the page scrolls sideways"


def test_the_cp_officer_sees_a_possible_duplicate_that_other_units_do_not(console_system, browser, artefacts):
    first = report(console_system, "25349.hamlet.ap-2")
    second = report(console_system, "25349.school.th-minh-tam-a", full_name="Le Thi Hoa Mai")  # no tones, as typed at school

    def listed(page) -> None:
        def shown() -> bool:
            page.reload()  # (its Response is truthy: the check must be on its own line, not `reload() or …`)
            return page.locator("#duplicates").count() == 1

        eventually(shown, timeout=40, what="the duplicate listed")
        section = page.locator("section", has=page.locator("#duplicates")).inner_text()
        assert first in section and CHILD in section and "liên kết" in section
        no_horizontal_scroll(page)

    both_widths(browser, "b-cp", f"/cases/{second}", artefacts, "cp-officer-possible-duplicate", listed)

    def unlisted(page) -> None:
        text = page.locator("main").inner_text()
        assert "Có thể trùng" not in text
        no_horizontal_scroll(page)

    both_widths(browser, "b-school", f"/cases/{second}", artefacts, "school-case-no-duplicates", unlisted)


def test_the_report_document_screen_for_the_officer_and_not_for_a_unit(console_system, browser, artefacts):
    def drafting(page) -> None:
        text = page.locator("main").inner_text()
        assert "Báo cáo công tác trẻ em: xã Minh" in text and "xã xã" not in text and "Hạn gửi huyện: 10/05/2025" in text, text[:500]
        no_horizontal_scroll(page)

    both_widths(browser, "b-cp", "/reports/25349/document?period=2025-6M", artefacts, "report-document", drafting)
    context, page = sign_in(browser, "b-police")
    assert page.goto(console_url("/reports/25349/document?period=2025-6M")).status == 404
    context.close()


def test_the_districts_statuses_and_the_admins_audit(console_system, browser, artefacts):
    def statuses(page) -> None:
        assert "Minh" in page.locator("main").inner_text()
        no_horizontal_scroll(page)

    both_widths(browser, "b-district", "/districts/694?period=2025-6M", artefacts, "district-report-statuses", statuses)
    with api(console_system, "reporting", "25349.police") as http:  # a refusal, which the audit now records
        assert http.get("/v1/summaries/25339", params={"period": "2025"}).status_code in (403, 404)

    def audit(page) -> None:
        text = page.locator("main").inner_text()
        assert "Truy cập bị từ chối" in text, text[:800]

    both_widths(browser, "b-admin", "/admin/audit", artefacts, "admin-audit-refusals", audit)


def test_an_erased_case_shows_no_child_to_the_cp_officer(console_system, browser, artefacts):
    report(console_system, "25349.hamlet.ap-2")
    incident_id = report(console_system, "25349.school.th-minh-tam-a", full_name="Le Thi Hoa Mai")
    with api(console_system, "intake", "25349.cp_officer") as http:
        eventually(lambda: http.get(f"/v1/incidents/{incident_id}/duplicates").json()["items"], timeout=40,
                   what="the earlier report paired with it")
    console_system.cli("erase", "--incident", incident_id, "--reason", "yêu cầu của người giám hộ")

    def erased(page) -> None:
        # Not even through the earlier report it was paired with: the pairing is erased with it.
        text = page.locator("main").inner_text()
        assert "Đã xoá dữ liệu cá nhân" in text and CHILD not in text and "tiếng trẻ khóc" not in text, text
        assert "Có thể trùng" not in text
        # What is kept reads as kept (the age band), what is gone reads as erased, not as an empty field.
        assert "Đã xoá cùng dữ liệu cá nhân của vụ việc" in text and "không rõ tuổi" not in text, text
        no_horizontal_scroll(page)

    both_widths(browser, "b-cp", f"/cases/{incident_id}", artefacts, "erased-case", erased)
