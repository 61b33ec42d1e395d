"""The notification screen (issue 18) as the commune's cp_officer uses it on a phone (390 px) and at a desk (1280 px):
subscribing the unit by webhook from the menu (its secret shown once), the endpoint failing in routing's real delivery
loop (a loopback address, refused as SSRF) marked red with the reason in Vietnamese, and its delivery log; each page
passing axe-core without sideways scrolling. Another unit neither sees the menu entry nor opens the page."""

from __future__ import annotations

import re

from tests.browser.conftest import DESKTOP, PHONE, api, axe_check, console_url, eventually, shot, sign_in
from tests.browser.test_new_screens import no_horizontal_scroll
from tests.support import incident_payload

WIDTHS = {"phone": PHONE, "desktop": DESKTOP}
HOOK = "http://127.0.0.1:9/hooks/baove?key=khong-hien"


def test_the_cp_officer_subscribes_and_sees_the_failing_endpoint_and_its_log(console_system, browser, artefacts):
    context, page = sign_in(browser, "b-cp", PHONE)
    page.get_by_role("link", name="Thông báo").click()
    page.wait_for_load_state()
    assert page.url.endswith("/notifications")
    page.get_by_label("Cách nhận").select_option("webhook")
    page.get_by_label("Địa chỉ nhận").fill("hooks.conganxa.vn")
    page.get_by_role("checkbox", name="Việc mới được giao").uncheck()
    page.get_by_role("checkbox", name="Quá hạn tiếp nhận").uncheck()
    page.get_by_role("checkbox", name="Vụ việc được chuyển lên").uncheck()
    page.get_by_role("button", name="Đăng ký").click()
    page.wait_for_load_state()
    form = page.locator("main").inner_text()
    assert "Đơn vị nhận: hãy chọn" in form and "Địa chỉ nhận: webhook phải là" in form and "Báo tin khi: chọn ít nhất" in form, form
    assert page.get_by_label("Địa chỉ nhận").input_value() == "hooks.conganxa.vn", "what was typed is kept"
    no_horizontal_scroll(page)
    axe_check(page, "the refused form")
    shot(page, artefacts, "60-notify-form-errors-phone")
    page.get_by_role("checkbox", name="Việc mới được giao").check()
    page.get_by_label("Đơn vị nhận").select_option("25349.cp_officer")
    page.get_by_label("Cách nhận").select_option("webhook")
    page.get_by_label("Địa chỉ nhận").fill(HOOK)
    page.get_by_role("button", name="Đăng ký").click()
    page.wait_for_load_state()
    secret = page.locator("#secret").inner_text()
    assert "chỉ hiện một lần" in secret and re.search(r"whsec_\S{40,}", secret), secret
    assert "key=khong-hien" not in page.content(), "a webhook's path and query are not shown"
    no_horizontal_scroll(page)
    axe_check(page, "the secret shown once")
    shot(page, artefacts, "60-notify-secret-phone")

    with api(console_system, "intake", "25349.hamlet.ap-2") as http:  # routed to the cp_officer, as every incident is
        assert http.post("/v1/incidents", json=incident_payload(description="Hàng xóm báo trẻ bị đánh")).status_code == 202

    def failing() -> bool:
        page.goto(console_url("/notifications"))
        return "Đang gửi lỗi" in page.locator("main").inner_text()

    eventually(failing, timeout=40, what="the delivery attempted and refused")
    assert "whsec_" not in page.content()
    context.close()

    for width, viewport in WIDTHS.items():
        context, page = sign_in(browser, "b-cp", viewport)
        page.goto(console_url("/notifications"))
        card = page.locator("article.subscription.late").first.inner_text()
        assert "Địa chỉ nội bộ, không được phép gửi đến" in card and "http://127.0.0.1:9/…" in card, card
        assert "đăng ký đang gửi không được" in page.locator("main").inner_text()
        no_horizontal_scroll(page)
        axe_check(page, f"the notification list at {width}")
        shot(page, artefacts, f"60-notify-list-{width}")
        page.locator("article.subscription.late").first.get_by_role("link", name="Nhật ký gửi").click()
        page.wait_for_load_state()
        log = page.locator("main").inner_text()
        assert "Việc mới được giao" in log and "Đang chờ gửi" in log and "lần gửi tới" in log, log
        no_horizontal_scroll(page)
        axe_check(page, f"the delivery log at {width}")
        shot(page, artefacts, f"60-notify-log-{width}")
        context.close()

    context, page = sign_in(browser, "b-police", PHONE)
    assert "Thông báo" not in page.locator("nav").inner_text()
    assert page.goto(console_url("/notifications")).status == 404
    context.close()
