"""The commune's report as an official document (issue 16): drafted, submitted, approved, sent; read back as DOCX and PDF.

Runs on SQLite and PostgreSQL, the API in process with a test clock (as test_reporting_generation.py). Every number of
the document's tables is read back (python-docx; pdftotext for the PDF) and compared with the JSON summary and with a
recount of the incidents the test itself fed in.
"""

from __future__ import annotations

import io
import re
import subprocess
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from docx import Document

from shared.enums import LABELS_VI, Role
from shared.events import (
    ActivityRecorded,
    ActivityWithdrawn,
    AssignmentAcknowledged,
    ChildCase,
    ChildFacts,
    Envelope,
    IncidentCase,
    IncidentClosureRecorded,
    IncidentFacts,
    IncidentReported,
)
from shared.plans import ActivityCounts
from tests.reporting_support import World, unit_tokens

VN = timezone(timedelta(hours=7))
pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "pdftotext"], capture_output=True).returncode != 0, reason="poppler-utils (pdftotext) not installed"
)

ABUSE_FORMS = ("sexual_abuse", "violence", "school_violence", "exploitation", "trafficking", "abandonment", "neglect", "online_abuse")
NARRATIVE = {
    "situation": "Toàn xã có 1.245 trẻ em dưới 16 tuổi; tình hình trẻ em trên địa bàn cơ bản ổn định.\nCác ấp, sóc đã rà soát trẻ em có hoàn cảnh đặc biệt.",
    "results": "Các ban, ngành, đoàn thể đã triển khai đầy đủ nhiệm vụ được giao theo Kế hoạch.",
    "incidents": "Các vụ việc được tiếp nhận, phân công xử lý kịp thời; phối hợp với Công an xã xác minh.",
    "assessment": "Ưu điểm: sự phối hợp giữa các đơn vị chặt chẽ. Hạn chế: một số ấp báo cáo chậm, nguồn lực còn thiếu.",
    "next_tasks": "Tiếp tục tuyên truyền phòng, chống xâm hại, tai nạn thương tích, đuối nước trẻ em trong dịp hè.",
    "recommendations": "Đề nghị Phòng Văn hóa - Xã hội huyện hỗ trợ tập huấn kỹ năng cho cộng tác viên ấp, sóc.",
}


@dataclass(frozen=True)
class Fed:
    """One incident as the test fed it: the truth the document is recounted against."""

    category: str
    urgency: str
    children: tuple[tuple[str, str], ...]  # (sex, age band)
    closed: bool = False
    acknowledged_by: str | None = None  # a unit type, acknowledged within its deadline


INCIDENTS = (
    Fed("violence", "high", (("female", "6-10"), ("male", "11-15")), closed=True, acknowledged_by="police"),
    Fed("violence", "emergency", (("male", "0-5"),), acknowledged_by="police"),
    Fed("sexual_abuse", "emergency", (("female", "11-15"),), closed=True, acknowledged_by="health"),
    Fed("school_violence", "medium", (("male", "11-15"), ("male", "16-17"), ("female", "11-15"))),
    Fed("neglect", "low", (("unknown", "unknown"),)),
    Fed("online_abuse", "high", (("female", "16-17"),), acknowledged_by="police"),
    Fed("drowning", "emergency", (("male", "6-10"),), closed=True),
    Fed("injury", "medium", (("female", "0-5"),)),
)


@dataclass(frozen=True)
class Done:
    """One activity a unit recorded under the plan (withdrawn: recorded, then taken back by its author)."""

    unit: str
    task: str
    kind: str
    counts: dict
    withdrawn: bool = False


ACTIVITIES = (
    Done("police", "IV.7", "communication", {"sessions": 3, "participants_total": 120, "participants_male": 50, "participants_female": 70,
                                              "participants_under_16": 80, "participants_adult": 40}),
    Done("police", "IV.7", "communication", {"sessions": 1, "participants_total": 35, "participants_male": 20, "participants_female": 15,
                                              "participants_adult": 35}),
    Done("police", "IV.7", "communication", {"sessions": 9, "participants_total": 900}, withdrawn=True),
    Done("school.th-minh-tam-a", "IV.5", "inspection", {"sessions": 2, "sites_inspected": 4, "violations_found": 1}),
    Done("culture_info", "IV.6", "inspection", {"sessions": 1, "sites_inspected": 5}),
    Done("health", "IV.4", "child_support", {"children_supported": 6}),
)


