"""The report as an official document (Decree 30/2020/NĐ-CP): DOCX from an editable docxtpl template, PDF from HTML.

Pure: a summary (the stored one of the revision the document pins), the document's narrative and sign-off, and the
plan's words in; a context, then bytes out. The same context feeds both formats, so the DOCX and the PDF print the
same numbers; every number of a table is the summary's, never recounted here.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.enums import LABELS_VI
from shared.labels_vi import DOCUMENT_STATUS, NO_DOCUMENT, TIMELINESS
from shared.plans import COUNT_LABELS_VI

from .exports import AGE_BANDS, PROCESS_LABELS, SECTIONS, flatten, label
from .periods import VN

TEMPLATES = Path(__file__).parent / "templates"
# One template for the commune's report and the district's: the context says who issues it.
DOCX_TEMPLATE = TEMPLATES / "bao-cao.docx"

SEXES = ("male", "female", "unknown")
AGES = ("0-5", "6-10", "11-15", "16-17", "unknown")
URGENCIES = ("emergency", "high", "medium", "low")
# The counts of an activity the section II table shows (the appendix shows every one).
ACTIVITY_COLUMNS = (
    ("activities", "Số hoạt động"),
    ("sessions", "Số buổi, lượt"),
    ("participants_total", "Số người tham dự"),
    ("children_supported", "Trẻ em được hỗ trợ"),
    ("households_visited", "Hộ gia đình được thăm"),
    ("sites_inspected", "Cơ sở được kiểm tra"),
)
SECTION_TITLES = {
    "situation": "I. TÌNH HÌNH CHUNG",
    "results": "II. KẾT QUẢ THỰC HIỆN NHIỆM VỤ THEO ĐƠN VỊ",
    "incidents": "III. TÌNH HÌNH TRẺ EM BỊ XÂM HẠI, VỤ VIỆC VÀ KẾT QUẢ XỬ LÝ",
    "assessment": "IV. ĐÁNH GIÁ CHUNG",
    "next": "V. PHƯƠNG HƯỚNG, NHIỆM VỤ THỜI GIAN TỚI VÀ KIẾN NGHỊ, ĐỀ XUẤT",
}


@dataclass(frozen=True)
class Table:
    title: str
    headings: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]  # relative
    total_row: bool = False  # the last row is a total (bold)


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    subheadings: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (heading, paragraphs) after the tables


@dataclass(frozen=True)
class PlanWords:
    """What the commune's plan says that the report repeats: its title and basis, recipients, labels of tasks and kinds."""

    title: str = "Kế hoạch triển khai, thực hiện công tác trẻ em"
    issued_by: str | None = None
    basis: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    tasks: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sign:
    """The document's sign-off as printed."""

    number: str | None = None
    signed_at: datetime | None = None  # the date the document bears: sent, else approved
    signer_name: str | None = None
    signed_as: str | None = None  # chairman | deputy
    status: str = "draft"
    version: int = 1
    revision: int | None = None


def n(value: Any) -> str:
    """A count as Vietnamese write it: 1.234; blank for no data."""
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{int(value):,}".replace(",", ".")


