"""A summary as a table with Vietnamese headings, written as CSV or XLSX: the same numbers as the JSON.

Pure: a summary dict (summaries.summary) in, bytes out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from shared.enums import LABELS_VI
from shared.labels_vi import CHANNELS, CIRCUMSTANCES, DOCUMENT_STATUS, NO_DOCUMENT, TIMELINESS
from shared.plans import COUNT_FIELDS, COUNT_LABELS_VI, kind_labels
from shared.reference import Hierarchy

from . import smallcells
from .aggregates import UNKNOWN_HAMLET, Tally, indicators
from .periods import VN

SECTIONS: dict[str, str] = {
    "incidents_total": "Tổng số vụ việc",
    "children_total": "Tổng số trẻ em bị xâm hại, bị ảnh hưởng",
    "by_category": "Vụ việc theo loại",
    "by_urgency": "Vụ việc theo mức độ khẩn cấp",
    "by_channel": "Vụ việc theo kênh tiếp nhận",
    "by_hamlet": "Vụ việc theo ấp, sóc",
    "by_sex": "Trẻ em theo giới tính",
    "by_age_band": "Trẻ em theo nhóm tuổi",
    "children_by_category": "Trẻ em theo loại vụ việc",
    "children_by_urgency": "Trẻ em theo mức độ khẩn cấp",
    "children_by_channel": "Trẻ em theo kênh tiếp nhận",
    "children_by_hamlet": "Trẻ em theo ấp, sóc",
    "abused_children_total": "Số trẻ em bị xâm hại",
    "abused_children_by_form": "Trẻ em bị xâm hại theo hình thức",
    "abused_children_by_form_and_sex": "Trẻ em bị xâm hại theo hình thức và giới tính",
    "abused_children_by_form_and_age_band": "Trẻ em bị xâm hại theo hình thức và nhóm tuổi",
    "by_special_circumstance": "Trẻ em có hoàn cảnh đặc biệt theo nhóm",
    "children_in_special_circumstances": "Số trẻ em có hoàn cảnh đặc biệt",
    "children_in_special_circumstances_supported": "Số trẻ em có hoàn cảnh đặc biệt được hỗ trợ",
    "injuries_and_drownings": "Số vụ tai nạn thương tích, đuối nước",
    "cases_open": "Số vụ việc đang xử lý",
    "cases_closed": "Số vụ việc đã kết thúc",
    "response": "Tiếp nhận và xử lý theo đơn vị",
    "initial_assessment": "Đánh giá ban đầu (Mẫu 02, Nghị định 56/2017)",
    "plan": "Kế hoạch hỗ trợ, can thiệp (Mẫu 04, Nghị định 56/2017)",
    "cases_closed_by_risk_level": "Vụ việc đã kết thúc theo mức độ nguy cơ",
    "temporary_care": "Chăm sóc thay thế tạm thời",
}

# The case process's lines (issue 17): section -> code -> label.
PROCESS_LABELS: dict[str, Mapping[str, str]] = {
    "initial_assessment": {
        "assessed": "Số vụ việc đã đánh giá ban đầu",
        "assessed_within_12_hours": "Trong đó đánh giá trong vòng 12 giờ kể từ khi nhận thông báo",
        "escalated_overdue": "Số vụ việc quá 12 giờ chưa đánh giá, đã báo Chủ tịch UBND xã",
    },
    "plan": {
        "planned": "Số vụ việc đã lập kế hoạch hỗ trợ, can thiệp",
        "planned_within_5_working_days": "Trong đó lập trong vòng 5 ngày làm việc",
        "due_unknown": "Chưa xác định được hạn (lịch ngày nghỉ chưa có năm này)",
        "escalated_overdue": "Số vụ việc quá hạn lập kế hoạch, đã báo Chủ tịch UBND xã",
    },
    "cases_closed_by_risk_level": {
        "high": "Nguy cơ cao",
        "medium": "Nguy cơ trung bình",
        "low": "Nguy cơ thấp",
        "unknown": "Không rõ mức độ nguy cơ",
    },
    "temporary_care": {
        "cases": "Số vụ việc có trẻ em được chăm sóc thay thế tạm thời",
        "children": "Số trẻ em được chăm sóc thay thế tạm thời",
    },
}

AGE_BANDS = {
    "0-5": "Từ 0 đến 5 tuổi",
    "6-10": "Từ 6 đến 10 tuổi",
    "11-15": "Từ 11 đến 15 tuổi",
    "16-17": "Từ 16 đến dưới 18 tuổi",
    "unknown": "Không rõ tuổi",
}

MEASURES = {
    "assignments": "Số lượt được giao",
    "acknowledged": "Số lượt đã tiếp nhận",
    "acknowledged_within_deadline": "Tiếp nhận đúng hạn",
    "median_seconds_to_acknowledge": "Thời gian tiếp nhận (trung vị, giây)",
    "overdue": "Quá hạn tiếp nhận",
    "escalations": "Số lần báo lên cấp trên do quá hạn",
}

# Nested breakdowns (form -> code -> count): one line per form and code, labelled by both.
CROSS_TABS: dict[str, Mapping[str, str]] = {
    "abused_children_by_form_and_sex": LABELS_VI,
    "abused_children_by_form_and_age_band": AGE_BANDS,
}

LEVELS = {"commune": "Xã", "district": "Huyện", "province": "Tỉnh"}

FIXED_HEADINGS = ["Nhóm chỉ tiêu", "Mã", "Chỉ tiêu", "Tổng số"]


def hamlet_names(hierarchy: Hierarchy) -> dict[str, str]:
    """Hamlet unit id -> its name (Ấp 2), for every commune of the hierarchy file."""
    return {
        f"{commune}.hamlet.{local}": name for commune, hamlets in hierarchy.hamlets.items() for local, name in hamlets
    }


def flatten(ind: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(section, code, value) for every number of an indicator object; code is "" for a single number."""
    out: list[tuple[str, str, Any]] = []
    for section, value in ind.items():
        if section == "response" or section in CROSS_TABS:
            out += [(section, f"{unit}.{m}", n) for unit, measures in value.items() for m, n in measures.items()]
        elif isinstance(value, Mapping):
            out += [(section, code, n) for code, n in value.items()]
        else:
            out.append((section, "", value))
    return out


