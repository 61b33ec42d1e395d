"""The Decree 56/2017 process records as printed forms (issue 17, point 4): DOCX (python-docx) and PDF (HTML, weasyprint).

Pure: one version of a record, the case's other records, the case and the names of the commune and its units in;
a context, then bytes out. The same context feeds both formats. The layout is Decree 30/2020/NĐ-CP's (national
motto, issuer, number, place and date, signer block), as reporting's report documents print it; the page set-up
and the tables are the same code (shared/docx_tables.py). Rendered here, beside the records: they hold a child's
personal data, which never leaves routing.
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
from shared.workdays import VN

from .process import Form

TEMPLATES = Path(__file__).parent / "templates"
MEDIA_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
DECREE = "Nghị định số 56/2017/NĐ-CP"
CHILD_SUBJECT = "trẻ em bị xâm hại hoặc có nguy cơ bị bạo lực, bóc lột, bỏ rơi"
SIGNED_AS = {"chairman": "Chủ tịch", "deputy": "Phó Chủ tịch"}
SEX = {"male": "Nam", "female": "Nữ", "unknown": "Không rõ"}


@dataclass(frozen=True)
class Table:
    """A titled table, as shared.docx_tables.add_table and the HTML template print it."""

    title: str
    headings: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]
    total_row: bool = False


@dataclass(frozen=True)
class Signer:
    on_behalf: str  # "KT. CHỦ TỊCH" for a deputy; "" otherwise
    title: str  # CHỦ TỊCH / PHÓ CHỦ TỊCH / NGƯỜI ĐÁNH GIÁ ...
    name: str
    hint: str = "(Ký, ghi rõ họ tên)"


@dataclass(frozen=True)
class Printed:
    """Everything a form prints, in order."""

    form_code: str  # "Mẫu số 02", or "" for a record the decree gives no form for
    issuer_upper: str
    issuer_lower: str
    number: str
    place_date: str
    title: str
    subject: str
    marks: tuple[str, ...]
    case: tuple[tuple[str, str], ...]  # (label, value): which case, which child
    authority: str = ""  # a decision: "CHỦ TỊCH ỦY BAN NHÂN DÂN XÃ ..."
    basis: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # (label, value)
    articles: tuple[tuple[str, str], ...] = ()  # a decision's (Điều N., text)
    tables: tuple[Table, ...] = ()
    after_tables: tuple[tuple[str, str], ...] = ()  # (a decision's "Điều N." or "", text)
    signer: Signer | None = None
    recipients: tuple[str, ...] = ()
    footer: str = ""


@dataclass(frozen=True)
class Record:
    """A process record as the forms need it (services.routing.models.ProcessRecord's columns)."""

    id: str
    form: str
    version: int
    data: Mapping[str, Any]
    recorded_at: datetime


@dataclass(frozen=True)
class Case:
    incident_id: str
    commune_code: str
    commune_name: str
    received_at: datetime
    hamlet: str | None = None  # its name
    children: Sequence[Mapping[str, Any]] = ()
    unit_names: Mapping[str, str] = field(default_factory=dict)  # unit id -> name, for the plan's tasks


# -- words ------------------------------------------------------------------------------------------------


def day_vi(value: date | str | None) -> str:
    """dd/mm/yyyy."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return f"{value.day:02d}/{value.month:02d}/{value.year}"


def moment_vi(value: datetime | str | None) -> str:
    """ "09:30 ngày 30/11/2026", Vietnam's time."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(VN)
    return f"{local:%H:%M} ngày {day_vi(local.date())}"


def money_vi(amount: int | None) -> str:
    """500000 -> "500.000 đồng"; "0 đồng" for none."""
    return f"{int(amount or 0):,} đồng".replace(",", ".")


def level_vi(value: str | None) -> str:
    return LABELS_VI.get(value or "", value or "")


def yes_no(value: bool | None) -> str:
    return "Có" if value else "Không"


def place_date(place: str, day: date) -> str:
    """ "Minh Đức, ngày 09 tháng 5 năm 2026" (Decree 30: a leading zero for a day below 10 only)."""
    return f"{place}, ngày {day.day:02d} tháng {day.month} năm {day.year}"


def _local_day(value: datetime | str) -> date:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(VN).date()


def child_facts(child: Mapping[str, Any]) -> str:
    """ "Nữ, sinh ngày 01/05/2013" (or "Nữ, 12 tuổi")."""
    facts = [SEX.get(child.get("sex") or "unknown", "Không rõ")]
    if child.get("birth_date"):
        facts.append(f"sinh ngày {day_vi(child['birth_date'])}")
    elif child.get("age_years") is not None:
        facts.append(f"{child['age_years']} tuổi")
    return ", ".join(facts)


def child_name(child: Mapping[str, Any]) -> str:
    return child.get("full_name") or "(chưa rõ họ tên)"


def child_lines(children: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """ "Trẻ em": name, sex, birth date (or age) of each child of the case."""
    return tuple(
        (f"Trẻ em{f' {i}' if len(children) > 1 else ''}", f"{child_name(child)}, {child_facts(child)}")
        for i, child in enumerate(children, 1)
    )


# -- the forms ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormSpec:
    code: str
    title: str
    subject: str
    fields: tuple[tuple[str, str, str], ...]  # (key, label, kind: text | level | bool | moment | day)
    signer_title: str = ""
    signer_key: str = ""
    day_key: str = ""  # the field whose day the form bears; else the day it was recorded


FORMS: dict[Form, FormSpec] = {
    Form.initial_assessment: FormSpec(
        "Mẫu số 02",
        "PHIẾU ĐÁNH GIÁ BAN ĐẦU",
        f"Nguy cơ, mức độ tổn hại của {CHILD_SUBJECT}",
        (
            ("harm", "Tổn hại trẻ em đã phải chịu hoặc có nguy cơ phải chịu", "text"),
            ("danger_level", "Mức độ nguy hiểm đối với trẻ em", "level"),
            ("urgent_protection", "Trẻ em cần được bảo vệ khẩn cấp", "bool"),
            ("measures_taken", "Các biện pháp đã thực hiện", "text"),
            ("assessed_at", "Thời điểm đánh giá", "moment"),
        ),
        "NGƯỜI ĐÁNH GIÁ",
        "assessed_by",
        "assessed_at",
    ),
    Form.emergency_measures: FormSpec(
        "",
        "BIÊN BẢN",
        "Áp dụng biện pháp can thiệp khẩn cấp bảo vệ trẻ em",
        (
            ("measures", "Các biện pháp bảo vệ khẩn cấp đã áp dụng", "text"),
            ("separation_proposed", "Đề nghị Chủ tịch quyết định tạm thời cách ly trẻ em khỏi cha, mẹ", "bool"),
            ("taken_at", "Thời điểm áp dụng", "moment"),
        ),
        "NGƯỜI THỰC HIỆN",
        "taken_by",
        "taken_at",
    ),
    Form.detailed_assessment: FormSpec(
        "Mẫu số 03",
        "BIÊN BẢN/ PHIẾU ĐÁNH GIÁ CHI TIẾT",
        f"Nguy cơ, mức độ tổn hại và nhu cầu hỗ trợ, can thiệp của {CHILD_SUBJECT}",
        (
            ("meeting_at", "Thời điểm họp đánh giá nhu cầu", "moment"),
            ("participants", "Thành phần tham dự", "text"),
            ("needs", "Nhu cầu của trẻ em", "text"),
            ("findings", "Kết quả đánh giá khác", "text"),
        ),
        "NGƯỜI LẬP BIÊN BẢN",
        "assessed_by",
        "meeting_at",
    ),
    Form.plan: FormSpec(
        "Mẫu số 04",
        "KẾ HOẠCH HỖ TRỢ, CAN THIỆP",
        f"Đối với {CHILD_SUBJECT}",
        (("goals", "Nhu cầu của trẻ em và mục tiêu của Kế hoạch", "text"),),
        "NGƯỜI LẬP KẾ HOẠCH",
        "drafted_by",
    ),
    Form.review: FormSpec(
        "Mẫu số 06",
        "PHIẾU ĐÁNH GIÁ LẠI",
        f"Nguy cơ, mức độ tổn hại của {CHILD_SUBJECT} sau khi thực hiện Kế hoạch hỗ trợ, can thiệp",
        (
            ("harm_severity", "Mức độ nghiêm trọng của tổn hại", "level"),
            ("abuser_access", "Khả năng người xâm hại tiếp cận trẻ em", "level"),
            ("care_obstacles", "Trở ngại trong môi trường chăm sóc trẻ em", "level"),
            ("child_capacity", "Khả năng tự bảo vệ và phục hồi của trẻ em", "level"),
            ("overall", "Đánh giá chung mức độ nguy cơ", "level"),
            ("notes", "Ghi chú", "text"),
            ("reviewed_at", "Thời điểm đánh giá", "moment"),
        ),
        "NGƯỜI ĐÁNH GIÁ",
        "reviewed_by",
        "reviewed_at",
    ),
}
FORM_CODES = {Form.plan_approval: "Mẫu số 05", **{f: s.code for f, s in FORMS.items()}}


def _value(kind: str, value: Any) -> str:
    if kind == "level":
        return level_vi(value)
    if kind == "bool":
        return yes_no(value)
    if kind == "moment":
        return moment_vi(value)
    if kind == "day":
        return day_vi(value)
    return str(value or "").strip() or "Không"


def version_marks(record: Record, latest: int, *, decision: bool = False) -> tuple[str, ...]:
    """ "Phiên bản 2, thay thế phiên bản 1"; an old version says it was replaced. A decision never replaced bears none:
    a first decision is simply the decision."""
    if decision and record.version == latest == 1:
        return ()
    mark = f"Phiên bản {record.version}"
    if record.version > 1:
        mark += f", thay thế phiên bản {record.version - 1}"
    if record.version < latest:
        mark += f" (đã được thay thế bởi phiên bản {latest})"
    return (mark,)


def tasks_table(tasks: Sequence[Mapping[str, Any]], unit_names: Mapping[str, str], title: str) -> tuple[Table, str]:
    """The plan's tasks: STT, unit, task, due date, cost, funding; and the total cost in words."""
    rows = [
        (
            str(i),
            unit_names.get(t["unit_id"], t["unit_id"]),
            t["task"],
            day_vi(t["due_on"]),
            money_vi(t.get("cost_vnd")).removesuffix(" đồng"),
            t.get("funding") or "",
        )
        for i, t in enumerate(tasks, 1)
    ]
    total = sum(int(t.get("cost_vnd") or 0) for t in tasks)
    rows.append(("", "Tổng cộng", "", "", money_vi(total).removesuffix(" đồng"), ""))
    table = Table(
        title,
        ("STT", "Đơn vị thực hiện", "Nhiệm vụ", "Thời hạn hoàn thành", "Kinh phí (đồng)", "Nguồn kinh phí"),
        tuple(rows),
        (0.5, 1.7, 3.0, 1.2, 1.2, 1.3),
        total_row=True,
    )
    return table, f"Tổng kinh phí: {money_vi(total)}."


def _header(case: Case, day: date) -> dict[str, Any]:
    return {
        "issuer_upper": "ỦY BAN NHÂN DÂN",
        "issuer_lower": f"XÃ {case.commune_name.upper()}",
        "place_date": place_date(case.commune_name, day),
    }


def _case_lines(case: Case) -> tuple[tuple[str, str], ...]:
    lines = [("Mã vụ việc", case.incident_id), ("Thời điểm tiếp nhận thông tin", moment_vi(case.received_at))]
    if case.hamlet:
        lines.append(("Nơi cư trú", f"{case.hamlet}, xã {case.commune_name}"))
    return (*lines, *child_lines(case.children))


def child_words(case: Case) -> str:
    """The child a decision is about, in its article: "trẻ em Nguyễn Thị A (Nữ, sinh ngày 01/05/2013), cư trú tại Ấp 2,
    xã Minh Đức (mã vụ việc ...)"."""
    who = "; ".join(f"{child_name(c)} ({child_facts(c)})" for c in case.children)
    where = f", cư trú tại {case.hamlet}, xã {case.commune_name}" if case.hamlet else f", xã {case.commune_name}"
    return f"trẻ em {who or '(chưa rõ)'}{where} (mã vụ việc {case.incident_id}, tiếp nhận lúc {moment_vi(case.received_at)})"


def _decision_signer(data: Mapping[str, Any]) -> Signer:
    deputy = data.get("signed_as") == "deputy"
    return Signer("KT. CHỦ TỊCH" if deputy else "", "PHÓ CHỦ TỊCH" if deputy else "CHỦ TỊCH", data.get("signed_by") or "", "")


def _decision_basis() -> tuple[str, ...]:
    return (
        "Căn cứ Luật Tổ chức chính quyền địa phương;",
        "Căn cứ Luật Trẻ em ngày 05 tháng 4 năm 2016;",
        f"Căn cứ {DECREE} ngày 09 tháng 5 năm 2017 của Chính phủ quy định chi tiết một số điều của Luật Trẻ em;",
        "Xét đề nghị của công chức Văn hóa - Xã hội phụ trách công tác trẻ em,",
    )


def form_context(record: Record, records: Sequence[Record], case: Case) -> Printed:
    """What `record` (one version of a form) prints; `records` are the case's records (every version)."""
    form = Form(record.form)
    latest = max((r.version for r in records if r.form == record.form), default=record.version)
    data = record.data
    marks = version_marks(record, latest, decision=form in (Form.plan_approval, Form.care_decision))
    if form is Form.plan_approval:
        return _approval(record, records, case, marks)
    if form is Form.care_decision:
        return _care(record, case, marks)
    spec = FORMS[form]
    day = _local_day(data[spec.day_key]) if spec.day_key and data.get(spec.day_key) else _local_day(record.recorded_at)
    fields = tuple((label, _value(kind, data.get(key))) for key, label, kind in spec.fields)
    tables: tuple[Table, ...] = ()
    after: tuple[tuple[str, str], ...] = ()
    if form is Form.plan:
        table, total = tasks_table(data.get("tasks") or [], case.unit_names, "Các nhiệm vụ hỗ trợ, can thiệp")
        tables, after = (table,), (("", total),)
        marks += tuple(
            f"Đã được phê duyệt tại Quyết định số {a.data.get('decision_no', '')} ngày {day_vi(a.data.get('approved_on'))}"
            for a in records
            if a.form == Form.plan_approval.value and a.data.get("plan_version") == record.version
        )
    return Printed(
        form_code=spec.code,
        number="",
        title=spec.title,
        subject=spec.subject,
        marks=marks,
        case=_case_lines(case),
        fields=fields,
        tables=tables,
        after_tables=after,
        signer=Signer("", spec.signer_title, str(data.get(spec.signer_key) or "")),
        footer=f"{spec.code + ' - ' if spec.code else ''}{spec.title.capitalize()} - vụ việc {case.incident_id} - phiên bản {record.version}",
        **_header(case, day),
    )


def _approval(record: Record, records: Sequence[Record], case: Case, marks: tuple[str, ...]) -> Printed:
    """Mẫu 05: the chairman's decision approving the plan's version it names, with that version's tasks."""
    data = record.data
    plan_version = data.get("plan_version")
    plan = next((r for r in records if r.form == Form.plan.value and r.version == plan_version), None)
    tasks = (plan.data.get("tasks") if plan else None) or []
    table, total = tasks_table(tasks, case.unit_names, "Các nhiệm vụ hỗ trợ, can thiệp được phê duyệt")
    drafted = f", lập ngày {day_vi(_local_day(plan.recorded_at))}" if plan else ""
    goals = (plan.data.get("goals") if plan else "") or ""
    return Printed(
        form_code="Mẫu số 05",
        number=f"Số: {data.get('decision_no', '')}",
        title="QUYẾT ĐỊNH",
        subject=f"Về việc phê duyệt Kế hoạch hỗ trợ, can thiệp đối với {CHILD_SUBJECT}",
        marks=marks,
        case=(),
        authority=f"CHỦ TỊCH ỦY BAN NHÂN DÂN XÃ {case.commune_name.upper()}",
        basis=_decision_basis(),
        articles=(
            ("Điều 1.", f"Phê duyệt Kế hoạch hỗ trợ, can thiệp (phiên bản {plan_version}{drafted}) đối với {child_words(case)}."),
            ("", f"Mục tiêu của Kế hoạch: {goals}"),
        ),
        tables=(table,),
        after_tables=(
            ("", total),
            (
                "Điều 2.",
                "Các cơ quan, đơn vị được giao nhiệm vụ tại Điều 1 có trách nhiệm thực hiện đúng nội dung và thời hạn; "
                "công chức Văn hóa - Xã hội phụ trách công tác trẻ em theo dõi, đánh giá việc thực hiện Kế hoạch.",
            ),
            (
                "Điều 3.",
                "Quyết định này có hiệu lực kể từ ngày ký. Văn phòng Ủy ban nhân dân xã, công chức Văn hóa - Xã hội "
                "và các cơ quan, đơn vị có tên tại Điều 1 chịu trách nhiệm thi hành Quyết định này./.",
            ),
        ),
        signer=_decision_signer(data),
        recipients=("- Như Điều 3;", "- Lưu: VT, hồ sơ vụ việc."),
        footer=f"Mẫu số 05 - Quyết định {data.get('decision_no', '')} - vụ việc {case.incident_id} - phiên bản {record.version}",
        **_header(case, _local_day(data["approved_on"]) if data.get("approved_on") else _local_day(record.recorded_at)),
    )


def _care(record: Record, case: Case, marks: tuple[str, ...]) -> Printed:
    """The chairman's decision on temporary care away from the parents (Art. 32 of the decree)."""
    data = record.data
    starts, ends = date.fromisoformat(data["starts_on"]), date.fromisoformat(data["ends_on"])
    days = (ends - starts).days + 1
    extension = data.get("extension_reason") or ""
    articles = [
        (
            "Điều 1.",
            f"Áp dụng biện pháp tạm thời cách ly {child_words(case)} khỏi môi trường hoặc người gây tổn hại "
            f"và bố trí chăm sóc thay thế tạm thời tại: {data.get('placement', '')}.",
        ),
        (
            "Điều 2.",
            f"Thời gian chăm sóc thay thế tạm thời: {days} ngày, từ ngày {day_vi(starts)} đến hết ngày {day_vi(ends)}."
            + (f" Lý do kéo dài: {extension}" if extension else ""),
        ),
        (
            "Điều 3.",
            "Quyết định này có hiệu lực kể từ ngày ký. Công chức Văn hóa - Xã hội phụ trách công tác trẻ em, Công an xã "
            "và gia đình, cá nhân nhận chăm sóc trẻ em chịu trách nhiệm thi hành Quyết định này./.",
        ),
    ]
    return Printed(
        form_code="",
        number=f"Số: {data.get('decision_no', '')}",
        title="QUYẾT ĐỊNH",
        subject="Về việc áp dụng biện pháp chăm sóc thay thế tạm thời đối với trẻ em",
        marks=marks,
        case=(),
        authority=f"CHỦ TỊCH ỦY BAN NHÂN DÂN XÃ {case.commune_name.upper()}",
        basis=_decision_basis(),
        articles=tuple(articles),
        signer=_decision_signer(data),
        recipients=("- Như Điều 3;", "- Lưu: VT, hồ sơ vụ việc."),
        footer=f"Quyết định {data.get('decision_no', '')} - vụ việc {case.incident_id} - phiên bản {record.version}",
        **_header(case, _local_day(record.recorded_at)),
    )


def file_name(record: Record, fmt: str) -> str:
    """ "mau-04-plan-v2.pdf"; a record with no Mẫu of its own by its form's name."""
    code = FORM_CODES.get(Form(record.form), "").replace("Mẫu số ", "mau-")
    return f"{code + '-' if code else ''}{record.form.replace('_', '-')}-v{record.version}.{fmt}"


# -- writing ----------------------------------------------------------------------------------------------


_html = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def to_html(printed: Printed) -> str:
    return _html.get_template("form.html").render(p=printed)


def to_pdf(printed: Printed) -> bytes:
    from weasyprint import HTML

    return HTML(string=to_html(printed), base_url=str(TEMPLATES)).write_pdf()


def to_docx(printed: Printed) -> bytes:
    """The same form in Word: A4, the decree's margins, Times New Roman (shared.docx_tables)."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Mm, Pt

    from shared.docx_tables import BODY_PT, FONT, TEXT_WIDTH_MM, add_table, page_setup, paragraph, set_font

    center, right, justify = WD_ALIGN_PARAGRAPH.CENTER, WD_ALIGN_PARAGRAPH.RIGHT, WD_ALIGN_PARAGRAPH.JUSTIFY
    doc = Document()
    page_setup(doc)
    normal = doc.styles["Normal"]
    set_font(normal, BODY_PT)
    normal.paragraph_format.space_after = Pt(0)

    if printed.form_code:
        paragraph(doc, f"{printed.form_code} ({DECREE})", size=11, italic=True, align=right)
    head = doc.add_table(rows=1, cols=2)
    left, motto = head.rows[0].cells
    left.width, motto.width = Mm(TEXT_WIDTH_MM * 0.4), Mm(TEXT_WIDTH_MM * 0.6)
    left.paragraphs[0].alignment = center
    set_font(left.paragraphs[0].add_run(printed.issuer_upper), 12)
    paragraph(left, printed.issuer_lower, size=12, bold=True, align=center)
    paragraph(left, "―――――", size=10, align=center)
    if printed.number:
        paragraph(left, printed.number, size=13, align=center)
    motto.paragraphs[0].alignment = center
    set_font(motto.paragraphs[0].add_run("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"), 12, bold=True)
    paragraph(motto, "Độc lập - Tự do - Hạnh phúc", size=13, bold=True, align=center)
    paragraph(motto, "―――――――――――", size=10, align=center)
    paragraph(motto, printed.place_date, italic=True, align=center)

    for mark in printed.marks:
        paragraph(doc, mark, size=12, italic=True, align=center, before=6)
    paragraph(doc, printed.title, size=14, bold=True, align=center, before=12)
    paragraph(doc, printed.subject, size=14, bold=True, align=center, after=12)
    if printed.authority:
        paragraph(doc, printed.authority, size=14, bold=True, align=center, after=6)
    for line in printed.basis:
        paragraph(doc, line, italic=True, align=justify, after=3).paragraph_format.first_line_indent = Mm(10)
    if printed.basis:
        paragraph(doc, "QUYẾT ĐỊNH:", size=14, bold=True, align=center, before=6, after=6)

    def labelled(label: str, value: str) -> None:
        p = paragraph(doc, "", align=justify, after=3)
        p.paragraph_format.first_line_indent = Mm(10)
        set_font(p.add_run(f"{label}: "), BODY_PT, bold=True)
        set_font(p.add_run(value), BODY_PT)

    if printed.case:
        paragraph(doc, "I. THÔNG TIN VỤ VIỆC", bold=True, before=6, after=3)
    for label, value in printed.case:
        labelled(label, value)
    if printed.fields:
        paragraph(doc, "II. NỘI DUNG", bold=True, before=6, after=3)
    for label, value in printed.fields:
        labelled(label, value)

    def article(head_words: str, text: str) -> None:
        p = paragraph(doc, "", align=justify, after=3)
        p.paragraph_format.first_line_indent = Mm(10)
        if head_words:
            set_font(p.add_run(f"{head_words} "), BODY_PT, bold=True)
        set_font(p.add_run(text), BODY_PT)

    for head_words, text in printed.articles:
        article(head_words, text)
    for table in printed.tables:
        add_table(doc, table)
    for head_words, text in printed.after_tables:
        article(head_words, text)

    foot = doc.add_table(rows=1, cols=2)
    where, sign = foot.rows[0].cells
    where.width, sign.width = Mm(TEXT_WIDTH_MM * 0.5), Mm(TEXT_WIDTH_MM * 0.5)
    if printed.recipients:
        set_font(where.paragraphs[0].add_run("Nơi nhận:"), 12, bold=True, italic=True)
        for line in printed.recipients:
            paragraph(where, line, size=11)
    if printed.signer:
        s = printed.signer
        sign.paragraphs[0].alignment = center
        set_font(sign.paragraphs[0].add_run(s.on_behalf or s.title), BODY_PT, bold=True)
        if s.on_behalf:
            paragraph(sign, s.title, bold=True, align=center)
        if s.hint:
            paragraph(sign, s.hint, size=12, italic=True, align=center)
        paragraph(sign, "", align=center, before=48)
        paragraph(sign, s.name, bold=True, align=center)
    if printed.footer:
        footer = doc.sections[0].footer.paragraphs[0]
        footer.alignment = right
        run = footer.add_run(printed.footer)
        run.font.name, run.font.size, run.font.italic = FONT, Pt(9), True
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
