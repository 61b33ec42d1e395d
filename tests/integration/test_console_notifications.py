"""The console's notification screen (issue 18) in process over intake's and routing's real APIs and databases, with
routing's real delivery loop sending to local receivers: the commune's cp_officer subscribes the unit (the webhook's
secret shown once), sees the failing endpoints and the delivery log, rotates a secret and stops a subscription; a form
refused names its fields in Vietnamese; other units and communes get 404, and only the cp_officer and admins see the menu."""

import re
from contextlib import asynccontextmanager

import httpx
import pytest

from services.console.app import Console
from services.routing.consumers import notify_work
from services.routing.notify import NotificationType
from shared.events import parse_payload
from shared.settings import CommonSettings, ConsoleSettings
from tests.integration.test_console_activities import csrf, intake_with_people, signed_in
from tests.integration.test_notify import Receiver, quick
from tests.routing_support import reported, route, routing_runtime
from tests.support import migrate

PEOPLE = (
    ("n-cp", "Lê Văn Cường", "unit", "25349.cp_officer"),
    ("n-police", "Nguyễn Văn An", "unit", "25349.police"),
    ("n-other-cp", "Trần Thị Mai", "unit", "25339.cp_officer"),
    ("n-admin", "Quản Trị", "admin", "admin"),
)
CP_OFFICER = "25349.cp_officer"


@asynccontextmanager
async def console_over_intake_and_routing(tmp_path, database_url, people, **routing_settings):
    """A console in process over intake (with these people) and routing, real APIs and databases; `app.intake`,
    `app.routing` are their runtimes."""
    intake = await intake_with_people(tmp_path, people)
    routing = await routing_runtime(tmp_path, database_url, **routing_settings)
    app = Console(ConsoleSettings(common=CommonSettings(data_dir=tmp_path), intake_url="http://intake", routing_url="http://routing"))
    await migrate(app)
    app.apis.clients["intake"] = httpx.AsyncClient(transport=httpx.ASGITransport(app=intake.api), base_url="http://intake")
    app.apis.clients["routing"] = httpx.AsyncClient(transport=httpx.ASGITransport(app=routing.api), base_url="http://routing")
    app.intake, app.routing = intake, routing
    try:
        yield app
    finally:
        await app.apis.close()
        await app.engine.dispose()
        for runtime in (intake, routing):
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()


@pytest.fixture
async def console(tmp_path, database_url):
    async with console_over_intake_and_routing(tmp_path, database_url, PEOPLE, notify=quick(retry_seconds=[3600.0, 3600.0])) as app:
        yield app


async def subscribe(browser: httpx.AsyncClient, **fields) -> httpx.Response:
    page = await browser.get("/notifications")
    return await browser.post(
        "/notifications", data={"csrf_token": csrf(page.text), "action": "create", "unit_id": CP_OFFICER, "commune": "25349", **fields}
    )


def subscription_ids(html: str) -> list[str]:
    return re.findall(r'data-subscription="([^"]+)"', html)


def article(html: str, subscription_id: str) -> str:
    return html.split(f'data-subscription="{subscription_id}"')[1].split("</article>")[0]


async def an_emergency_sent(routing) -> None:
    """An emergency routed to the cp_officer, its deliveries recorded as the notify consumer does, one delivery tick."""
    event = reported(category="injury", urgency="emergency")
    (routed,) = [e for e in await route(routing, event) if e.event_type == "incident.routed"]
    async with routing.sessionmaker() as session, session.begin():
        await notify_work(routing)(session, parse_payload(routed), routed)
    assert await routing.api.state.notifier.tick() == 3


