"""The process records printed as forms (issue 17, point 4), over a real database (SQLite and PostgreSQL): the amended
plan (Mẫu 04) and the deputy's approval decision (Mẫu 05) as DOCX (read back with python-docx) and PDF (pdftoppm
renders it, pdftotext reads it), with the commune's People's Committee, the version each replaces and the signer; for
the commune's cp_officer and chairman only, and every print audited as a read of the case."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import pytest
from docx import Document

from shared import audit
from tests.integration.test_routing_case_process import (
    APPROVAL,
    ASSESSMENT,
    CHAIR,
    CP,
    DETAILED,
    HEALTH,
    MEASURES,
    POLICE,
    SCHOOL,
    care,
    new_case,
    now_iso,
    plan,
    process_of,
    record,
    today,
)
from tests.routing_support import close_runtime, routing_runtime
from tests.support import bearer, client, issue_token

ELSEWHERE = "25348.cp_officer"  # another commune's
PRINTED = "GET /v1/incidents/{incident_id}/process/records/{record_id}"


@pytest.fixture
async def routing(tmp_path, database_url):
    runtime = await routing_runtime(tmp_path, database_url)
    runtime.tokens = {unit: await issue_token(runtime, "unit", unit) for unit in (CP, CHAIR, POLICE, ELSEWHERE)}
    yield runtime
    await close_runtime(runtime)


async def planned_case(runtime) -> tuple[str, dict[tuple[str, int], str]]:
    """An emergency case up to the deputy's approval of its amended plan; its record ids by (form, version)."""
    incident_id = await new_case(runtime)
    await record(runtime, incident_id, "assessment", CP, ASSESSMENT | {"assessed_at": now_iso(90)})
    await record(runtime, incident_id, "emergency-measures", CP, MEASURES | {"taken_at": now_iso(80)})
    await record(runtime, incident_id, "care-decision", CHAIR, care())
    await record(runtime, incident_id, "detailed-assessment", CP, DETAILED | {"meeting_at": now_iso(30)})
    await record(runtime, incident_id, "plan", CP, plan())
    amended = plan(version=2)
    amended["tasks"][1] |= {"cost_vnd": 1_250_000, "funding": "Quỹ Bảo trợ trẻ em"}
    await record(runtime, incident_id, "plan", CP, amended)
    read = await record(runtime, incident_id, "plan-approval", CHAIR, APPROVAL)
    return incident_id, {(r["form"], r["version"]): r["record_id"] for r in read["records"]}


async def fetch(runtime, incident_id: str, record_id: str, fmt: str, unit: str = CP):
    async with client(runtime) as http:
        return await http.get(f"/v1/incidents/{incident_id}/process/records/{record_id}.{fmt}", headers=bearer(runtime.tokens[unit]))


def docx_text(content: bytes) -> str:
    doc = Document(io.BytesIO(content))
    cells = [p.text for t in doc.tables for row in t.rows for cell in row.cells for p in cell.paragraphs]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


def docx_rows(content: bytes, first_heading: str) -> list[list[str]]:
    doc = Document(io.BytesIO(content))
    [table] = [t for t in doc.tables if t.rows[0].cells[0].text == first_heading]
    return [[c.text for c in row.cells] for row in table.rows]


def pdf_text(content: bytes, folder: Path) -> str:
    """The PDF rendered to pages (pdftoppm must read it) and its text (pdftotext), spaces folded."""
    folder = Path(tempfile.mkdtemp(dir=folder))
    path = folder / "form.pdf"
    path.write_bytes(content)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(folder / "page")], check=True, capture_output=True)
    assert list(folder.glob("page*.png"))
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return " ".join(text.split())


def due_day() -> str:
    day = plan()["tasks"][0]["due_on"]
    return f"{day[8:10]}/{day[5:7]}/{day[:4]}"