def activity(commune: str, day: datetime, done: Done) -> list[Envelope]:
    activity_id = str(uuid.uuid4())
    unit_type = done.unit.split(".")[0]
    fields = dict(
        activity_id=activity_id, revision=1, commune_code=commune, unit_id=f"{commune}.{done.unit}", unit_type=unit_type,
        task_id=done.task, plan_version="2025.1", kind=done.kind, held_on=day.date(), counts=ActivityCounts(**done.counts),
        by=f"{commune}.{done.unit}", at=day.replace(tzinfo=VN),
    )
    events = [ActivityRecorded(**fields).envelope(correlation_id=activity_id, producer="intake")]
    if done.withdrawn:
        events.append(ActivityWithdrawn(**{**fields, "revision": 2}).envelope(correlation_id=activity_id, producer="intake"))
    return events


def reported(commune: str, day: datetime, fed: Fed) -> Envelope:
    incident_id = str(uuid.uuid4())
    facts = IncidentFacts(
        commune_code=commune, hamlet=f"{commune}.hamlet.ap-1" if commune == "25349" else None, category=fed.category,
        urgency=fed.urgency, channel="phone", occurred_at=day.replace(tzinfo=VN), received_at=day.replace(tzinfo=VN) + timedelta(hours=1),
        children=tuple(ChildFacts(sex=s, age_band=a) for s, a in fed.children),
    )
    case = IncidentCase(description="riêng tư", children=tuple(ChildCase(full_name="Nguyễn Thị A", sex=s) for s, _ in fed.children))
    event = IncidentReported(incident_id=incident_id, reported_by=f"{commune}.police", facts=facts, case=case)
    return event.envelope(correlation_id=incident_id, producer="intake")


async def fill(world: World, commune: str = "25349") -> None:
    """The incidents of INCIDENTS in the commune's 2025-6M (November 2024 to April 2025), closures and acknowledgements."""
    for i, fed in enumerate(INCIDENTS):
        day = datetime(2024, 11, 3) + timedelta(days=19 * i)
        envelope = reported(commune, day, fed)
        incident_id = envelope.correlation_id
        await world.feed(envelope)
        at = day.replace(tzinfo=VN) + timedelta(hours=3)
        if fed.acknowledged_by:
            ack = AssignmentAcknowledged(
                incident_id=incident_id, assignment_id=str(uuid.uuid4()), unit_id=f"{commune}.{fed.acknowledged_by}",
                unit_type=fed.acknowledged_by, role=Role.lead, commune_code=commune, by=f"{commune}.{fed.acknowledged_by}",
                at=at, due_at=at + timedelta(hours=1), assigned_at=at - timedelta(minutes=20),
            )
            await world.feed(ack.envelope(correlation_id=incident_id, producer="routing"))
        if fed.closed:
            closed = IncidentClosureRecorded(incident_id=incident_id, commune_code=commune, risk_level="low", at=at + timedelta(days=2))
            await world.feed(closed.envelope(correlation_id=incident_id, producer="routing"))
    for i, done in enumerate(ACTIVITIES):
        await world.feed(*activity(commune, datetime(2025, 1, 6) + timedelta(days=11 * i), done))


ACTIVITY_COLUMNS = ("sessions", "participants_total", "children_supported", "households_visited", "sites_inspected")


def activities_recounted() -> dict[tuple[str, str, str], list[int]]:
    """(unit, task, kind) -> [activities, then the counts of ACTIVITY_COLUMNS], from ACTIVITIES alone."""
    out: dict[tuple[str, str, str], list[int]] = {}
    for done in ACTIVITIES:
        if done.withdrawn:
            continue
        row = out.setdefault((done.unit, done.task, done.kind), [0] * (1 + len(ACTIVITY_COLUMNS)))
        row[0] += 1
        for i, key in enumerate(ACTIVITY_COLUMNS, 1):
            row[i] += done.counts.get(key, 0)
    return out


