"""The console's report document screen over reporting's real API and database (in process, test clock): the officer
drafts and submits, the deputy chairman signs, the officer sends; the downloads are the documents; the district sees
the commune's report sent on time and downloads its consolidated report."""

from datetime import UTC, datetime

import httpx
import pytest

from services.console.app import Console
from shared.settings import CommonSettings, ConsoleSettings
from tests.integration.test_console_activities import csrf, intake_with_people, signed_in
from tests.integration.test_report_documents import NARRATIVE, fill
from tests.reporting_support import World
from tests.support import migrate

PEOPLE = (
    ("d-officer", "Lê Thị Hoa", "unit", "25349.cp_officer"),
    ("d-chair", "Nguyễn Quốc Trung", "unit", "25349.chairman"),
    ("d-district", "Phạm Văn Đông", "district", "694"),
)


@pytest.fixture
async def console(tmp_path, world: World):
    intake = await intake_with_people(tmp_path, PEOPLE)
    app = Console(ConsoleSettings(common=CommonSettings(data_dir=tmp_path), intake_url="http://intake", reporting_url="http://reporting"))
    await migrate(app)
    app.apis.clients["intake"] = httpx.AsyncClient(transport=httpx.ASGITransport(app=intake.api), base_url="http://intake")
    app.apis.clients["reporting"] = httpx.AsyncClient(transport=httpx.ASGITransport(app=world.runtime.api), base_url="http://reporting", timeout=120)
    yield app
    await app.apis.close()
    await app.engine.dispose()
    await intake.engine.dispose()
    await intake.auth_engine.dispose()


PAGE = "/reports/25349/document?period=2025-6M"


async def post(browser: httpx.AsyncClient, **fields) -> httpx.Response:
    page = await browser.get(PAGE)
    return await browser.post("/reports/25349/document", data={"csrf_token": csrf(page.text), "period": "2025-6M", **fields})


class TestTheReportScreen:
    async def test_drafted_signed_and_sent_from_the_console_then_seen_by_the_district(self, console, world: World):
        await fill(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        officer = await signed_in(console, "d-officer")
        page = await officer.get(PAGE)
        assert page.status_code == 200 and "Chưa có dự thảo" in page.text and "Lưu dự thảo" in page.text
        assert 'href="/reports/25349/document"' in page.text, "the menu leads to the report"
        saved = await post(officer, action="save", number="45/BC-UBND", **NARRATIVE)
        assert saved.status_code == 303
        page = await officer.get(saved.headers["location"])
        assert "Đã lưu dự thảo." in page.text and "Đang soạn thảo" in page.text and NARRATIVE["assessment"] in page.text
        assert (await post(officer, action="submit")).status_code == 303
        assert (await post(officer, action="approve", signer_name="X")).status_code == 403, "the officer does not sign"

        chairman = await signed_in(console, "d-chair")
        page = await chairman.get(PAGE)
        assert "Đã trình ký" in page.text and "Ký duyệt" in page.text and "Lưu dự thảo" not in page.text
        assert (await post(chairman, action="approve", signer_name="Nguyễn Quốc Trung", signed_as="deputy")).status_code == 303
        world.clock.now = datetime(2025, 5, 8, 2, tzinfo=UTC)
        sent = await post(officer, action="send")
        page = await officer.get(sent.headers["location"])
        assert "Đã gửi báo cáo lên huyện." in page.text and "Đã gửi huyện" in page.text and "đúng hạn" in page.text
        assert "KT. Chủ tịch, Phó Chủ tịch Nguyễn Quốc Trung ký" in page.text
        pdf = await officer.get("/reports/25349/export?period=2025-6M&revision=1&format=pdf")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
        docx = await chairman.get("/reports/25349/export?period=2025-6M&revision=1&format=docx")
        assert docx.status_code == 200 and docx.content.startswith(b"PK") and "bao-cao-25349-2025-6M-r1-v1.docx" in docx.headers["content-disposition"]

        district = await signed_in(console, "d-district")
        world.clock.now = datetime(2025, 5, 11, 2, tzinfo=UTC)
        page = await district.get("/districts/694?period=2025-6M")
        assert page.status_code == 200
        row = page.text.split('data-commune="25349"')[1].split("</tr>")[0]
        assert "Đã gửi huyện" in row and "Đúng hạn" in row
        assert "Trễ hạn" in page.text.split('data-commune="25339"')[1].split("</tr>")[0]
        consolidated = await district.get("/districts/694/consolidated?period=2025-6M&format=pdf")
        assert consolidated.status_code == 200 and consolidated.content.startswith(b"%PDF")