class TestTheAmendedPlan:
    async def test_the_docx_prints_the_commune_the_version_it_replaces_and_each_task(self, routing):
        incident_id, ids = await planned_case(routing)
        answer = await fetch(routing, incident_id, ids[("plan", 2)], "docx")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert 'filename="mau-04-plan-v2.docx"' in answer.headers["content-disposition"]
        text = docx_text(answer.content)
        for words in (
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
            "Độc lập - Tự do - Hạnh phúc",
            "ỦY BAN NHÂN DÂN",
            "XÃ MINH ĐỨC",
            "Mẫu số 04",
            "KẾ HOẠCH HỖ TRỢ, CAN THIỆP",
            "Phiên bản 2, thay thế phiên bản 1",
            "(kế hoạch lần 2)",
            "NGƯỜI LẬP KẾ HOẠCH",
            "Cán bộ LĐ-TB&XH xã",
            "Tổng kinh phí: 1.750.000 đồng.",
        ):
            assert words in text, words
        rows = docx_rows(answer.content, "STT")
        assert rows[0] == ["STT", "Đơn vị thực hiện", "Nhiệm vụ", "Thời hạn hoàn thành", "Kinh phí (đồng)", "Nguồn kinh phí"]
        assert rows[1][2:] == ["Khám và theo dõi vết thương, hỗ trợ tâm lý", due_day(), "500.000", "ngân sách xã"]
        assert rows[2][2:] == ["Bố trí giáo viên kèm cặp, theo dõi đi học", due_day(), "1.250.000", "Quỹ Bảo trợ trẻ em"]
        assert rows[3][1] == "Tổng cộng" and rows[3][4] == "1.750.000"
        assert rows[1][1] != HEALTH and rows[2][1] != SCHOOL  # the units by name, not by id

    async def test_the_pdf_holds_the_same_and_the_first_version_says_it_was_replaced(self, routing, tmp_path):
        incident_id, ids = await planned_case(routing)
        answer = await fetch(routing, incident_id, ids[("plan", 2)], "pdf", CHAIR)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
        text = pdf_text(answer.content, tmp_path)
        for words in (
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
            "XÃ MINH ĐỨC",
            "Phiên bản 2, thay thế phiên bản 1",
            "Khám và theo dõi vết thương",
            due_day(),
            "1.250.000",
            "1.750.000 đồng",
            "Quỹ Bảo trợ trẻ em",
        ):
            assert words in text, words
        first = await fetch(routing, incident_id, ids[("plan", 1)], "pdf", CHAIR)
        old = pdf_text(first.content, tmp_path)
        assert "Phiên bản 1 (đã được thay thế bởi phiên bản 2)" in old and "(kế hoạch lần 1)" in old and "1.250.000" not in old
        approved = f"Đã được phê duyệt tại Quyết định số 15/QĐ-UBND ngày {today():%d/%m/%Y}"
        assert approved in text and approved not in old  # the approval names the version it approved


class TestTheApprovalDecision:
    async def test_the_deputys_decision_bears_its_number_the_approved_version_its_tasks_and_kt_chu_tich(self, routing, tmp_path):
        incident_id, ids = await planned_case(routing)
        docx = await fetch(routing, incident_id, ids[("plan_approval", 1)], "docx", CHAIR)
        pdf = await fetch(routing, incident_id, ids[("plan_approval", 1)], "pdf", CHAIR)
        assert docx.status_code == pdf.status_code == 200
        for text in (" ".join(docx_text(docx.content).split()), pdf_text(pdf.content, tmp_path)):
            for words in (
                "Mẫu số 05",
                "Số: 15/QĐ-UBND",
                "QUYẾT ĐỊNH",
                "Về việc phê duyệt Kế hoạch hỗ trợ, can thiệp",
                "CHỦ TỊCH ỦY BAN NHÂN DÂN XÃ MINH ĐỨC",
                "Phê duyệt Kế hoạch hỗ trợ, can thiệp (phiên bản 2",
                "Bố trí giáo viên kèm cặp",
                "1.750.000 đồng",
                "KT. CHỦ TỊCH",
                "PHÓ CHỦ TỊCH",
                "Trần Thị Phó",
                "đối với trẻ em Nguyễn Thị",
                "cư trú tại Ấp 2, xã Minh Đức",
                "Điều 3.",
            ):
                assert words in text, words
            day = today()
            assert f"Minh Đức, ngày {day.day:02d} tháng {day.month} năm {day.year}" in text
            assert "Phiên bản" not in text  # a decision never replaced is simply the decision

    async def test_the_initial_assessment_prints_its_levels_in_words(self, routing):
        incident_id, ids = await planned_case(routing)
        answer = await fetch(routing, incident_id, ids[("initial_assessment", 1)], "docx")
        text = docx_text(answer.content)
        for words in (
            "Mẫu số 02",
            "PHIẾU ĐÁNH GIÁ BAN ĐẦU",
            "Mức độ nguy hiểm đối với trẻ em: Cao",
            "Trẻ em cần được bảo vệ khẩn cấp: Có",
            "bị đánh gây thương tích ở tay",
            "NGƯỜI ĐÁNH GIÁ",
        ):
            assert words in text, words


class TestWhoMayPrint:
    async def test_the_police_unit_is_refused_another_commune_finds_nothing_and_each_print_is_audited(self, routing):
        incident_id, ids = await planned_case(routing)
        record_id = ids[("plan", 2)]
        assert (await fetch(routing, incident_id, record_id, "pdf", POLICE)).status_code == 403
        assert (await fetch(routing, incident_id, record_id, "docx", ELSEWHERE)).status_code == 404
        assert (await fetch(routing, incident_id, "no-such-record", "pdf")).status_code == 404
        other_id, _ = await planned_case(routing)
        assert (await fetch(routing, other_id, record_id, "pdf")).status_code == 404  # a record of another case
        assert (await fetch(routing, incident_id, record_id, "odt")).status_code == 422
        assert (await fetch(routing, incident_id, record_id, "docx", CHAIR)).status_code == 200
        await process_of(routing, incident_id, CHAIR)
        async with routing.auth_sessionmaker() as session:
            entries, _ = await audit.query(session, limit=100, incident_id=incident_id)
        reads = [(e["principal"], e["endpoint"]) for e in entries]
        assert reads.count((CHAIR, PRINTED)) == 1 and (CHAIR, "GET /v1/incidents/{incident_id}/process") in reads
        assert all(principal not in (POLICE, ELSEWHERE) for principal, _ in reads)