def day_vi(value: date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return f"{value.day:02d}/{value.month:02d}/{value.year}"


def place_date(place: str, at: datetime | None, year: int) -> str:
    """"Minh Tâm, ngày 09 tháng 5 năm 2025" (day and month below 10 with a leading zero for day only, as the decree's
    examples write); blanks for a document not signed yet."""
    if at is None:
        return f"{place}, ngày      tháng      năm {year}"
    local = at.astimezone(VN)
    return f"{place}, ngày {local.day:02d} tháng {local.month} năm {local.year}"


def period_words(period: Mapping[str, Any]) -> str:
    """The report's subject period: "6 tháng đầu năm 2025" / "năm 2025"."""
    pid = period["id"]
    year = pid[:4]
    if pid.endswith("-6M"):
        return f"6 tháng đầu năm {year}"
    if pid.endswith("-12M"):
        return f"năm {year}"
    return f"kỳ {pid}"


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").split("\n") if line.strip())


def unit_name(unit_id: str) -> str:
    """25349.police -> Công an xã; 25349.school.th-a -> Trường học (th-a)."""
    parts = unit_id.split(".")
    kind = LABELS_VI.get(parts[1], parts[1]) if len(parts) > 1 else unit_id
    return f"{kind} ({parts[2]})" if len(parts) > 2 else kind


# -- tables -----------------------------------------------------------------------------------------


def activity_table(activities: Mapping[str, Any] | None, words: PlanWords) -> Table:
    rows: list[tuple[str, ...]] = []
    for i, row in enumerate((activities or {}).get("rows") or [], 1):
        task = row["task"]
        rows.append((
            str(i),
            unit_name(row["unit_id"]),
            task_words(task, words),
            words.kinds.get(row["kind"], row["kind"]),
            *(n(row.get(key, 0)) for key, _ in ACTIVITY_COLUMNS),
        ))
    totals = (activities or {}).get("totals")
    if not rows:
        rows.append(("", "Chưa có hoạt động nào được ghi nhận trong kỳ", "", "", *("0" for _ in ACTIVITY_COLUMNS)))
        totals = None
    elif totals is not None:
        rows.append(("", "Tổng cộng", "", "", *(n(totals.get(key, 0)) for key, _ in ACTIVITY_COLUMNS)))
    return Table(
        "Bảng 1. Kết quả hoạt động của các đơn vị theo nhiệm vụ của Kế hoạch",
        ("STT", "Đơn vị", "Nhiệm vụ", "Hoạt động", *(h for _, h in ACTIVITY_COLUMNS)),
        tuple(rows),
        (0.5, 1.6, 2.6, 1.8, 0.9, 0.9, 1.0, 0.9, 0.9, 0.9),
        total_row=totals is not None,
    )


def abuse_table(ind: Mapping[str, Any]) -> Table:
    """Indicator 0101 (Circular 13/2021): abused children by form, sex and age group."""
    by_sex = ind.get("abused_children_by_form_and_sex") or {}
    by_age = ind.get("abused_children_by_form_and_age_band") or {}
    rows = []
    for i, (form, total) in enumerate(ind["abused_children_by_form"].items(), 1):
        rows.append((
            str(i), LABELS_VI.get(form, form), n(total),
            *(n((by_sex.get(form) or {}).get(s, 0)) for s in SEXES),
            *(n((by_age.get(form) or {}).get(a, 0)) for a in AGES),
        ))
    sums_sex = [sum((by_sex.get(f) or {}).get(s, 0) for f in ind["abused_children_by_form"]) for s in SEXES]
    sums_age = [sum((by_age.get(f) or {}).get(a, 0) for f in ind["abused_children_by_form"]) for a in AGES]
    rows.append(("", "Tổng số (chỉ tiêu 0101)", n(ind["abused_children_total"]), *map(n, sums_sex), *map(n, sums_age)))
    return Table(
        "Bảng 2. Số trẻ em bị xâm hại theo hình thức, giới tính và nhóm tuổi (chỉ tiêu 0101, Thông tư 13/2021/TT-BLĐTBXH)",
        ("STT", "Hình thức xâm hại", "Tổng số", "Nam", "Nữ", "Không rõ giới tính", *(AGE_BANDS[a] for a in AGES)),
        tuple(rows),
        (0.5, 2.4, 0.8, 0.7, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8),
        total_row=True,
    )


def urgency_table(ind: Mapping[str, Any]) -> Table:
    rows = [
        (LABELS_VI.get(u, u), n(ind["by_urgency"].get(u, 0)), n(ind["children_by_urgency"].get(u, 0)))
        for u in URGENCIES
    ]
    rows.append(("Tổng số", n(ind["incidents_total"]), n(ind["children_total"])))
    return Table("Bảng 3. Vụ việc và trẻ em theo mức độ khẩn cấp", ("Mức độ khẩn cấp", "Số vụ việc", "Số trẻ em"),
                 tuple(rows), (3, 1.5, 1.5), total_row=True)


def response_table(ind: Mapping[str, Any]) -> Table:
    rows = []
    for unit, r in ind["response"].items():
        if not r["assignments"]:
            continue
        rows.append((
            LABELS_VI.get(unit, unit), n(r["assignments"]), n(r["acknowledged"]), n(r["acknowledged_within_deadline"]),
            n(r["overdue"]), n(r["escalations"]),
        ))
    return Table(
        "Bảng 4. Tiếp nhận, xử lý vụ việc và thời hạn theo đơn vị",
        ("Đơn vị", "Số lượt được giao", "Đã tiếp nhận", "Tiếp nhận đúng hạn", "Quá hạn tiếp nhận", "Báo lên cấp trên"),
        tuple(rows) or (("Không có vụ việc được giao", "0", "0", "0", "0", "0"),),
        (2.6, 1, 1, 1, 1, 1),
    )


def cases_table(ind: Mapping[str, Any]) -> Table:
    rows = (
        ("Tổng số vụ việc tiếp nhận", n(ind["incidents_total"])),
        ("Số trẻ em liên quan", n(ind["children_total"])),
        ("Số vụ việc đã kết thúc", n(ind["cases_closed"])),
        ("Số vụ việc đang xử lý", n(ind["cases_open"])),
        ("Số vụ tai nạn thương tích, đuối nước", n(ind["injuries_and_drownings"])),
        ("Số trẻ em có hoàn cảnh đặc biệt", n(ind["children_in_special_circumstances"])),
        ("Trong đó được hỗ trợ, can thiệp", n(ind["children_in_special_circumstances_supported"])),
    )
    return Table("Bảng 5. Vụ việc đã kết thúc và đang xử lý", ("Chỉ tiêu", "Số lượng"), rows, (4, 1.2))


def process_table(ind: Mapping[str, Any], number: int) -> Table:
    """The case process of Decree 56/2017 (issue 17): its deadlines kept, cases closed by risk level, temporary care.
    A summary generated before these indicators existed prints its lines blank, not 0."""
    rows = []
    for section in ("initial_assessment", "plan", "cases_closed_by_risk_level", "temporary_care"):
        values = ind.get(section) or {}
        for code, text in PROCESS_LABELS[section].items():
            if section == "plan" and code == "due_unknown" and not values.get(code):
                continue  # only while the holidays calendar lacks a year
            rows.append((SECTIONS[section], text, n(values[code]) if code in values else ""))
    return Table(f"Bảng {number}. Quy trình hỗ trợ, can thiệp trẻ em bị xâm hại (Nghị định 56/2017/NĐ-CP)",
                 ("Bước của quy trình", "Chỉ tiêu", "Số lượng"), tuple(rows), (2, 3, 1.2))


def appendix_table(summary: Mapping[str, Any], hamlet_names: Mapping[str, str]) -> Table:
    rows = []
    for section, code, value in flatten(summary["indicators"]):
        if section == "response" and code.endswith("median_seconds_to_acknowledge"):
            continue  # a time, not a count: the JSON has it
        rows.append((SECTIONS.get(section, section), label(section, code, hamlet_names) if code else "", n(value)))
    return Table("Phụ lục 1. Số liệu chi tiết các chỉ tiêu", ("Nhóm chỉ tiêu", "Chỉ tiêu", "Số lượng"), tuple(rows), (2.4, 3, 1))


def activity_appendix(activities: Mapping[str, Any] | None, words: PlanWords) -> Table | None:
    by_task = (activities or {}).get("by_task") or []
    if not by_task:
        return None
    rows = []
    for row in by_task:
        counts = "; ".join(f"{COUNT_LABELS_VI.get(k, k)}: {n(v)}" for k, v in row.items()
                           if k not in ("task", "kind", "units", "activities") and v)
        rows.append((row["task"], words.kinds.get(row["kind"], row["kind"]), n(row["activities"]), counts))
    return Table("Phụ lục 2. Hoạt động theo nhiệm vụ (các đơn vị cộng lại)", ("Nhiệm vụ", "Hoạt động", "Số hoạt động", "Các số đếm"),
                 tuple(rows), (0.8, 2.2, 0.9, 3.2))


# -- the commune's document ---------------------------------------------------------------------------


def commune_context(
    summary: Mapping[str, Any],
    narrative: Mapping[str, str],
    sign: Sign,
    words: PlanWords,
    hamlet_names: Mapping[str, str],
    district_name: str | None,
) -> dict[str, Any]:
    """Everything the commune's report prints."""
    ind = summary["indicators"]
    period = summary["period"]
    name = summary["name"]
    year = int(period["id"][:4])
    subject = f"Kết quả thực hiện công tác trẻ em {period_words(period)}"
    marks = []
    if sign.status in ("draft", "submitted"):
        marks.append("DỰ THẢO")
    if sign.version > 1:
        marks.append(f"(Bản thay thế - phiên bản {sign.version}, thay thế phiên bản {sign.version - 1})")
    basis = [f"Căn cứ {b};" for b in words.basis] + [
        f"Thực hiện {words.title} của {words.issued_by or f'Ủy ban nhân dân xã {name}'}, Ủy ban nhân dân xã báo cáo "
        f"{subject[0].lower()}{subject[1:]}"
        f" (từ ngày {day_vi(period['start'])} đến ngày {day_vi(period['end'])}) như sau:"
    ]
    activities = summary.get("activities")
    figures = (
        f"Trong kỳ, trên địa bàn xã đã tiếp nhận {n(ind['incidents_total'])} vụ việc liên quan đến {n(ind['children_total'])} trẻ em; "
        f"số trẻ em bị xâm hại là {n(ind['abused_children_total'])}; đã kết thúc {n(ind['cases_closed'])} vụ việc, "
        f"đang xử lý {n(ind['cases_open'])} vụ việc."
    )
    sections = [
        Section(SECTION_TITLES["situation"], _lines(narrative.get("situation", ""))),
        Section(SECTION_TITLES["results"], _lines(narrative.get("results", "")), (activity_table(activities, words),)),
        Section(SECTION_TITLES["incidents"], (figures, *_lines(narrative.get("incidents", ""))),
                (abuse_table(ind), urgency_table(ind), response_table(ind), cases_table(ind), process_table(ind, 6))),
        Section(SECTION_TITLES["assessment"], _lines(narrative.get("assessment", ""))),
        Section(SECTION_TITLES["next"], (), (), (
            ("1. Phương hướng, nhiệm vụ thời gian tới", _lines(narrative.get("next_tasks", ""))),
            ("2. Kiến nghị, đề xuất", _lines(narrative.get("recommendations", ""))),
        )),
    ]
    appendix = [appendix_table(summary, hamlet_names)]
    if extra := activity_appendix(activities, words):
        appendix.append(extra)
    recipients = recipients_of(words.recipients, name, district_name)
    deputy = sign.signed_as == "deputy"
    return {
        "issuer_upper": "ỦY BAN NHÂN DÂN",
        "issuer_lower": f"XÃ {name.upper()}",
        "number": f"Số: {sign.number}" if sign.number else "Số:        /BC-UBND",
        "place_date": place_date(name, sign.signed_at, year),
        "title": "BÁO CÁO",
        "subject": subject,
        "marks": marks,
        "basis": basis,
        "sections": sections,
        "recipients": recipients,
        "sign_on_behalf": "KT. CHỦ TỊCH" if deputy else "TM. ỦY BAN NHÂN DÂN",
        "sign_title": "PHÓ CHỦ TỊCH" if deputy else "CHỦ TỊCH",
        "signer_name": sign.signer_name or "",
        "signed": sign.status in ("approved", "sent"),
        "figures_note": (
            f"Số liệu: phiên bản {sign.revision}, tính đến {summary['as_of'].astimezone(VN).strftime('%H:%M ngày %d/%m/%Y')}"
            if sign.revision is not None else ""
        ),
        "appendix": appendix,
        "footer": f"Báo cáo {subject[0].lower()}{subject[1:]} - xã {name}",
    }


def recipients_of(plan_recipients: Sequence[str], commune: str, district: str | None) -> list[str]:
    """"Nơi nhận": those the plan's section V names (the commune's own committee issues the report, so it is its
    leaders), then the commune's leaders and the archive; a district named where the plan says only "huyện"."""
    upper = [
        f"{r} {district}" if district and r.rstrip().endswith("huyện") else r
        for r in plan_recipients
        if "xã" not in r.split()[-1:]
    ] or ([f"Phòng Văn hóa - Xã hội huyện {district}"] if district else ["Cơ quan cấp trên"])
    return [*(f"- {r} (b/c);" for r in upper), "- TT. Đảng ủy, HĐND xã (b/c);", "- CT, các PCT UBND xã;", "- Lưu: VT."]


def task_words(task: str, words: PlanWords, limit: int = 70) -> str:
    """"IV.7. Phối hợp ..." cut at a word near `limit` characters: the plan has the whole text."""
    text = words.tasks.get(task)
    if not text:
        return task
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return f"{task}. {text}"


# -- the district's consolidated report ---------------------------------------------------------------


def district_context(summary: Mapping[str, Any], hamlet_names: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """The district office's consolidated report: the district's figures and a row per commune, with each commune's
    report status (drafted, submitted, approved, sent, on time or late)."""
    ind = summary["indicators"]
    period = summary["period"]
    name = summary["name"]
    year = int(period["id"][:4])
    subject = f"Tổng hợp kết quả công tác trẻ em {period_words(period)} của các xã"
    completeness = summary.get("completeness") or {}
    reports = {r["code"]: r for r in completeness.get("reports") or []}
    rows = []
    for i, row in enumerate(summary.get("communes") or [], 1):
        c = row["indicators"]
        rows.append((
            str(i), row["name"], n(c["incidents_total"]), n(c["children_total"]), n(c["abused_children_total"]),
            n(c["cases_closed"]), n(c["cases_open"]), n(c["injuries_and_drownings"]),
        ))
    rows.append(("", "Tổng cộng", n(ind["incidents_total"]), n(ind["children_total"]), n(ind["abused_children_total"]),
                 n(ind["cases_closed"]), n(ind["cases_open"]), n(ind["injuries_and_drownings"])))
    figures = Table(
        "Bảng 1. Số liệu của các xã",
        ("STT", "Xã", "Số vụ việc", "Số trẻ em", "Trẻ em bị xâm hại (0101)", "Đã kết thúc", "Đang xử lý", "Tai nạn, đuối nước"),
        tuple(rows), (0.5, 1.8, 0.9, 0.9, 1.1, 0.9, 0.9, 1), total_row=True,
    )
    status_rows = []
    for i, row in enumerate(summary.get("communes") or [], 1):
        r = reports.get(row["code"]) or {}
        status_rows.append((
            str(i), row["name"], DOCUMENT_STATUS.get(r.get("document_status"), NO_DOCUMENT),
            str(r["document_version"]) if r.get("document_version") else "",
            _sent_day(r.get("sent_at")), TIMELINESS.get(r.get("timeliness") or "pending", ""),
        ))
    statuses = Table(
        f"Bảng 2. Tình hình gửi báo cáo của các xã (hạn gửi: {day_vi(period.get('due'))})",
        ("STT", "Xã", "Tình trạng báo cáo", "Phiên bản", "Ngày gửi", "Thời hạn"),
        tuple(status_rows), (0.5, 1.8, 1.5, 0.8, 1.1, 1.1),
    )
    sent = sum(1 for r in reports.values() if r.get("sent"))
    expected = len(completeness.get("communes_expected") or [])
    situation = (
        f"Trong kỳ (từ ngày {day_vi(period['start'])} đến ngày {day_vi(period['end'])}), các xã trên địa bàn đã tiếp nhận "
        f"{n(ind['incidents_total'])} vụ việc liên quan đến {n(ind['children_total'])} trẻ em; số trẻ em bị xâm hại là "
        f"{n(ind['abused_children_total'])}. Có {sent}/{expected} xã đã gửi báo cáo, trong đó "
        f"{completeness.get('reports_on_time') or 0} xã gửi đúng hạn."
    )
    sections = [
        Section("I. TÌNH HÌNH CHUNG", (situation,), (figures, statuses)),
        Section("II. TÌNH HÌNH TRẺ EM BỊ XÂM HẠI VÀ KẾT QUẢ XỬ LÝ", (),
                (abuse_table(ind), urgency_table(ind), response_table(ind), process_table(ind, 5))),
    ]
    return {
        "issuer_upper": f"UBND HUYỆN {name.upper()}",
        "issuer_lower": "PHÒNG VĂN HÓA - XÃ HỘI",
        "number": "Số:        /BC-VHXH",
        "place_date": place_date(name, None, year),
        "title": "BÁO CÁO",
        "subject": subject,
        "marks": [f"(Tổng hợp lúc {now.astimezone(VN).strftime('%H:%M ngày %d/%m/%Y')})"],
        "basis": [f"Căn cứ báo cáo của Ủy ban nhân dân các xã, Phòng Văn hóa - Xã hội huyện {name} báo cáo kết quả công tác trẻ em "
                  f"{period_words(period)} trên địa bàn huyện như sau:"],
        "sections": sections,
        "recipients": [f"- UBND huyện {name} (b/c);", "- UBND các xã;", "- Lưu: VT."],
        "sign_on_behalf": "",
        "sign_title": "TRƯỞNG PHÒNG",
        "signer_name": "",
        "signed": False,
        "figures_note": "",
        "appendix": [appendix_table(summary, hamlet_names)],
        "footer": f"Tổng hợp {period_words(period)} - huyện {name}",
    }


def _sent_day(value: Any) -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return day_vi(moment.astimezone(VN).date())


# -- writing --------------------------------------------------------------------------------------------


def to_docx(context: Mapping[str, Any], template: Path = DOCX_TEMPLATE) -> bytes:
    """Fill the template (docxtpl); the tables are built into it as sub-documents."""
    from docxtpl import DocxTemplate

    from shared.docx_tables import add_table

    doc = DocxTemplate(str(template))

    def tables_of(tables: Sequence[Table]):
        sub = doc.new_subdoc()
        for table in tables:
            add_table(sub, table)
        return sub

    values = dict(context)
    values["sections"] = [
        {"heading": s.heading, "paragraphs": list(s.paragraphs), "tables": tables_of(s.tables),
         "subheadings": [{"heading": h, "paragraphs": list(p)} for h, p in s.subheadings]}
        for s in context["sections"]
    ]
    values["appendix"] = tables_of(context["appendix"])
    doc.render(values, autoescape=True)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


_html = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def to_html(context: Mapping[str, Any]) -> str:
    return _html.get_template("report.html").render(**context)


def to_pdf(context: Mapping[str, Any]) -> bytes:
    from weasyprint import HTML

    return HTML(string=to_html(context), base_url=str(TEMPLATES)).write_pdf()


MEDIA_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
