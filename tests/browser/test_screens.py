"""The other screens in Chromium: sign-in messages, the first sign-in's password change, an ended session,
the cp_officer's reports and commune cases; axe-core on each, screenshots at a phone's width."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.browser.conftest import FIRST_SIGN_IN, axe_check, console_url, shot, sign_in, submit_sign_in


def _login(browser, username: str, password: str):
    return submit_sign_in(browser, username, password)


def test_wrong_password_is_said_in_vietnamese(console_system, browser, artefacts):
    context, page = _login(browser, "b-police", "not-the-password")
    assert "/login" in page.url
    assert page.get_by_role("alert").inner_text() == "Sai tên đăng nhập hoặc mật khẩu."
    assert page.get_by_label("Tên đăng nhập").input_value() == "b-police"
    axe_check(page, "sign-in with an error")
    shot(page, artefacts, "10-login-error")
    context.close()


def test_first_sign_in_changes_the_password(console_system, browser, artefacts):
    username = FIRST_SIGN_IN[0]
    context, page = _login(browser, username, console_system.tokens[f"one-time:{username}"])
    assert page.url.endswith("/password")
    page.goto(console_url("/inbox"))
    assert page.url.endswith("/password"), "the inbox opened before the password was changed"
    axe_check(page, "password change")
    page.get_by_label("Mật khẩu hiện tại").fill(console_system.tokens[f"one-time:{username}"])
    page.get_by_label("Mật khẩu mới (ít nhất 10 ký tự)").fill("ngan")
    page.get_by_label("Nhập lại mật khẩu mới").fill("ngan")
    page.get_by_role("button", name="Đổi mật khẩu").click()
    assert page.locator("#new_password-error").inner_text() == "Mật khẩu mới quá ngắn."
    shot(page, artefacts, "11-password-too-short")
    page.get_by_label("Mật khẩu hiện tại").fill(console_system.tokens[f"one-time:{username}"])
    page.get_by_label("Mật khẩu mới (ít nhất 10 ký tự)").fill("Cau-vong-sau-mua-7")
    page.get_by_label("Nhập lại mật khẩu mới").fill("Cau-vong-sau-mua-7")
    page.get_by_role("button", name="Đổi mật khẩu").click()
    assert page.url.endswith("/inbox")
    context.close()


def test_an_ended_session_says_so(console_system, browser):
    from shared import auth
    from shared.db import make_engine, make_sessionmaker
    from shared.settings import CommonSettings

    context, page = sign_in(browser, "b-justice")

    async def revoke() -> None:
        engine = make_engine(CommonSettings(data_dir=Path(console_system.data_dir)).auth_url())
        async with make_sessionmaker(engine)() as session, session.begin():
            await auth.revoke_tokens(session, subject="25349.justice")
        await engine.dispose()

    # Playwright's sync API holds this thread's event loop: the revocation runs in a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, revoke()).result()
    time.sleep(1.5)  # the services remember a token's answer for under a second
    page.goto(console_url("/inbox"))
    assert "/login" in page.url
    assert "Phiên làm việc đã hết hạn" in page.get_by_role("status").inner_text()
    context.close()


def test_the_commune_screens_of_the_cp_officer(console_system, browser, artefacts):
    context, page = sign_in(browser, "b-cp")
    page.goto(console_url("/communes/25349/cases?status=all"))
    assert page.locator("h1").inner_text().startswith("Vụ việc của xã ")
    axe_check(page, "commune cases")
    shot(page, artefacts, "12-commune-cases")
    page.goto(console_url("/reports/25349?period=2025"))
    assert page.locator("#incidents-total").count() == 1
    axe_check(page, "commune report")
    shot(page, artefacts, "13-commune-report")
    page.goto(console_url("/cases/new"))
    axe_check(page, "report form of the cp_officer")
    page.goto(console_url("/communes/25339/cases"))
    assert page.locator("h1").inner_text() == "Không tìm thấy"
    context.close()


def test_the_cp_officer_adds_a_person_who_then_signs_in(console_system, browser, artefacts):
    context, page = sign_in(browser, "b-cp")
    page.goto(console_url("/people"))
    axe_check(page, "people")
    page.get_by_label("Tên đăng nhập (chữ thường không dấu, số, dấu gạch ngang)").fill("b-radio")
    page.get_by_label("Họ và tên").fill("Lê Thị Hoa")
    page.get_by_label("Đơn vị").select_option("25349.radio")
    page.get_by_role("button", name="Thêm và cấp mật khẩu").click()
    one_time = page.locator("#one-time-password").inner_text()
    assert page.locator("ul.people li", has_text="b-radio").count() == 1
    shot(page, artefacts, "14-people")
    context.close()
    context, page = _login(browser, "b-radio", one_time)
    assert page.url.endswith("/password")
    context.close()