def label(section: str, code: str, hamlet_names: Mapping[str, str]) -> str:
    """The Vietnamese name of one line."""
    if not code:
        return SECTIONS.get(section, section)
    if section == "response":
        unit, measure = code.split(".", 1)
        return f"{LABELS_VI.get(unit, unit)} - {MEASURES.get(measure, measure)}"
    if section in CROSS_TABS:
        form, part = code.split(".", 1)
        return f"{LABELS_VI.get(form, form)} - {CROSS_TABS[section].get(part, part)}"
    if section in PROCESS_LABELS:
        return PROCESS_LABELS[section].get(code, code)
    if section in ("by_hamlet", "children_by_hamlet"):
        return "Không rõ ấp" if code == UNKNOWN_HAMLET else hamlet_names.get(code, code)
    table = {
        "by_channel": CHANNELS,
        "children_by_channel": CHANNELS,
        "by_age_band": AGE_BANDS,
        "by_special_circumstance": CIRCUMSTANCES,
    }.get(section, LABELS_VI)
    return table.get(code, code)


def table(
    summary: Mapping[str, Any], hamlet_names: Mapping[str, str], small_cells: int = 0
) -> tuple[list[str], list[list[Any]]]:
    """Headings and rows: one row per number, the total then one column per commune; blank where no data.

    With `small_cells` (the threshold, e.g. 5) counts below district level from 1 to 4 show as "<5", and the other
    counts that would give them away as "x" (smallcells.py)."""
    total = summary["indicators"]
    communes = summary.get("communes") or []
    headings = FIXED_HEADINGS + [f"{row['name']} ({row['code']})" for row in communes]
    # With no data the lines still show, empty: a blank cell is "no data", a 0 is a counted zero.
    lines = flatten(total if total is not None else indicators(Tally()))
    columns = [
        {(s, c): (v if total is not None else None) for s, c, v in lines},
        *(dict(((s, c), v) for s, c, v in flatten(row["indicators"])) for row in communes),
    ]
    values = {(s, c, n): col.get((s, c)) for n, col in enumerate(columns) for s, c, _ in lines}
    commune_total = summary["level"] == "commune"

    def below_district(cell: tuple[str, str, int]) -> bool:
        section, _, column = cell
        return column > 0 or commune_total or section in smallcells.HAMLET_SECTIONS

    hidden = smallcells.protect(values, [(s, c) for s, c, _ in lines], len(columns), below_district, small_cells)
    rows = []
    for section, code, _ in lines:
        rows.append(
            [
                SECTIONS.get(section, section),
                code,
                label(section, code, hamlet_names),
                *(hidden.get((section, code, n), _cell(values[(section, code, n)])) for n in range(len(columns))),
            ]
        )
    codes = [row["code"] for row in communes]
    for commune, code, text, value in activity_lines(summary, hamlet_names):
        rows.append([ACTIVITIES, code, text, value, *(value if c == commune else "" for c in codes)])
    return headings, rows


