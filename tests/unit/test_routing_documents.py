"""The printed forms' words (services/routing/documents.py, pure): dates, money, the version a form replaces, the signer."""

from datetime import UTC, date, datetime

from services.routing import documents
from services.routing.documents import Case, Record

AT = datetime(2026, 2, 3, 2, 30, tzinfo=UTC)  # 09:30, 03/02/2026 in Vietnam
CASE = Case("case-1", "25349", "Minh Đức", AT, hamlet="Ấp 2", children=({"full_name": "Lê Văn B", "sex": "male", "age_years": 9},))
TASK = {"task": "Khám sức khỏe", "unit_id": "25349.health", "due_on": "2026-02-20", "cost_vnd": 1234567, "funding": ""}


def plan(version: int) -> Record:
    return Record(f"plan-{version}", "plan", version, {"goals": f"mục tiêu {version}", "tasks": [TASK], "drafted_by": "Cán bộ xã"}, AT)


class TestWords:
    def test_dates_money_and_moments_are_written_as_a_commune_writes_them(self):
        assert documents.day_vi("2026-02-20") == "20/02/2026"
        assert documents.money_vi(1234567) == "1.234.567 đồng" and documents.money_vi(None) == "0 đồng"
        assert documents.moment_vi(AT) == "09:30 ngày 03/02/2026"
        assert documents.place_date("Minh Đức", date(2026, 5, 9)) == "Minh Đức, ngày 09 tháng 5 năm 2026"


class TestVersions:
    def test_an_amended_plan_says_what_it_replaces_and_the_old_one_that_it_was_replaced(self):
        records = [plan(1), plan(2)]
        assert documents.form_context(records[1], records, CASE).marks == ("Phiên bản 2, thay thế phiên bản 1",)
        assert documents.form_context(records[0], records, CASE).marks == ("Phiên bản 1 (đã được thay thế bởi phiên bản 2)",)

    def test_the_approval_prints_the_version_it_approved_and_a_deputy_signs_kt_chu_tich(self):
        approval = Record(
            "a-1",
            "plan_approval",
            1,
            {"decision_no": "7/QĐ-UBND", "approved_on": "2026-02-05", "signed_by": "Bà C", "signed_as": "deputy", "plan_version": 1},
            AT,
        )
        records = [plan(1), plan(2), approval]
        printed = documents.form_context(approval, records, CASE)
        assert printed.marks == () and printed.number == "Số: 7/QĐ-UBND"
        assert printed.place_date == "Minh Đức, ngày 05 tháng 2 năm 2026"
        assert "phiên bản 1" in printed.articles[0][1] and "Lê Văn B (Nam, 9 tuổi)" in printed.articles[0][1]
        assert printed.signer == documents.Signer("KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH", "Bà C", "")
        assert printed.tables[0].rows[0][3:5] == ("20/02/2026", "1.234.567")
        assert "Đã được phê duyệt tại Quyết định số 7/QĐ-UBND ngày 05/02/2026" in documents.form_context(records[0], records, CASE).marks
        assert documents.file_name(approval, "pdf") == "mau-05-plan-approval-v1.pdf"
