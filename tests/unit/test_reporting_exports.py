"""Exports: Vietnamese headings, the same numbers as the JSON, blank cells for no data."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from services.reporting.aggregates import ActivityGroup, IncidentGroup, build_summary, tally_by_commune
from services.reporting.exports import flatten, hamlet_names, table, to_csv, to_xlsx
from services.reporting.periods import parse_period
from shared.plans import COUNT_FIELDS
from shared.reference import load_hierarchy

HIERARCHY = load_hierarchy()
NAMES = hamlet_names(HIERARCHY)


def summary(code: str, period_id: str) -> dict:
    period = parse_period(period_id)
    coverages = HIERARCHY.coverage(code, period.start, period.end)
    tallies = tally_by_commune(
        [
            IncidentGroup("25349", "violence", "high", "hotline_111", "25349.hamlet.ap-2", False, 3),
            IncidentGroup("25339", "drowning", "emergency", "phone", None, True, 1),
        ]
    )
    return build_summary(HIERARCHY, code, period, coverages, tallies, datetime(2025, 7, 1, tzinfo=UTC))


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "a byte-order mark lets spreadsheet programs read Vietnamese"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


class TestCsv:
    def test_headings_are_vietnamese_with_a_column_per_commune(self):
        heading, *_ = csv_rows(to_csv(summary("694", "2025S1"), NAMES))
        assert heading == ["Nhóm chỉ tiêu", "Mã", "Chỉ tiêu", "Tổng số", "An Phú (25339)", "Minh Đức (25348)", "Minh Tâm (25349)"]

    def test_every_number_matches_the_json(self):
        s = summary("694", "2025S1")
        _, *rows = csv_rows(to_csv(s, NAMES))
        expected = flatten(s["indicators"])
        assert len(rows) == len(expected)
        per_commune = [dict(((a, b), v) for a, b, v in flatten(r["indicators"])) for r in s["communes"]]
        for row, (section, code, value) in zip(rows, expected):
            assert row[1] == code
            assert row[3] == ("" if value is None else str(value))
            for cell, commune in zip(row[4:], per_commune):
                got = commune.get((section, code))
                assert cell == ("" if got is None else str(got))

    def test_lines_carry_vietnamese_labels(self):
        _, rows = table(summary("694", "2025S1"), NAMES)
        labels = {(r[0], r[1]): r[2] for r in rows}
        assert labels[("Tổng số vụ việc", "")] == "Tổng số vụ việc"
        assert labels[("Vụ việc theo loại", "drowning")] == "Đuối nước"
        assert labels[("Vụ việc theo kênh tiếp nhận", "hotline_111")] == "Tổng đài 111"
        assert labels[("Vụ việc theo ấp, sóc", "25349.hamlet.ap-2")] == "Ấp 2"
        assert labels[("Tiếp nhận và xử lý theo đơn vị", "police.overdue")] == "Công an xã - Quá hạn tiếp nhận"

    def test_no_data_leaves_cells_blank_not_zero(self):
        _, *rows = csv_rows(to_csv(summary("75", "2025S1"), NAMES))
        assert rows and all(row[3] == "" for row in rows)


class TestXlsx:
    def test_the_workbook_holds_the_heading_block_and_the_same_numbers(self):
        s = summary("694", "2025S1")
        sheet = load_workbook(io.BytesIO(to_xlsx(s, NAMES))).active
        values = [[c for c in row] for row in sheet.iter_rows(values_only=True)]
        info = {row[0]: row[1] for row in values if row and row[0] and len(row) > 1}
        assert info["Đơn vị"] == "Hớn Quản (694)"
        assert info["Kỳ báo cáo"] == "2025S1"
        assert info["Từ ngày"] == "01/01/2025" and info["Đến ngày"] == "30/06/2025"
        start = next(i for i, row in enumerate(values) if row[0] == "Nhóm chỉ tiêu")
        totals = [row[3] for row in values[start + 1 :]]
        assert totals == [v for _, _, v in flatten(s["indicators"])]


class TestFormulaInjection:
    """A forged unit_type (it comes from events) or any text a spreadsheet would run stays text: OWASP's leading quote."""

    FORGED = ("=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd")

    def forged_summary(self) -> dict:
        s = summary("694", "2025S1")
        for n, text in enumerate(self.FORGED):
            s["indicators"]["response"][text] = {"assignments": n}
        s["communes"][0]["name"] = "=1+2"
        s["note"] = "=cmd|' /C calc'!A0"
        return s

    def test_no_csv_cell_starts_like_a_formula(self):
        rows = csv_rows(to_csv(self.forged_summary(), NAMES))
        cells = [cell for row in rows for cell in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert "'=1+2 (25339)" in rows[0] and "'+1+1" in [row[2].split(" - ")[0] for row in rows]

    def test_no_xlsx_cell_is_a_formula(self):
        sheet = load_workbook(io.BytesIO(to_xlsx(self.forged_summary(), NAMES))).active
        cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
        assert not [c.coordinate for c in cells if c.data_type == "f"]
        assert not [c.value for c in cells if isinstance(c.value, str) and c.value[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert "'=cmd|' /C calc'!A0" in [c.value for c in cells]


def with_activities(code: str = "25349") -> dict:
    counts = dict.fromkeys(COUNT_FIELDS, 0) | {"sessions": 3, "participants_total": 80, "participants_female": 50}
    period = parse_period("2025-6M")
    groups = [
        ActivityGroup("25349", "25349.police", "police", "IV.7", "communication", 2, tuple(counts.values())),
        ActivityGroup("25349", "25349.hamlet.ap-2", "hamlet", "IV.10", "inspection", 1,
                      tuple((dict.fromkeys(COUNT_FIELDS, 0) | {"sites_inspected": 4}).values())),
    ]
    coverages = HIERARCHY.coverage(code, period.start, period.end)
    return build_summary(HIERARCHY, code, period, coverages, {}, datetime(2025, 5, 1, tzinfo=UTC), groups)


class TestActivities:
    def test_the_csv_has_a_line_per_activity_count_in_the_plans_words(self):
        _, *rows = csv_rows(to_csv(with_activities(), NAMES))
        lines = {row[1]: (row[2], row[3]) for row in rows if row[0] == "Kết quả thực hiện nhiệm vụ theo kế hoạch"}
        assert lines["IV.7.25349.police.communication.sessions"] == ("IV.7 - Công an xã - Truyền thông, tuyên truyền, giáo dục: Số buổi, lượt", "3")
        assert lines["IV.7.25349.police.communication.participants_female"][1] == "50"
        assert lines["IV.10.25349.hamlet.ap-2.inspection.sites_inspected"][0].startswith("IV.10 - Ấp 2 - Kiểm tra")
        assert "IV.7.25349.police.communication.items_published" not in lines  # a zero the kind does not take

    def test_the_xlsx_has_an_activities_sheet_with_the_totals(self):
        book = load_workbook(io.BytesIO(to_xlsx(with_activities(), NAMES)))
        sheet = book["Kết quả hoạt động"]
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[1][:6] == ("IV.7", "25349.police", "Công an xã", "Truyền thông, tuyên truyền, giáo dục", 2, 3)
        assert rows[-1][0] == "Tổng cộng" and rows[-1][4] == 3