class TestTheNotificationScreen:
    async def test_the_cp_officer_subscribes_sees_failing_endpoints_and_the_log_rotates_and_stops(self, console):
        async with Receiver([500, 500]) as failing, Receiver([410]) as gone:
            browser = await signed_in(console, "n-cp")
            page = await browser.get("/notifications")
            assert page.status_code == 200 and 'href="/notifications"' in page.text
            assert "Chưa có đơn vị nào đăng ký nhận thông báo." in page.text

            created = await subscribe(
                browser,
                channel="webhook",
                target=failing.url + "?key=abc",
                events=["assignment.created", "incident.closed"],
                quiet_start="22:00",
                quiet_end="06:00",
            )
            assert created.status_code == 201, created.text
            secret = re.search(r"whsec_[A-Za-z0-9+/=]+", created.text)[0]
            assert "chỉ hiện một lần" in created.text and created.headers["cache-control"] == "no-store"
            host = failing.url.split("/hooks")[0]
            assert f"{host}/…" in created.text and "/hooks/baove" not in created.text and "key=abc" not in created.text
            assert (await subscribe(browser, channel="webhook", target=gone.url, events="assignment.created")).status_code == 201
            mail = await subscribe(browser, channel="email", target="treem@ubnd-xa.vn", events="assignment.created")
            assert mail.status_code == 201 and "whsec_" not in mail.text

            page = await browser.get("/notifications")
            assert secret not in page.text and "whsec_" not in page.text, "the secret is shown once"
            first, second, third = subscription_ids(page.text)
            assert "Giờ yên lặng 22:00–06:00" in article(page.text, first) and "Vụ việc đã kết thúc" in article(page.text, first)
            assert "treem@ubnd-xa.vn" in article(page.text, third)

            await an_emergency_sent(console.routing)
            page = await browser.get("/notifications")
            assert "3 đăng ký đang gửi không được" in page.text
            card = article(page.text, first)
            assert "Đang gửi lỗi" in card and "Địa chỉ nhận trả lời lỗi (HTTP 500) · sẽ gửi lại lúc" in card
            assert "Đã ngừng: địa chỉ không còn" in article(page.text, second) and "410" in article(page.text, second)
            assert 'value="rotate"' not in article(page.text, second), "a disabled endpoint offers no actions"
            assert "Hệ thống chưa cấu hình máy chủ thư" in article(page.text, third)

            log = await browser.get(f"/notifications/{first}")
            assert log.status_code == 200 and "Việc mới được giao" in log.text and "Đang chờ gửi" in log.text
            assert "1 lần gửi" in log.text and "lần gửi tới" in log.text and "HTTP 500" in log.text
            delivery_id = failing.requests[0][0]["webhook-id"]
            assert delivery_id in log.text

            rotated = await browser.post(
                "/notifications", data={"csrf_token": csrf(page.text), "action": "rotate", "subscription_id": first, "commune": "25349"}
            )
            assert rotated.status_code == 200 and "Khóa ký mới" in rotated.text
            assert re.search(r"whsec_[A-Za-z0-9+/=]+", rotated.text)[0] != secret

            stopped = await browser.post(
                "/notifications", data={"csrf_token": csrf(page.text), "action": "disable", "subscription_id": first, "commune": "25349"}
            )
            assert stopped.status_code == 303
            page = await browser.get(stopped.headers["location"])
            assert "Đã ngừng gửi thông báo theo đăng ký này." in page.text
            assert "Đã ngừng bởi 25349.cp_officer" in article(page.text, first) and 'value="disable"' not in article(page.text, first)
            assert "Đã hủy" in (await browser.get(f"/notifications/{first}")).text, "its pending delivery is dropped"

    async def test_a_refused_form_names_its_fields_in_vietnamese_and_keeps_what_was_typed(self, console):
        browser = await signed_in(console, "n-cp")
        answer = await subscribe(browser, channel="webhook", target="ftp://may-chu.vn/x", quiet_start="22:00")
        assert answer.status_code == 422
        assert (
            "Địa chỉ nhận: webhook phải là một địa chỉ http(s)" in answer.text
            and 'aria-describedby="target-help target-error"' in answer.text
        )
        assert "Báo tin khi: chọn ít nhất một loại tin." in answer.text
        assert "Giờ yên lặng: nhập cả giờ bắt đầu và giờ kết thúc" in answer.text
        assert 'value="ftp://may-chu.vn/x"' in answer.text and 'value="22:00"' in answer.text
        other_unit = await subscribe(browser, unit_id="25339.police", channel="email", target="a@b.vn", events="assignment.created")
        assert other_unit.status_code == 422 and "Đơn vị nhận: hãy chọn một đơn vị của xã." in other_unit.text
        queue = await subscribe(browser, channel="amqp", target="", events="assignment.overdue")
        assert queue.status_code == 201 and "agency.25349.cp_officer" in queue.text

    async def test_other_units_and_communes_get_404_and_see_no_menu(self, console):
        officer = await signed_in(console, "n-cp")
        assert (await subscribe(officer, channel="email", target="treem@ubnd-xa.vn", events="assignment.created")).status_code == 201
        (mine,) = subscription_ids((await officer.get("/notifications")).text)
        assert (await officer.get("/notifications?commune=25339")).status_code == 404
        assert (await officer.post("/notifications", data={"action": "disable", "subscription_id": mine})).status_code == 403, (
            "no CSRF token"
        )

        police = await signed_in(console, "n-police")
        page = await police.get("/inbox")
        assert 'href="/notifications"' not in page.text
        assert (await police.get("/notifications")).status_code == 404
        assert (await police.get(f"/notifications/{mine}")).status_code == 404
        answer = await police.post("/notifications", data={"csrf_token": csrf(page.text), "action": "disable", "subscription_id": mine})
        assert answer.status_code == 404

        neighbour = await signed_in(console, "n-other-cp")
        page = await neighbour.get("/notifications")
        assert page.status_code == 200 and mine not in page.text
        assert (await neighbour.get(f"/notifications/{mine}")).status_code == 404
        answer = await neighbour.post(
            "/notifications", data={"csrf_token": csrf(page.text), "action": "disable", "subscription_id": mine, "commune": "25339"}
        )
        assert answer.status_code == 404
        assert "Đang hoạt động" in article((await officer.get("/notifications")).text, mine)

        admin = await signed_in(console, "n-admin")
        page = await admin.get("/notifications?commune=25349")
        assert page.status_code == 200 and 'href="/notifications"' in page.text and mine in page.text
        assert '<select id="commune" name="commune">' in page.text
        assert mine not in (await admin.get("/notifications?commune=25339")).text


def test_the_kinds_of_notification_offered_are_routings():
    from services.console import vi

    assert set(vi.NOTIFY_EVENTS) == {t.value for t in NotificationType}
