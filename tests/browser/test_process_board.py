"""The "Quy trình bảo vệ" board (issue 17) as the commune's chairman reads it on a phone and at a desk: the cases in
the process by deadline, in Vietnamese, passing axe-core, with no sideways scroll and no child's name."""

from __future__ import annotations

from tests.browser.conftest import DESKTOP, PHONE, axe_check, console_url, eventually, shot, sign_in
from tests.browser.test_new_screens import CHILD, no_horizontal_scroll, report


def test_the_chairman_reads_the_board_on_a_phone_and_at_a_desk(console_system, browser, artefacts):
    incident_id = report(console_system, "25349.hamlet.ap-2")
    for width, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context, page = sign_in(browser, "b-chair", viewport)
        page.goto(console_url("/"))
        page.get_by_role("link", name="Quy trình bảo vệ").click()

        def listed() -> bool:
            page.reload()
            return page.locator(f"a[href='/cases/{incident_id}#process']").count() >= 1

        eventually(listed, timeout=40, what="the new case on the board")
        text = page.locator("main").inner_text()
        assert "Quy trình bảo vệ trẻ em" in text and "Chờ đánh giá ban đầu (Mẫu 02)" in text and "còn " in text, text
        assert CHILD not in text  # the board names no child
        no_horizontal_scroll(page)
        axe_check(page, f"the board at {width}")
        shot(page, artefacts, f"70-process-board-{width}")
        context.close()
