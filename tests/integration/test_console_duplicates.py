"""The case page's "Có thể trùng" list (issue 17) in process over intake's real API and database: the commune's
cp_officer sees the other report of the same child and links it; other units see no such list."""

import httpx
import pytest

from services.intake import service
from shared.db import make_engine, make_sessionmaker, utcnow
from shared.people import add_person
from tests.integration import test_console_activities
from tests.integration.test_console_activities import PASSWORD, csrf, signed_in
from tests.support import bearer, client, incident_payload, issue_token, make_runtime, migrate

SCHOOL = "25349.school.th-minh-tam-a"


@pytest.fixture
async def intake(tmp_path):
    runtime = make_runtime("intake", tmp_path)
    await migrate(runtime)
    engine = make_engine(runtime.common.auth_url())
    async with make_sessionmaker(engine)() as session, session.begin():
        await add_person(session, "c-cp", "Lê Văn Cường", "unit", "25349.cp_officer", password=PASSWORD, created_by="test")
        await add_person(session, "c-school", "Phạm Thị Dung", "unit", SCHOOL, password=PASSWORD, created_by="test")
    await engine.dispose()
    runtime.tokens = {"school": await issue_token(runtime, "unit", SCHOOL), "hamlet": await issue_token(runtime, "unit", "25349.hamlet.ap-2")}
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


console = test_console_activities.console  # the console over this module's intake


async def no_assignments(console) -> None:
    """Routing has no assignment of the unit: the case page reads intake's case alone."""
    await console.apis.clients["routing"].aclose()
    console.apis.clients["routing"] = httpx.AsyncClient(
        transport=httpx.MockTransport(
            lambda request: httpx.Response(404, json={"detail": "no such case"}) if request.url.path.endswith("/process")
            else httpx.Response(200, json={"items": [], "next_cursor": None})
        ),
        base_url="http://routing",
    )


async def report(intake, who, name, **child):
    body = incident_payload(occurred_at=None, children=[{"full_name": name, "sex": "male", "special_circumstances": [], **child}])
    async with client(intake) as http:
        answer = await http.post("/v1/incidents", json=body, headers=bearer(intake.tokens[who]))
    return answer.json()["incident_id"]


async def test_the_cp_officer_sees_the_other_report_and_links_it(console, intake):
    first = await report(intake, "school", "Hoàng Minh Tuấn", birth_date="2015-08-20", school=SCHOOL)
    second = await report(intake, "hamlet", "Hoang Minh Tuan", birth_date="2015-08-20")
    async with intake.unit_of_work() as uow:
        assert await service.check_duplicates(uow, 80.0, utcnow()) == 2
    await no_assignments(console)
    browser = await signed_in(console, "c-cp")
    page = await browser.get(f"/cases/{second}")
    assert page.status_code == 200 and "Có thể trùng (1)" in page.text
    assert first in page.text and "Hoàng Minh Tuấn" in page.text and "Chưa xem xét" in page.text
    answer = await browser.post(f"/cases/{second}", data={"action": "link_duplicate", "other_id": first, "csrf_token": csrf(page.text)})
    assert answer.status_code == 303, answer.text
    after = await browser.get(f"/cases/{second}")
    assert "Đã liên kết (cùng một trẻ em)" in after.text and "Liên kết với hồ sơ cùng trẻ em" in after.text
    assert 'value="link_duplicate"' not in after.text
    other_side = await browser.get(f"/cases/{first}")
    assert second in other_side.text and "Đã liên kết (cùng một trẻ em)" in other_side.text
    # The reporting school reads its own case, without the list.
    school = await signed_in(console, "c-school")
    own = await school.get(f"/cases/{first}")
    assert own.status_code == 200 and "Có thể trùng" not in own.text
