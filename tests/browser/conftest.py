"""The three services and the console as real processes on ports 19001-19004, people to sign in as,
and Chromium driven by Playwright (Debian's /usr/bin/chromium: `playwright install` cannot download here)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.harness import System
from tests.support import eventually as _eventually

PORTS = {"intake": 19001, "routing": 19002, "reporting": 19003, "console": 19004}
CHROMIUM = os.environ.get("BAOVE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PASSWORD = "Tre-em-an-toan-2026"
# username -> (kind, subject): the people of the journey, and one of another commune.
PEOPLE = {
    "b-hamlet": ("unit", "25349.hamlet.ap-2"),
    "b-police": ("unit", "25349.police"),
    "b-school": ("unit", "25349.school.th-minh-tam-a"),
    "b-cp": ("unit", "25349.cp_officer"),
    "b-police-other": ("unit", "25339.police"),
    "b-district": ("district", "694"),
    "b-admin": ("admin", "admin"),
    "b-justice": ("unit", "25349.justice"),
    "b-chair": ("unit", "25349.chairman"),
}
FIRST_SIGN_IN = ("b-new", "unit", "25349.womens_union")  # created with a one-time password
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
ARTEFACTS = Path(os.environ.get("BAOVE_BROWSER_ARTEFACTS", Path(__file__).resolve().parents[2] / "var" / "browser-artefacts"))


# Machine tokens for the steps the test does over the API (other units finishing their part).
TOKEN_UNITS = ("25349.health", "25349.chairman", "25349.school.th-minh-tam-a", "25349.hamlet.ap-2", "25349.cp_officer", "25349.police")


async def _add_people(env: dict[str, str]) -> dict[str, str]:
    from shared import auth
    from shared.db import make_engine, make_sessionmaker
    from shared.people import add_person
    from shared.settings import CommonSettings

    engine = make_engine(CommonSettings(data_dir=Path(env["BAOVE_DATA_DIR"])).auth_url())
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            for username, (kind, subject) in PEOPLE.items():
                await add_person(session, username, "Nguyễn Thị Lan", kind, subject, password=PASSWORD, created_by="test")
            username, kind, subject = FIRST_SIGN_IN
            one_time = await add_person(session, username, "Trần Văn Bình", kind, subject, created_by="test")
            tokens = {unit: await auth.issue_token(session, "unit", unit, label=f"browser-test-{unit}") for unit in TOKEN_UNITS}
            return tokens | {f"one-time:{username}": one_time}
    finally:
        await engine.dispose()


@pytest.fixture(scope="package")
def console_system(amqp_url, tmp_path_factory):
    """Stopped when tests/browser is done, so its processes do not load the machine under the later tests."""
    for service, port in PORTS.items():
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        except httpx.HTTPError:
            continue
        pytest.fail(f"port {port} is taken (a {service} left running?): the browser tests need 19001-19004")
    # The harness's System on the browser tests' own ports, the console among them.
    running = System(tmp_path_factory.mktemp("console"), amqp_url, PORTS, extra_env={"BAOVE_CONSOLE_POLL_SECONDS": "2"})
    running.prepare()
    running.tokens = asyncio.run(_add_people(running.env))
    try:
        for service in PORTS:
            running.start(service)
        for service in PORTS:
            running.wait_ready(service)
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module: Playwright's sync API holds the thread's event loop while it runs, so it
    must stop before the async tests of the same pytest session."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (scripts/bootstrap.sh --test does)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def artefacts() -> Path:
    """Screenshots of each step, kept after the run (CI uploads the folder)."""
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
    ARTEFACTS.mkdir(parents=True)
    print(f"\nbrowser screenshots: {ARTEFACTS}")
    return ARTEFACTS


def console_url(path: str = "") -> str:
    return f"http://127.0.0.1:{PORTS['console']}{path}"


def submit_sign_in(browser, username: str, password: str, viewport=PHONE):
    """A fresh browser context (its own cookies) that has sent the sign-in form; returns (context, page)."""
    # bypass_csp lets the test inject axe-core; the policy itself is checked in test_security.
    context = browser.new_context(viewport=viewport, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", bypass_csp=True,
                                  accept_downloads=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(console_url("/login"))
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_load_state()
    return context, page


def sign_in(browser, username: str, viewport=PHONE):
    """A fresh browser context signed in as `username` with the tests' password; returns (context, page)."""
    context, page = submit_sign_in(browser, username, PASSWORD, viewport)
    assert "/login" not in page.url, page.content()[:2000]
    return context, page


AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def axe_check(page, what: str) -> None:
    """axe-core on the current page: no serious or critical violation."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{what}: {bad}"


def shot(page, artefacts: Path, name: str) -> None:
    page.screenshot(path=str(artefacts / f"{name}.png"), full_page=True)


def eventually(check, timeout: float = 20.0, what: str = "condition"):
    """tests.support.eventually with the longer wait a page round trip needs."""
    return _eventually(check, timeout=timeout, what=what, interval=0.2)


def api(system, service: str, token_of: str) -> httpx.Client:
    return system.http(service, token_of)
