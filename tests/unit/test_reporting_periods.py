"""Period ids, their windows in Vietnam's dates, and the UTC instants of their edges."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.reporting.periods import (
    DEFAULT_PLANS,
    PlanConfig,
    PlanReport,
    add_months,
    local_date,
    local_midnight_utc,
    parse_period,
)


class TestCalendarPeriods:
    @pytest.mark.parametrize(
        ("text", "kind", "start", "end"),
        [
            ("2025", "year", date(2025, 1, 1), date(2026, 1, 1)),
            ("2025S1", "half", date(2025, 1, 1), date(2025, 7, 1)),
            ("2025S2", "half", date(2025, 7, 1), date(2026, 1, 1)),
            ("2025Q1", "quarter", date(2025, 1, 1), date(2025, 4, 1)),
            ("2025Q2", "quarter", date(2025, 4, 1), date(2025, 7, 1)),
            ("2025Q3", "quarter", date(2025, 7, 1), date(2025, 10, 1)),
            ("2025Q4", "quarter", date(2025, 10, 1), date(2026, 1, 1)),
            ("202501", "month", date(2025, 1, 1), date(2025, 2, 1)),
            ("202502", "month", date(2025, 2, 1), date(2025, 3, 1)),
            ("202412", "month", date(2024, 12, 1), date(2025, 1, 1)),
        ],
    )
    def test_each_kind_has_its_window_and_no_due_date(self, text, kind, start, end):
        period = parse_period(text)
        assert (period.id, period.kind, period.start, period.end, period.due) == (text, kind, start, end, None)

    def test_the_inclusive_last_day_is_the_day_before_the_end(self):
        assert parse_period("202402").last_day == date(2024, 2, 29)

    def test_ids_are_read_case_insensitively_and_given_back_canonical(self):
        assert parse_period(" 2025q2 ").id == "2025Q2"
        assert parse_period("2025-6m").id == "2025-6M"


class TestPlanPeriods:
    def test_the_six_month_report_covers_november_to_april_and_is_due_on_10_may(self):
        period = parse_period("2025-6M")
        assert (period.kind, period.start, period.last_day, period.due) == (
            "plan",
            date(2024, 11, 1),
            date(2025, 4, 30),
            date(2025, 5, 10),
        )

    def test_the_annual_report_covers_november_to_october_and_is_due_on_10_november(self):
        period = parse_period("2025-12M")
        assert (period.start, period.last_day, period.due) == (date(2024, 11, 1), date(2025, 10, 31), date(2025, 11, 10))

    def test_windows_and_due_dates_follow_the_configuration(self):
        plans = PlanConfig((PlanReport("6M", due_month=7, due_day=15, months=3), PlanReport("1M", 2, 5, 1)))
        six = parse_period("2026-6M", plans)
        assert (six.start, six.end, six.due) == (date(2026, 4, 1), date(2026, 7, 1), date(2026, 7, 15))
        one = parse_period("2026-1M", plans)
        assert (one.start, one.end, one.due) == (date(2026, 1, 1), date(2026, 2, 1), date(2026, 2, 5))

    def test_a_report_the_plan_does_not_have_is_refused_naming_the_known_ones(self):
        with pytest.raises(ValueError, match="2025-6M, 2025-12M"):
            parse_period("2025-3M")

    @pytest.mark.parametrize(
        "report",
        [
            lambda: PlanReport("6M", 2, 30, 6),
            lambda: PlanReport("6M", 13, 1, 6),
            lambda: PlanReport("6M", 5, 10, 0),
            lambda: PlanReport("half", 5, 10, 6),
        ],
    )
    def test_an_impossible_configuration_is_refused(self, report):
        with pytest.raises(ValueError):
            report()

    def test_the_defaults_are_the_seed_plan_due_dates(self):
        assert [(r.suffix, r.due_month, r.due_day, r.months) for r in DEFAULT_PLANS.reports] == [
            ("6M", 5, 10, 6),
            ("12M", 11, 10, 12),
        ]


class TestVietnamTime:
    def test_23_30_local_on_30_april_belongs_to_april(self):
        moment = datetime(2025, 4, 30, 16, 30, tzinfo=UTC)  # 23:30 in Vietnam
        day = local_date(moment)
        assert day == date(2025, 4, 30)
        assert parse_period("202504").contains(day)
        assert not parse_period("202505").contains(day)
        assert parse_period("2025-6M").contains(day)

    def test_00_30_local_on_1_may_belongs_to_may_though_it_is_still_april_in_utc(self):
        day = local_date(datetime(2025, 4, 30, 17, 30, tzinfo=UTC))
        assert day == date(2025, 5, 1)
        assert parse_period("202505").contains(day)
        assert not parse_period("2025-6M").contains(day)

    def test_a_naive_time_is_taken_as_utc(self):
        assert local_date(datetime(2025, 4, 30, 17, 0)) == date(2025, 5, 1)

    def test_a_period_starts_at_local_midnight_which_is_17_00_utc_the_day_before(self):
        start, end = parse_period("202505").utc_window()
        assert start == datetime(2025, 4, 30, 17, 0, tzinfo=UTC)
        assert end == datetime(2025, 5, 31, 17, 0, tzinfo=UTC)
        assert local_midnight_utc(date(2025, 1, 1)) == datetime(2024, 12, 31, 17, 0, tzinfo=UTC)

    def test_months_are_added_across_years(self):
        assert add_months(date(2025, 5, 10), -6) == date(2024, 11, 1)
        assert add_months(date(2025, 11, 30), 2) == date(2026, 1, 1)


class TestBadIds:
    @pytest.mark.parametrize("text", ["", "25", "2025S3", "2025Q0", "2025Q5", "2025H1", "2025-05", "2025/05", "20255", "abcd"])
    def test_a_malformed_id_names_the_accepted_forms(self, text):
        with pytest.raises(ValueError, match="YYYYQ1-4"):
            parse_period(text)

    @pytest.mark.parametrize("text", ["202500", "202513"])
    def test_a_month_outside_01_to_12_is_refused(self, text):
        with pytest.raises(ValueError, match="01..12"):
            parse_period(text)

    def test_a_year_out_of_range_is_refused(self):
        with pytest.raises(ValueError, match="year must be"):
            parse_period("0999")
