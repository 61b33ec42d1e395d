"""Administration in Chromium: the unit registry, the routing rules (a bad file's error names its line; a good one
becomes the active version) and the read audit; axe-core on each, screenshots at a phone's width."""

from __future__ import annotations

from tests.browser.conftest import axe_check, console_url, shot, sign_in


def test_the_cp_officer_sees_the_communes_units_and_rules_but_not_the_audit(console_system, browser, artefacts):
    context, page = sign_in(browser, "b-cp")
    page.get_by_role("link", name="Đơn vị").click()
    assert page.url.endswith("/admin/units")
    units = page.locator("#units").inner_text()
    assert page.locator("#units li").count() > 5 and "25349.police" in units and "25339." not in units
    axe_check(page, "unit registry")
    shot(page, artefacts, "40-admin-units")
    assert page.goto(console_url("/admin/units?commune=25339")).status == 404
    page.goto(console_url("/admin/rules"))
    assert page.locator("#rules-version").inner_text()
    assert page.get_by_role("row", name="Xâm hại tình dục").count() == 1
    assert page.locator("#rules_text").count() == 0, "only admins load rules"
    axe_check(page, "routing rules, read only")
    assert page.goto(console_url("/admin/audit")).status == 404
    context.close()


def test_a_unit_sees_no_administration(console_system, browser):
    context, page = sign_in(browser, "b-police")
    for path in ("/admin/units", "/admin/rules", "/admin/audit"):
        assert page.goto(console_url(path)).status == 404, path
    context.close()


def test_an_admin_loads_rules_a_bad_file_named_by_its_line(console_system, browser, artefacts):
    context, page = sign_in(browser, "b-admin")
    page.goto(console_url("/admin/units?commune=25339"))
    assert "25339.police" in page.locator("#units").inner_text()
    page.goto(console_url("/admin/rules"))
    active = page.locator("#rules-version").inner_text()
    text = page.locator("#rules_text").input_value()
    assert f'version: "{active}"' in text
    bad = text.replace(f'version: "{active}"', 'version: "browser-bad"').replace("  injury:\n    lead: health", "  injury:\n    lead: polise")
    line = bad.splitlines().index("    lead: polise") + 1
    page.get_by_label("Chọn tệp quy tắc (.yaml) để đưa vào ô bên dưới").set_input_files(
        files=[{"name": "xa-25349.yaml", "mimeType": "text/yaml", "buffer": bad.encode("utf-8")}]
    )
    page.wait_for_function("text => document.getElementById('rules_text').value === text", arg=bad)
    page.get_by_role("button", name="Kiểm tra và áp dụng").click()
    error = page.locator("#rules_text-error").inner_text()
    assert f"xa-25349.yaml:{line}: categories.injury.lead: unknown unit type 'polise'" in error
    assert page.locator("#rules_text").input_value() == bad, "what was typed stays"
    assert page.locator("#rules-version").inner_text() == active
    axe_check(page, "routing rules with an error")
    shot(page, artefacts, "41-admin-rules-error")
    page.locator("#rules_text").fill(text.replace(f'version: "{active}"', 'version: "browser-1"'))
    page.get_by_role("button", name="Kiểm tra và áp dụng").click()
    assert page.get_by_role("status").inner_text().startswith("Đã nạp và áp dụng phiên bản browser-1")
    assert page.locator("#rules-version").inner_text() == "browser-1"
    shot(page, artefacts, "42-admin-rules-loaded")
    page.get_by_role("button", name="Kiểm tra và áp dụng").click()  # the same version again
    assert page.locator("#rules_text-error").inner_text().startswith("Phiên bản này đã được nạp trước đây")
    context.close()


def test_an_admin_reads_the_audit_with_filters(console_system, browser, artefacts):
    context, page = sign_in(browser, "b-admin")
    page.goto(console_url("/"))
    page.get_by_role("link", name="Nhật ký truy cập hồ sơ").click()
    assert page.locator("#audit li").count() > 0
    axe_check(page, "read audit")
    shot(page, artefacts, "43-admin-audit")
    first = page.locator("#audit li").all_inner_texts()
    assert "Đăng nhập" in page.locator("#audit").inner_text()
    page.get_by_role("link", name="Trang sau").click()
    assert page.locator("#audit li").count() > 0 and page.locator("#audit li").all_inner_texts() != first  # older entries
    page.get_by_role("link", name="Về trang đầu").click()
    page.get_by_label("Người/đơn vị truy cập (ví dụ 25349.police, admin)").fill("25349.cp_officer")
    page.get_by_role("button", name="Lọc").click()
    principals = page.locator("#audit .principal").all_inner_texts()
    assert principals and set(principals) == {"25349.cp_officer"}
    context.close()
