"""The console's activity screen in process over intake's real API and database: a unit's member records an
activity from the phone form, sees it, and withdraws it; the form's refusals are in Vietnamese."""

import re

import httpx
import pytest

from services.console.app import Console
from shared.db import make_engine, make_sessionmaker
from shared.people import add_person
from shared.settings import CommonSettings, ConsoleSettings
from tests.support import make_runtime, migrate

PASSWORD = "Tre-em-an-toan-2026"


@pytest.fixture
async def intake(tmp_path):
    runtime = make_runtime("intake", tmp_path)
    await migrate(runtime)
    engine = make_engine(runtime.common.auth_url())
    async with make_sessionmaker(engine)() as session, session.begin():
        await add_person(session, "c-police", "Nguyễn Văn An", "unit", "25349.police", password=PASSWORD, created_by="test")
        await add_person(session, "c-police-2", "Trần Thị Bình", "unit", "25349.police", password=PASSWORD, created_by="test")
    await engine.dispose()
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


@pytest.fixture
async def console(tmp_path, intake):
    app = Console(ConsoleSettings(common=CommonSettings(data_dir=tmp_path), intake_url="http://intake"))
    await migrate(app)
    app.apis.clients["intake"] = httpx.AsyncClient(transport=httpx.ASGITransport(app=intake.api), base_url="http://intake")
    yield app
    await app.apis.close()
    await app.engine.dispose()


async def intake_with_people(tmp_path, people):
    """Intake migrated, with these people (username, full name, kind, subject) signing in with PASSWORD."""
    intake = make_runtime("intake", tmp_path)
    await migrate(intake)
    engine = make_engine(intake.common.auth_url())
    async with make_sessionmaker(engine)() as session, session.begin():
        for username, name, kind, subject in people:
            await add_person(session, username, name, kind, subject, password=PASSWORD, created_by="test")
    await engine.dispose()
    return intake


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


async def signed_in(console, username: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=console.api), base_url="http://console")
    page = await browser.get("/login")
    answer = await browser.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf(page.text)})
    assert answer.status_code == 303, answer.text
    return browser


FORM = {
    "action": "record", "task_id": "IV.7", "kind": "communication", "held_on": "2025-03-02",
    "counts-sessions": "2", "counts-participants_total": "80", "counts-participants_male": "30", "counts-participants_female": "50",
    "note": "Tuyên truyền tại nhà văn hóa Ấp 2",
}


class TestRecordingFromThePhone:
    async def test_a_member_records_sees_and_withdraws_the_units_activity(self, console):
        browser = await signed_in(console, "c-police")
        page = await browser.get("/activities")
        assert page.status_code == 200 and 'lang="vi"' in page.text
        assert "IV.7 – Công an xã" in page.text and "IV.8 – Đài Truyền thanh xã" in page.text  # its task, and one it supports
        assert "IV.4" not in page.text  # the health station's task is not offered
        answer = await browser.post("/activities", data={**FORM, "csrf_token": csrf(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/activities?done=recorded"
        page = await browser.get("/activities?done=recorded")
        assert "Đã ghi nhận kết quả hoạt động." in page.text and "02/03/2025" in page.text
        assert "Nữ: <strong>50</strong>" in page.text and "Rút lại" in page.text
        activity_id = re.search(r'name="activity_id" value="([^"]+)"', page.text)[1]

        colleague = await signed_in(console, "c-police-2")
        theirs = await colleague.get("/activities")
        assert "02/03/2025" in theirs.text and "Rút lại" not in theirs.text  # the unit's, but only its author withdraws

        answer = await browser.post("/activities", data={"action": "withdraw", "activity_id": activity_id, "csrf_token": csrf(page.text)})
        assert answer.headers["location"] == "/activities?done=withdrawn"
        page = await browser.get("/activities")
        assert "Đã rút lại" in page.text and "Rút lại</button>" not in page.text

    async def test_a_refusal_names_the_field_in_vietnamese_and_keeps_what_was_typed(self, console):
        browser = await signed_in(console, "c-police")
        page = await browser.get("/activities")
        bad = {**FORM, "counts-participants_male": "90", "note": "gọi 0912 345 678"}
        answer = await browser.post("/activities", data={**bad, "csrf_token": csrf(page.text)})
        assert answer.status_code == 422
        assert "không vượt quá tổng số người tham dự" in answer.text
        assert "không được chứa thông tin cá nhân" in answer.text
        assert 'value="90"' in answer.text  # what was typed is kept

    async def test_a_form_without_its_csrf_token_is_refused(self, console):
        browser = await signed_in(console, "c-police")
        answer = await browser.post("/activities", data=FORM)
        assert answer.status_code == 403


async def test_the_incident_form_still_renders_its_fields_from_the_shared_macros(console):
    browser = await signed_in(console, "c-police")
    page = await browser.get("/cases/new")
    assert page.status_code == 200 and '<select id="category" name="category" required>' in page.text
    answer = await browser.post("/cases/new", data={"action": "submit", "csrf_token": csrf(page.text)})
    assert answer.status_code == 422 and 'aria-describedby="category-error"' in answer.text