def recount() -> dict:
    """What the document must say, counted from INCIDENTS alone."""
    abused = [(f.category, s, a) for f in INCIDENTS if f.category in ABUSE_FORMS for s, a in f.children]
    return {
        "by_form": Counter(c for c, _, _ in abused),
        "by_form_sex": Counter((c, s) for c, s, _ in abused),
        "by_form_age": Counter((c, a) for c, _, a in abused),
        "abused": len(abused),
        "incidents_by_urgency": Counter(f.urgency for f in INCIDENTS),
        "children_by_urgency": Counter(f.urgency for f in INCIDENTS for _ in f.children),
        "incidents": len(INCIDENTS),
        "children": sum(len(f.children) for f in INCIDENTS),
        "closed": sum(f.closed for f in INCIDENTS),
        "acknowledged": Counter(f.acknowledged_by for f in INCIDENTS if f.acknowledged_by),
    }


async def call(world: World, method: str, path: str, who: str, **kwargs):
    return await world.client.request(method, path, headers={"Authorization": f"Bearer {world.tokens[who]}"}, **kwargs)


async def ok(world: World, method: str, path: str, who: str, **kwargs) -> dict:
    response = await call(world, method, path, who, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


async def through_sign_off(world: World, commune: str, *, sent_at: datetime, deputy: bool = True) -> dict:
    base = f"/v1/reports/{commune}/2025-6M/document"
    await ok(world, "PUT", base, f"{commune}.cp_officer", json={"narrative": NARRATIVE, "number": "45/BC-UBND"})
    await ok(world, "POST", f"{base}/submit", f"{commune}.cp_officer")
    signer = {"signer_name": "Nguyễn Quốc Trung", "signed_as": "deputy"} if deputy else {"signer_name": "Lê Văn Bình"}
    await ok(world, "POST", f"{base}/approve", f"{commune}.chairman", json=signer)
    world.clock.now = sent_at
    return await ok(world, "POST", f"{base}/send", f"{commune}.cp_officer")


# -- reading the documents back ---------------------------------------------------------------------


def number(text: str) -> int:
    return int(text.replace(".", "").strip())


def docx_tables(content: bytes) -> dict[tuple[str, ...], list[list[str]]]:
    """Every table of the document by its heading row; the rows as cell texts."""
    document = Document(io.BytesIO(content))
    out = {}
    for table in document.tables:
        rows = [[cell.text for cell in row.cells] for row in table.rows]
        out[tuple(rows[0])] = rows[1:]
    return out


def docx_text(content: bytes) -> str:
    document = Document(io.BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    parts += [c.text for t in document.tables for row in t.rows for c in row.cells]
    return "\n".join(parts)


def pdf_text(path: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, check=True, text=True).stdout


def pdf_rows(text: str, labels: list[str]) -> dict[str, list[int]]:
    """The numbers printed on the line where each label begins (a long label wraps; its numbers are on its first line)."""
    found: dict[str, list[int]] = {}
    for line in text.splitlines():
        words = line.split()
        numbers = []
        while words and re.fullmatch(r"\d[\d.]*", words[-1]):
            numbers.insert(0, number(words.pop()))
        head = " ".join(words)
        head = re.sub(r"^\d+\s+", "", head)  # the STT column
        if not numbers or not head:
            continue
        for label in labels:
            if label not in found and label.startswith(head) and len(head) >= min(len(label), 6):
                found[label] = numbers
                break
    return found


def pdf_numbered_rows(text: str, width: int) -> dict[int, list[int]]:
    """Rows that start with their STT and end with exactly `width` numbers (a table's row, whatever wraps in between)."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        numbers = []
        while words and re.fullmatch(r"\d[\d.]*", words[-1]):
            numbers.insert(0, number(words.pop()))
        if words and re.fullmatch(r"\d+", words[0]) and len(numbers) == width:
            found.setdefault(int(words[0]), numbers)
    return found


def abuse_expected(summary: dict) -> dict[str, list[int]]:
    ind = summary["indicators"]
    rows = {}
    for form in ABUSE_FORMS:
        sex = ind["abused_children_by_form_and_sex"][form]
        age = ind["abused_children_by_form_and_age_band"][form]
        rows[LABELS_VI[form]] = [ind["abused_children_by_form"][form], *(sex[s] for s in ("male", "female", "unknown")),
                                 *(age[a] for a in ("0-5", "6-10", "11-15", "16-17", "unknown"))]
    return rows


def abuse_recounted() -> dict[str, list[int]]:
    r = recount()
    return {
        LABELS_VI[form]: [r["by_form"][form], *(r["by_form_sex"][(form, s)] for s in ("male", "female", "unknown")),
                          *(r["by_form_age"][(form, a)] for a in ("0-5", "6-10", "11-15", "16-17", "unknown"))]
        for form in ABUSE_FORMS
    }


class TestTheCommunesReport:
    async def test_drafted_submitted_approved_sent_and_every_number_of_the_docx_and_pdf_is_the_summarys(self, world: World, tmp_path: Path):
        await unit_tokens(world, "25349.chairman")
        await fill(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        sent = await through_sign_off(world, "25349", sent_at=datetime(2025, 5, 9, 2, tzinfo=UTC))
        assert (sent["status"], sent["version"], sent["revision"], sent["on_time"]) == ("sent", 1, 1, True)
        [event] = [e for e in await world.published() if e["event_type"] == "report.submitted"]
        assert event["payload"] | {"sent_at": None} == {
            "org_unit": "25349", "period": "2025-6M", "version": 1, "revision": 1, "replaces": None, "signed_as": "deputy",
            "sent_at": None, "due": "2025-05-10", "on_time": True,
        }

        stored = (await world.json("/v1/reports/25349/2025-6M/1"))["summary"]
        ind = stored["indicators"]
        truth = recount()
        # The JSON summary agrees with the recount first: the document is then compared with both.
        assert (ind["abused_children_total"], ind["incidents_total"], ind["children_total"], ind["cases_closed"]) == (
            truth["abused"], truth["incidents"], truth["children"], truth["closed"])
        assert abuse_expected(stored) == abuse_recounted()

        docx = await call(world, "GET", "/v1/reports/25349/2025-6M/latest/export", "25349.chairman", params={"format": "docx"})
        assert docx.status_code == 200, docx.text
        assert docx.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.wordprocessingml")
        tables = docx_tables(docx.content)
        abuse = next(rows for head, rows in tables.items() if head[:3] == ("STT", "Hình thức xâm hại", "Tổng số"))
        printed = {row[1]: [number(v) for v in row[2:]] for row in abuse[:-1]}
        assert printed == abuse_expected(stored) == abuse_recounted()
        assert abuse[-1][1].startswith("Tổng số") and number(abuse[-1][2]) == ind["abused_children_total"] == truth["abused"]
        activities = next(rows for head, rows in tables.items() if head[:4] == ("STT", "Đơn vị", "Nhiệm vụ", "Hoạt động"))
        summed = stored["activities"]["rows"]
        assert len(activities) == len(summed) + 1 and activities[-1][1] == "Tổng cộng"
        for printed_row, row in zip(activities, summed, strict=False):
            numbers_printed = [number(v) for v in printed_row[4:]]
            assert numbers_printed == [row["activities"], *(row[k] for k in ACTIVITY_COLUMNS)]
            assert numbers_printed == activities_recounted()[(row["unit_id"].split(".", 1)[1], row["task"], row["kind"])]
            assert printed_row[2].startswith(f"{row['task']}. ")
        assert [number(v) for v in activities[-1][4:]] == [sum(r[i] for r in activities_recounted().values()) for i in range(6)]
        urgency = {row[0]: (number(row[1]), number(row[2])) for row in tables[("Mức độ khẩn cấp", "Số vụ việc", "Số trẻ em")]}
        for code in ("emergency", "high", "medium", "low"):
            assert urgency[LABELS_VI[code]] == (ind["by_urgency"][code], ind["children_by_urgency"][code])
            assert urgency[LABELS_VI[code]] == (truth["incidents_by_urgency"][code], truth["children_by_urgency"][code])
        response = {row[0]: [number(v) for v in row[1:]] for row in next(r for h, r in tables.items() if h[:2] == ("Đơn vị", "Số lượt được giao"))}
        for unit, n in truth["acknowledged"].items():
            r = ind["response"][unit]
            assert response[LABELS_VI[unit]] == [r["assignments"], r["acknowledged"], r["acknowledged_within_deadline"], r["overdue"], r["escalations"]]
            assert response[LABELS_VI[unit]][1:3] == [n, n]
        cases = {row[0]: number(row[1]) for row in tables[("Chỉ tiêu", "Số lượng")]}
        assert (cases["Số vụ việc đã kết thúc"], cases["Số vụ việc đang xử lý"]) == (ind["cases_closed"], ind["cases_open"])
        assert (cases["Số vụ việc đã kết thúc"], cases["Số vụ việc đang xử lý"]) == (truth["closed"], truth["incidents"] - truth["closed"])
        appendix = tables[("Nhóm chỉ tiêu", "Chỉ tiêu", "Số lượng")]
        assert sum(number(r[2]) for r in appendix if r[0] == "Trẻ em bị xâm hại theo hình thức") == truth["abused"]

        text = docx_text(docx.content)
        assert unicodedata.is_normalized("NFC", text) and "\ufffd" not in text
        for needle in ("ỦY BAN NHÂN DÂN", "XÃ MINH TÂM", "Số: 45/BC-UBND", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                       "Độc lập - Tự do - Hạnh phúc", "Minh Tâm, ngày 09 tháng 5 năm 2025", "BÁO CÁO",
                       "Kết quả thực hiện công tác trẻ em 6 tháng đầu năm 2025", "Nơi nhận:", "KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH",
                       "Nguyễn Quốc Trung", *NARRATIVE["situation"].split("\n"), NARRATIVE["recommendations"]):
            assert needle in text, needle
        assert "DỰ THẢO" not in text and "Chưa ký duyệt" not in text
        section = Document(io.BytesIO(docx.content)).sections[0]
        assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)
        within = lambda length, low, high: low - 0.1 <= length.mm <= high + 0.1  # noqa: E731  (Word stores twips)
        assert within(section.top_margin, 20, 25) and within(section.bottom_margin, 20, 25)
        assert within(section.left_margin, 30, 35) and within(section.right_margin, 15, 20)
        assert Document(io.BytesIO(docx.content)).styles["Normal"].font.name == "Times New Roman"

        pdf = await call(world, "GET", "/v1/reports/25349/2025-6M/1/export", "district:694", params={"format": "pdf"})
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        path = tmp_path / "report.pdf"
        path.write_bytes(pdf.content)
        layout = pdf_text(path, "-layout")
        assert unicodedata.is_normalized("NFC", layout) and "\ufffd" not in layout
        flat = " ".join(layout.split())
        for needle in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc", "Số: 45/BC-UBND", "Nguyễn Quốc Trung",
                       *NARRATIVE["situation"].split("\n"), NARRATIVE["assessment"]):
            assert " ".join(needle.split()) in flat, needle
        rows = pdf_rows(layout, [*abuse_expected(stored), "Tổng số (chỉ tiêu 0101)"])
        assert {k: v for k, v in rows.items() if k in abuse_expected(stored)} == abuse_expected(stored) == abuse_recounted()
        assert rows["Tổng số (chỉ tiêu 0101)"][0] == truth["abused"]
        for code in ("emergency", "high", "medium", "low"):
            assert pdf_rows(layout, [LABELS_VI[code]])[LABELS_VI[code]] == [truth["incidents_by_urgency"][code], truth["children_by_urgency"][code]]
        assert pdf_rows(layout, ["Số vụ việc đang xử lý"])["Số vụ việc đang xử lý"] == [ind["cases_open"]]
        printed_activities = pdf_numbered_rows(layout, 1 + len(ACTIVITY_COLUMNS))
        assert [printed_activities[i] for i in range(1, len(summed) + 1)] == [
            activities_recounted()[(r["unit_id"].split(".", 1)[1], r["task"], r["kind"])] for r in summed
        ]
        totals = stored["activities"]["totals"]
        assert pdf_rows(layout, ["Tổng cộng"])["Tổng cộng"] == [totals["activities"], *(totals[k] for k in ACTIVITY_COLUMNS)]
        assert_a4_with_the_decrees_margins(path)

    async def test_a_later_revision_makes_a_new_version_marked_as_a_replacement_and_the_sent_one_stays(self, world: World):
        await unit_tokens(world, "25349.chairman")
        await fill(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        await through_sign_off(world, "25349", sent_at=datetime(2025, 5, 8, tzinfo=UTC))
        refused = await call(world, "PUT", "/v1/reports/25349/2025-6M/document", "25349.cp_officer", json={"narrative": {"situation": "x"}})
        assert refused.status_code == 409, "a sent version is not written over without new figures"
        world.clock.now = datetime(2025, 5, 20, tzinfo=UTC)
        await world.feed(reported("25349", datetime(2025, 4, 2), Fed("violence", "high", (("female", "6-10"),))))
        world.clock.now += timedelta(seconds=5)
        assert await world.generate() == [("25349", "2025-6M", 2)]
        second = await through_sign_off(world, "25349", sent_at=datetime(2025, 5, 21, tzinfo=UTC), deputy=False)
        assert (second["version"], second["replaces"], second["revision"], second["on_time"]) == (2, 1, 2, True)
        first = await call(world, "GET", "/v1/reports/25349/2025-6M/1/export", "25349.cp_officer", params={"format": "docx"})
        newer = await call(world, "GET", "/v1/reports/25349/2025-6M/2/export", "25349.cp_officer", params={"format": "docx"})
        old_text, new_text = docx_text(first.content), docx_text(newer.content)
        assert "Bản thay thế" not in old_text and "Nguyễn Quốc Trung" in old_text
        assert "Bản thay thế - phiên bản 2, thay thế phiên bản 1" in new_text and "TM. ỦY BAN NHÂN DÂN" in new_text and "Lê Văn Bình" in new_text
        abused = lambda content: next(r for h, r in docx_tables(content).items() if h[:2] == ("STT", "Hình thức xâm hại"))[-1][2]  # noqa: E731
        assert (number(abused(first.content)), number(abused(newer.content))) == (recount()["abused"], recount()["abused"] + 1)

    async def test_only_the_officer_drafts_and_only_the_chairman_approves(self, world: World):
        await unit_tokens(world, "25349.chairman", "25349.police")
        await fill(world)
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        base = "/v1/reports/25349/2025-6M/document"
        assert (await call(world, "PUT", base, "25349.chairman", json={"narrative": NARRATIVE})).status_code == 403
        assert (await call(world, "PUT", base, "25349.police", json={"narrative": NARRATIVE})).status_code == 403
        await ok(world, "PUT", base, "25349.cp_officer", json={"narrative": {"situation": "Chỉ một phần."}})
        assert (await call(world, "POST", f"{base}/submit", "25349.cp_officer")).status_code == 422, "every section first"
        await ok(world, "PUT", base, "25349.cp_officer", json={"narrative": NARRATIVE})
        assert (await call(world, "POST", f"{base}/approve", "25349.chairman", json={"signer_name": "A"})).status_code == 409
        await ok(world, "POST", f"{base}/submit", "25349.cp_officer")
        assert (await call(world, "POST", f"{base}/approve", "25349.cp_officer", json={"signer_name": "A"})).status_code == 403
        assert (await call(world, "POST", f"{base}/send", "25349.cp_officer")).status_code == 409, "not approved yet"
        draft = await call(world, "GET", "/v1/reports/25349/2025-6M/latest/export", "25349.chairman", params={"format": "docx"})
        assert "DỰ THẢO" in docx_text(draft.content) and "Chưa ký duyệt" in docx_text(draft.content)


def assert_a4_with_the_decrees_margins(path: Path) -> None:
    """A4 pages; every word inside top/bottom 20-25 mm, left 30-35 mm, right 15-20 mm (the page number, in the top margin
    as the decree places it, aside); the text reaches the left and top margins, so they are not wider either."""
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True).stdout
    assert re.search(r"Page size:\s+595\.2\d* x 841\.8\d* pts \(A4\)", info), info
    bbox = pdf_text(path, "-bbox")
    mm = 72 / 25.4
    words = []
    for page, body in enumerate(re.findall(r"<page [^>]*>(.*?)</page>", bbox, re.S), 1):
        for x0, y0, x1, y1, word in re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', body):
            words.append((page, float(x0), float(y0), float(x1), float(y1), word))
    body_words = [w for w in words if not (w[5].isdigit() and w[4] < 20 * mm)]
    assert len(words) - len(body_words) == max(w[0] for w in words) - 1, "a page number on every page but the first"
    left, top = min(w[1] for w in body_words), min(w[2] for w in body_words)
    right, bottom = max(w[3] for w in body_words), max(w[4] for w in body_words)
    assert 30 * mm - 0.5 <= left <= 35 * mm, left / mm
    assert right <= (210 - 15) * mm + 0.5, right / mm
    assert 20 * mm - 0.5 <= top <= 25 * mm, top / mm
    assert bottom <= (297 - 20) * mm + 0.5, bottom / mm


class TestTheDistrict:
    async def test_timeliness_follows_the_sending_date_in_vietnam_and_the_consolidated_report_shows_it(self, world: World, tmp_path: Path):
        await unit_tokens(world, "25349.chairman", "25348.cp_officer", "25348.chairman")
        await fill(world, "25349")
        await fill(world, "25348")
        world.clock.now = datetime(2025, 5, 2, tzinfo=UTC)
        await world.generate()
        on_time = await through_sign_off(world, "25349", sent_at=datetime(2025, 5, 10, 16, 59, tzinfo=UTC))  # 23:59 on 10 May
        late = await through_sign_off(world, "25348", sent_at=datetime(2025, 5, 10, 17, 0, tzinfo=UTC))  # 00:00 on 11 May
        assert (on_time["on_time"], late["on_time"]) == (True, False)
        events = {e["payload"]["org_unit"]: e["payload"]["on_time"] for e in await world.published() if e["event_type"] == "report.submitted"}
        assert events == {"25349": True, "25348": False}

        world.clock.now = datetime(2025, 5, 11, 3, tzinfo=UTC)
        summary = await world.json("/v1/summaries/694", "district:694", period="2025-6M")
        c = summary["completeness"]
        rows = {r["code"]: (r["document_status"], r["sent"], r["on_time"], r["timeliness"]) for r in c["reports"]}
        assert rows == {
            "25349": ("sent", True, True, "on_time"),
            "25348": ("sent", True, False, "late"),
            "25339": (None, False, None, "late"),  # nothing sent, and 10 May is over
        }
        assert (c["reports_sent"], c["reports_on_time"], c["reports_late"]) == (2, 1, 2)

        docx = await call(world, "GET", "/v1/consolidated/694/2025-6M", "district:694", params={"format": "docx"})
        assert docx.status_code == 200, docx.text
        tables = docx_tables(docx.content)
        statuses = {r[1]: (r[2], r[4], r[5]) for r in next(rows for head, rows in tables.items() if head[:3] == ("STT", "Xã", "Tình trạng báo cáo"))}
        assert statuses == {
            "Minh Tâm": ("Đã gửi huyện", "10/05/2025", "Đúng hạn"),
            "Minh Đức": ("Đã gửi huyện", "11/05/2025", "Trễ hạn"),
            "An Phú": ("Chưa lập", "", "Trễ hạn"),
        }
        figures = next(rows for head, rows in tables.items() if head[:3] == ("STT", "Xã", "Số vụ việc"))
        by_commune = {r["name"]: r["indicators"] for r in summary["communes"]}
        for row in figures[:-1]:
            ind = by_commune[row[1]]
            assert [number(v) for v in row[2:]] == [ind["incidents_total"], ind["children_total"], ind["abused_children_total"],
                                                    ind["cases_closed"], ind["cases_open"], ind["injuries_and_drownings"]]
        total = summary["indicators"]
        assert [number(v) for v in figures[-1][2:4]] == [total["incidents_total"], total["children_total"]] == [2 * recount()["incidents"], 2 * recount()["children"]]
        text = docx_text(docx.content)
        assert unicodedata.is_normalized("NFC", text) and "\ufffd" not in text and "UBND HUYỆN HỚN QUẢN" in text and "PHÒNG VĂN HÓA - XÃ HỘI" in text

        pdf = await call(world, "GET", "/v1/consolidated/694/2025-6M", "district:694", params={"format": "pdf"})
        path = tmp_path / "district.pdf"
        path.write_bytes(pdf.content)
        layout = pdf_text(path, "-layout")
        assert unicodedata.is_normalized("NFC", layout) and "\ufffd" not in layout
        assert pdf_rows(layout, ["Minh Tâm"])["Minh Tâm"][:2] == [by_commune["Minh Tâm"]["incidents_total"], by_commune["Minh Tâm"]["children_total"]]
        assert "Trễ hạn" in layout and "Đúng hạn" in layout
        assert_a4_with_the_decrees_margins(path)
        refused = await call(world, "GET", "/v1/consolidated/694/2025-6M", "25349.cp_officer", params={"format": "pdf"})
        assert refused.status_code == 404, "a commune does not read the district's report"
