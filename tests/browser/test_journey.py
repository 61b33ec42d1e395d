"""The journey of issue 14 in Chromium at a phone's width: a hamlet head reports, the police act on it without
reloading, the school sees the minimal view, the cp_officer closes it, the district sees the count and its XLSX."""

from __future__ import annotations

import io
import re
from pathlib import Path

from openpyxl import load_workbook

from tests.browser.conftest import DESKTOP, api, axe_check, console_url, eventually, shot, sign_in

SCHOOL = "25349.school.th-minh-tam-a"


def district_count(page, commune: str) -> int:
    return int(page.locator(f"tr[data-commune='{commune}'] td.incidents").inner_text().replace(".", ""))


def test_the_journey(console_system, browser, artefacts):
    # District 694 was abolished on 1 July 2025 (shared/reference): the incident happened before, in March 2025.
    period = "2025"

    # The district officer looks at the overview first (a desktop screen).
    district_ctx, district = sign_in(browser, "b-district", DESKTOP)
    assert district.url.endswith("/districts/694")
    district.goto(console_url(f"/districts/694?period={period}"))
    before = district_count(district, "25349")
    axe_check(district, "district overview")

    # The police officer has the inbox open on a phone.
    police_ctx, police = sign_in(browser, "b-police")
    assert police.url.endswith("/inbox")
    police.evaluate("window.notReloaded = true")
    axe_check(police, "inbox")
    shot(police, artefacts, "01-police-inbox-before")

    # The hamlet head reports: a first try without a description keeps what was typed and says what is missing.
    hamlet_ctx, hamlet = sign_in(browser, "b-hamlet")
    hamlet.goto(console_url("/cases/new"))
    assert hamlet.locator("html").get_attribute("lang") == "vi"
    axe_check(hamlet, "report form")
    hamlet.get_by_label("Loại vụ việc").select_option("sexual_abuse")
    hamlet.get_by_label("Mức độ khẩn cấp").select_option("emergency")
    hamlet.get_by_label("Kênh tiếp nhận").select_option("hamlet")
    hamlet.get_by_label("Thời gian xảy ra (nếu biết)").fill("2025-03-02T08:00")
    assert hamlet.get_by_label("Ấp, sóc nơi xảy ra").input_value() == "25349.hamlet.ap-2"
    hamlet.locator("#children-0-sex").select_option("female")
    hamlet.get_by_label("Hoặc tuổi ước tính").fill("9")
    hamlet.get_by_label("Trường đang học").select_option(SCHOOL)
    hamlet.get_by_role("button", name="Gửi báo cáo").click()
    assert hamlet.locator("#description-error").inner_text() == "Mô tả ngắn gọn sự việc."
    assert hamlet.locator("#children-0-sex").input_value() == "female"
    assert hamlet.get_by_label("Hoặc tuổi ước tính").input_value() == "9"
    axe_check(hamlet, "report form with errors")
    shot(hamlet, artefacts, "02-hamlet-report-errors")
    hamlet.get_by_label("Mô tả sự việc, địa điểm cụ thể").fill("Cháu gái bị người lạ sàm sỡ gần bến đò Ấp 2, chiều nay.")
    hamlet.get_by_role("button", name="Gửi báo cáo").click()
    receipt = hamlet.locator(".notice .case-number")
    incident_id = receipt.inner_text().strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", incident_id), incident_id
    assert hamlet.url.startswith(console_url(f"/cases/{incident_id}"))
    axe_check(hamlet, "receipt")
    shot(hamlet, artefacts, "03-hamlet-receipt")

    # It appears in the police inbox without a reload, emergency and due soon.
    item = police.locator("article.item", has=police.locator(f"a[href='/cases/{incident_id}']"))
    item.wait_for(timeout=20_000)
    assert police.evaluate("window.notReloaded === true"), "the inbox reloaded instead of updating itself"
    assert "Khẩn cấp" in item.inner_text()
    assert re.search(r"còn \d+ phút", item.inner_text()), item.inner_text()
    axe_check(police, "inbox with the new emergency")
    shot(police, artefacts, "04-police-inbox-new-emergency")
    item.get_by_role("button", name="Tiếp nhận").click()
    police.wait_for_load_state()
    item = police.locator("article.item", has=police.locator(f"a[href='/cases/{incident_id}']"))
    assert "Đã tiếp nhận" in item.inner_text()
    item.get_by_role("button", name="Bắt đầu xử lý").click()
    item = police.locator("article.item", has=police.locator(f"a[href='/cases/{incident_id}']"))
    item.get_by_role("button", name="Hoàn thành").click()
    police.goto(console_url(f"/cases/{incident_id}"))
    assert "Hoàn thành" in police.locator("#my-task").locator("..").inner_text()
    axe_check(police, "case page of the police")
    shot(police, artefacts, "05-police-case-done")

    # The school, a support unit that does not meet the child, sees the minimal view only.
    school_ctx, school = sign_in(browser, "b-school")
    school.goto(console_url(f"/cases/{incident_id}"))
    body = school.locator("main").inner_text()
    assert "Thông tin tối thiểu" in body and "Nữ" in body and "9 tuổi" in body
    assert "bến đò" not in body and "Mô tả" not in body, "the minimal view shows the description or its heading"
    axe_check(school, "minimal case view")
    shot(school, artefacts, "06-school-minimal-view")

    # The other units finish their part over the API, then the cp_officer reviews and closes the case.
    for unit in ("25349.health", "25349.chairman", SCHOOL, "25349.hamlet.ap-2", "25349.cp_officer"):
        with api(console_system, "routing", unit) as http:
            answer = http.get(f"/v1/agencies/{unit}/assignments", params={"limit": 500})
            assert answer.status_code == 200, (unit, answer.text)
            [mine] = [a for a in answer.json()["items"] if a["incident_id"] == incident_id]
            base = f"/v1/agencies/{unit}/assignments/{mine['assignment_id']}"
            assert http.post(f"{base}/acknowledge").status_code == 200
            for status in ("in_progress", "done"):
                assert http.post(f"{base}/status", json={"status": status}).status_code == 200
    cp_ctx, cp = sign_in(browser, "b-cp")
    cp.goto(console_url(f"/cases/{incident_id}"))
    times = eventually(lambda: _timeline_if_complete(cp, incident_id), what="the whole timeline on the case page")
    assert times == sorted(times), "the timeline is not in order"
    assert cp.locator("ol.timeline li").first.inner_text().split("·")[1].strip().startswith("Tiếp nhận báo cáo")
    assert "bến đò" in cp.locator("main").inner_text()
    axe_check(cp, "case page of the cp_officer")
    cp.get_by_label("Mức độ nguy cơ (Mẫu 06)").select_option("high")
    cp.get_by_label("Kết quả xử lý").fill("Đã phối hợp công an xử lý, trẻ được tư vấn tâm lý.")
    cp.get_by_role("button", name="Kết thúc vụ việc").click()
    cp.wait_for_load_state()
    assert cp.locator("p.error").count() == 0, cp.locator("p.error").inner_text()
    def closed():
        cp.reload()
        return "Đã kết thúc" in cp.locator("main h1 + p").inner_text()

    eventually(closed, what="the case shown closed")
    assert cp.get_by_role("button", name="Mở lại").count() == 1
    shot(cp, artefacts, "07-cp-officer-closed")

    # The district sees the commune's count go up, and the XLSX has the page's numbers.
    def counted():
        district.reload()
        return district_count(district, "25349") == before + 1

    eventually(counted, timeout=30, what="the district count going up")
    # The monthly trend counts the report in the month it happened (2 March 2025), with its number beside the bar.
    trend = district.locator("section.chart", has=district.get_by_role("heading", name="Vụ việc theo tháng"))
    march = trend.locator("tr", has_text="Tháng 3/2025").locator("td.num").inner_text()
    assert int(march.replace(".", "")) >= 1, march
    axe_check(district, "district overview after the report")
    shot(district, artefacts, "08-district-overview")
    district.set_viewport_size({"width": 390, "height": 844})
    shot(district, artefacts, "09-district-overview-phone")
    with district.expect_download() as download:
        district.get_by_role("link", name="Excel (XLSX)").click()
    book = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    page_numbers = {
        row.get_attribute("data-commune"): int(row.locator("td.incidents").inner_text().replace(".", ""))
        for row in district.locator("tr[data-commune]").all()
    }
    cells = _xlsx_incidents(book)
    assert cells.keys() == page_numbers.keys()
    for code, number in page_numbers.items():
        # A commune's column is below district level: a count of 1-4 shows as "<5", and one that would give such a
        # count away by subtraction as "x" (small-cell protection of the exports); every other cell is the page's number.
        assert cells[code] == number or (cells[code] == "<5" and 0 < number < 5) or cells[code] == "x", (code, cells[code], number)
    for ctx in (district_ctx, police_ctx, hamlet_ctx, school_ctx, cp_ctx):
        ctx.close()


def _timeline_if_complete(page, incident_id: str) -> list[str] | None:
    page.goto(console_url(f"/cases/{incident_id}"))
    entries = page.locator("ol.timeline > li time").all()
    text = page.locator("ol.timeline").inner_text()
    if "Đơn vị đã hoàn thành" not in text or text.count("Đơn vị đã hoàn thành") < 6:
        return None
    return [e.get_attribute("datetime") for e in entries]


def _xlsx_incidents(book) -> dict[str, int | str]:
    """Commune code -> `Tổng số vụ việc` from the summary sheet (headings `Name (code)` after the total column): a
    number, or the "<5" / "x" of a hidden small cell."""
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    heading = next(i for i, r in enumerate(rows) if r and r[0] == "Nhóm chỉ tiêu")
    codes = [re.search(r"\((\d{5})\)$", str(h)).group(1) for h in rows[heading][4:] if h]
    total = next(r for r in rows[heading + 1:] if r[0] == "Tổng số vụ việc" and not r[1])
    return {code: value if value in ("<5", "x") else int(value or 0) for code, value in zip(codes, total[4:], strict=False)}
