"""Exports: Vietnamese headings, the same numbers as the JSON, blank cells for no data."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from services.reporting.aggregates import ActivityGroup, ChildGroup, IncidentGroup, build_summary, tally_by_commune
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


class TestSmallCells:
    """Counts under 5 below district level show as "<5", and no such count can be worked out from the others."""

    def small_summary(self, code: str) -> dict:
        period = parse_period("2025S1")
        tallies = tally_by_commune(
            [
                IncidentGroup("25349", "violence", "high", "hotline_111", "25349.hamlet.ap-2", False, 7),
                IncidentGroup("25349", "sexual_abuse", "high", "hotline_111", "25349.hamlet.ap-1", False, 1),
                IncidentGroup("25339", "violence", "medium", "phone", None, True, 9),
                IncidentGroup("25348", "violence", "medium", "phone", None, True, 6),
            ],
            [
                ChildGroup("25349", "violence", "female", "6-10", "", 7),
                ChildGroup("25349", "sexual_abuse", "female", "11-15", "", 1),
                ChildGroup("25339", "violence", "male", "0-5", "", 9),
                ChildGroup("25348", "violence", "male", "0-5", "", 6),
            ],
        )
        return build_summary(HIERARCHY, code, period, HIERARCHY.coverage(code, period.start, period.end), tallies, datetime(2025, 7, 1, tzinfo=UTC))

    def grid(self, code: str, threshold: int = 5) -> dict[tuple[str, str], list]:
        _, rows = table(self.small_summary(code), NAMES, threshold)
        return {(row[0], row[1]): row[3:] for row in rows}

    def test_a_small_commune_count_shows_as_under_5_and_the_district_total_stays_exact(self):
        grid = self.grid("694")  # columns: total, 25339, 25348, 25349
        # The district's 1 is exact; the other communes' zeros are hidden too, else 1 - 0 - 0 names the commune's count.
        assert grid[("Vụ việc theo loại", "sexual_abuse")] == [1, "x", "x", "<5"]
        assert grid[("Trẻ em bị xâm hại theo hình thức", "sexual_abuse")][3] == "<5"
        assert grid[("Tổng số vụ việc", "")][0] == 23

    def test_hamlet_lines_are_protected_even_in_the_district_total(self):
        grid = self.grid("694")
        assert grid[("Vụ việc theo ấp, sóc", "25349.hamlet.ap-1")][0] == "<5"

    def test_a_commune_export_is_below_district_level(self):
        grid = self.grid("25349")
        assert grid[("Vụ việc theo loại", "sexual_abuse")] == ["<5"]
        assert grid[("Vụ việc theo loại", "violence")] == ["x"], "else 8 - 7 gives the hidden 1 away"
        assert grid[("Vụ việc theo loại", "drowning")] == [0], "a true zero is nobody: it stays"

    def test_no_hidden_count_can_be_recovered_by_subtraction(self):
        """A reader who knows the sums (total = its breakdown; district = its communes) solves every sum with one unknown."""
        for code in ("694", "25349"):
            summary = self.small_summary(code)
            _, rows = table(summary, NAMES, 5)
            grid = {(row[0], row[1], n): value for row in rows for n, value in enumerate(row[3:])}
            columns = len(rows[0]) - 3
            sums = []
            for n in range(columns):
                for total, parts in (("Tổng số vụ việc", ("Vụ việc theo loại", "Vụ việc theo ấp, sóc", "Vụ việc theo kênh tiếp nhận")),
                                     ("Tổng số trẻ em bị xâm hại, bị ảnh hưởng", ("Trẻ em theo giới tính", "Trẻ em theo loại vụ việc"))):
                    for part in parts:
                        sums.append(((total, "", n), [k for k in grid if k[0] == part and k[2] == n]))
            if columns > 1:
                sums += [((s, c, 0), [(s, c, n) for n in range(1, columns)]) for s, c, n in grid if n == 0]
            recovered = True
            while recovered:
                recovered = False
                for total, parts in sums:
                    unknown = [k for k in (total, *parts) if isinstance(grid[k], str) and grid[k] not in ("",)]
                    if len(unknown) == 1:
                        known = {k: (grid[k] or 0) for k in (total, *parts) if k not in unknown}
                        value = known[total] - sum(known[p] for p in parts) if unknown[0] != total else sum(known.values())
                        assert unknown[0] not in grid or grid[unknown[0]] not in ("<5",), f"{code}: {unknown[0]} = {value} recovered"
                        grid[unknown[0]] = value
                        recovered = True

    def test_threshold_0_turns_it_off(self):
        grid = self.grid("25349", threshold=0)
        assert grid[("Vụ việc theo loại", "sexual_abuse")] == [1]


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