ACTIVITIES = "Kết quả thực hiện nhiệm vụ theo kế hoạch"
ACTIVITY_COUNT = "Số hoạt động"


def unit_label(unit_id: str, unit_type: str, hamlet_names: Mapping[str, str]) -> str:
    """A unit's Vietnamese name: its hamlet's name, its type's name, and a school's local id."""
    if unit_id in hamlet_names:
        return hamlet_names[unit_id]
    name = LABELS_VI.get(unit_type, unit_type)
    local = unit_id.split(".")[2:]
    return f"{name} ({local[0]})" if local else name


def activity_lines(summary: Mapping[str, Any], hamlet_names: Mapping[str, str]) -> list[tuple[str, str, str, int]]:
    """(commune, code, Vietnamese label, value) per activity row: how many, then each count that is not 0."""
    kinds = kind_labels()
    lines = []
    for row in (summary.get("activities") or {}).get("rows", []):
        head = f"{row['task']} - {unit_label(row['unit_id'], row['unit_type'], hamlet_names)} - {kinds.get(row['kind'], row['kind'])}"
        code = f"{row['task']}.{row['unit_id']}.{row['kind']}"
        lines.append((row["commune_code"], f"{code}.activities", f"{head}: {ACTIVITY_COUNT}", row["activities"]))
        lines += [
            (row["commune_code"], f"{code}.{f}", f"{head}: {COUNT_LABELS_VI[f]}", row[f]) for f in COUNT_FIELDS if row[f]
        ]
    return lines


def _cell(value: Any) -> Any:
    return "" if value is None else value


# A text cell starting with one of these is a formula to a spreadsheet program (OWASP, CSV injection); names and
# codes come from events and settings a forger could write, so every text cell is escaped with a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(row: list[Any]) -> list[Any]:
    """The row with each text that a spreadsheet would evaluate prefixed by a single quote."""
    return [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in row]


def to_csv(summary: Mapping[str, Any], hamlet_names: Mapping[str, str], small_cells: int = 0) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs show Vietnamese correctly."""
    headings, rows = table(summary, hamlet_names, small_cells)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(_inert(headings))
    writer.writerows(_inert(row) for row in rows)
    return buffer.getvalue().encode("utf-8-sig")


def _day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def _moment(value: datetime) -> str:
    return value.astimezone(VN).strftime("%d/%m/%Y %H:%M") + " (giờ Việt Nam)"


def info(summary: Mapping[str, Any], small_cells: int = 0) -> list[tuple[str, str]]:
    """The report's heading block: unit, period, due date, data time, hierarchy versions, note."""
    period = summary["period"]
    lines = [
        ("Đơn vị", f"{summary['name']} ({summary['org_unit']})"),
        ("Cấp", LEVELS.get(summary["level"], summary["level"])),
        ("Kỳ báo cáo", period["id"]),
        ("Từ ngày", _day(period["start"])),
        ("Đến ngày", _day(period["end"])),
        ("Hạn gửi báo cáo", _day(period["due"])),
        ("Số liệu tính đến", _moment(summary["as_of"])),
        (
            "Địa giới hành chính áp dụng",
            "; ".join(f"{v['id']} ({_day(v['start'])} - {_day(v['end'])})" for v in summary["hierarchy_version"])
            or "Không có (đơn vị không tồn tại trong kỳ)",
        ),
    ]
    if summary.get("revision") is not None:
        lines.append(("Lần báo cáo (phiên bản)", str(summary["revision"])))
    completeness = summary.get("completeness")
    if completeness:
        expected = len(completeness["communes_expected"])
        lines.append(("Số xã có số liệu", f"{len(completeness['communes_with_data'])}/{expected}"))
        if completeness.get("reports") is not None:
            lines.append(("Số xã đã có số liệu báo cáo", f"{completeness['reports_produced']}/{expected}"))
            lines.append(("Số xã đã gửi báo cáo", f"{completeness.get('reports_sent') or 0}/{expected}"))
            lines.append(("Số xã gửi báo cáo đúng hạn", f"{completeness['reports_on_time']}/{expected}"))
    if summary.get("note"):
        lines.append(("Ghi chú", summary["note"]))
    if small_cells > 1:
        lines.append((
            "Bảo vệ số liệu nhỏ",
            f"Dưới cấp huyện, số từ 1 đến {small_cells - 1} ghi \"<{small_cells}\"; "
            "ô \"x\" được ẩn để không suy ra được các ô đó (small counts below district level are hidden)",
        ))
    return lines


def to_xlsx(summary: Mapping[str, Any], hamlet_names: Mapping[str, str], small_cells: int = 0) -> bytes:
    headings, rows = table(summary, hamlet_names, small_cells)
    book = Workbook()
    sheet = book.active
    sheet.title = "Tổng hợp"
    sheet.append(["BÁO CÁO TỔNG HỢP CÔNG TÁC BẢO VỆ TRẺ EM"])
    sheet["A1"].font = Font(bold=True, size=13)
    for key, value in info(summary, small_cells):
        sheet.append(_inert([key, value]))
    sheet.append([])
    sheet.append(_inert(headings))
    heading_row = sheet.max_row
    for cell in sheet[heading_row]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in rows:
        sheet.append(_inert(row))
    sheet.freeze_panes = sheet.cell(row=heading_row + 1, column=len(FIXED_HEADINGS))
    for column, width in zip("ABCD", (38, 30, 52, 12)):
        sheet.column_dimensions[column].width = width
    reports = (summary.get("completeness") or {}).get("reports")
    if reports:
        _timeliness_sheet(book, reports)
    if summary.get("activities") is not None:
        _activities_sheet(book, summary["activities"], hamlet_names)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


TIMELINESS_HEADINGS = [
    "Mã xã", "Tên xã", "Đã có số liệu", "Phiên bản số liệu mới nhất", "Lập lần đầu", "Hạn gửi", "Gửi đúng hạn",
    "Tình trạng văn bản", "Phiên bản văn bản", "Ngày gửi", "Thời hạn",
]


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("Có" if value else "Không")


def _timeliness_sheet(book: Workbook, reports: list[Mapping[str, Any]]) -> None:
    """Which communes' plan-period reports were produced, and whether by the due date."""
    sheet = book.create_sheet("Tiến độ báo cáo")
    sheet.append(TIMELINESS_HEADINGS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r in reports:
        sheet.append(
            _inert([
                r["code"],
                r.get("name") or "",
                _yes_no(r["produced"]),
                r["revision"] or "",
                _moment(r["first_produced_at"]) if r["first_produced_at"] else "",
                _day(r["due"]),
                _yes_no(r["on_time"]),
                DOCUMENT_STATUS.get(r.get("document_status"), NO_DOCUMENT),
                r.get("document_version") or "",
                _moment(r["sent_at"]) if r.get("sent_at") else "",
                TIMELINESS.get(r.get("timeliness") or "", ""),
            ])
        )


ACTIVITY_HEADINGS = ["Nhiệm vụ", "Mã đơn vị", "Đơn vị", "Hoạt động", ACTIVITY_COUNT, *(COUNT_LABELS_VI[f] for f in COUNT_FIELDS)]


def _activities_sheet(book: Workbook, activities: Mapping[str, Any], hamlet_names: Mapping[str, str]) -> None:
    """What each unit did under each task of the plan: a row per unit, task and kind, then the total."""
    sheet = book.create_sheet("Kết quả hoạt động")
    sheet.append(ACTIVITY_HEADINGS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    kinds = kind_labels()
    for row in activities["rows"]:
        sheet.append(
            _inert([
                row["task"], row["unit_id"], unit_label(row["unit_id"], row["unit_type"], hamlet_names),
                kinds.get(row["kind"], row["kind"]), row["activities"], *(row[f] for f in COUNT_FIELDS),
            ])
        )
    totals = activities["totals"]
    sheet.append(["Tổng cộng", "", "", "", totals["activities"], *(totals[f] for f in COUNT_FIELDS)])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)


EXPORTERS = {
    "csv": (to_csv, "text/csv; charset=utf-8"),
    "xlsx": (to_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
