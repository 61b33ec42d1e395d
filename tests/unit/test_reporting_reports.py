"""Generated reports, pure: which are due at a moment, when a new revision is needed, and what is on time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.reporting.periods import DEFAULT_PLANS, PlanConfig, PlanReport, parse_period
from services.reporting.reports import (
    DayChange,
    LatestRevision,
    ReportStatus,
    attach,
    closed_plan_periods,
    communes_existing,
    due_reports,
    last_change,
    next_step,
    numbers,
    on_time,
    same_numbers,
)
from shared.reference import load_hierarchy

HIERARCHY = load_hierarchy()
UTC = UTC
SETTLE = timedelta(minutes=2)


def ids(periods) -> list[str]:
    return [p.id for p in periods]


class TestWhichPlanPeriodsHaveClosed:
    def test_the_six_month_report_is_due_once_30_april_is_over_in_vietnam(self):
        assert ids(closed_plan_periods(DEFAULT_PLANS, date(2025, 4, 30), date(2024, 11, 1))) == []
        assert ids(closed_plan_periods(DEFAULT_PLANS, date(2025, 5, 1), date(2024, 11, 1))) == ["2025-6M"]

    def test_the_annual_report_is_due_once_31_october_is_over(self):
        assert ids(closed_plan_periods(DEFAULT_PLANS, date(2025, 10, 31), date(2024, 11, 1))) == ["2025-6M"]
        assert ids(closed_plan_periods(DEFAULT_PLANS, date(2025, 11, 1), date(2024, 11, 1))) == ["2025-6M", "2025-12M"]

    def test_periods_before_the_first_data_are_not_reported(self):
        # Data from 1 November 2024: the 2024 reports (windows ending 1 May and 1 November 2024) hold none of it.
        got = ids(closed_plan_periods(DEFAULT_PLANS, date(2026, 11, 5), date(2024, 11, 1)))
        assert got == ["2025-6M", "2025-12M", "2026-6M", "2026-12M"]
        assert ids(closed_plan_periods(DEFAULT_PLANS, date(2026, 11, 5), date(2024, 10, 31))) == ["2024-12M", *got]

    def test_the_configured_plan_decides(self):
        plans = PlanConfig((PlanReport("3M", due_month=4, due_day=5, months=3),))
        assert ids(closed_plan_periods(plans, date(2026, 4, 1), date(2025, 12, 1))) == ["2026-3M"]


class TestWhichCommunes:
    def test_before_the_reform_three_communes_after_it_one(self):
        assert communes_existing(HIERARCHY, date(2024, 11, 1), date(2025, 5, 1)) == ["25339", "25348", "25349"]
        assert communes_existing(HIERARCHY, date(2025, 11, 1), date(2026, 5, 1)) == ["25349"]

    def test_a_window_across_the_reform_has_every_commune_of_either_version(self):
        assert communes_existing(HIERARCHY, date(2024, 11, 1), date(2025, 11, 1)) == ["25339", "25348", "25349"]
        assert communes_existing(HIERARCHY, date(2025, 7, 1), date(2025, 7, 2)) == ["25349"]
        assert communes_existing(HIERARCHY, date(2025, 6, 30), date(2025, 7, 1)) == ["25339", "25348", "25349"]

    def test_due_reports_pair_each_closed_period_with_its_communes(self):
        due = due_reports(HIERARCHY, DEFAULT_PLANS, date(2026, 5, 1), date(2025, 1, 15))
        assert [(d.period.id, d.commune) for d in due] == [
            ("2025-6M", "25339"), ("2025-6M", "25348"), ("2025-6M", "25349"),
            ("2025-12M", "25339"), ("2025-12M", "25348"), ("2025-12M", "25349"),
            ("2026-6M", "25349"),
        ]

    def test_nothing_is_due_before_there_is_any_data(self):
        assert due_reports(HIERARCHY, DEFAULT_PLANS, date(2026, 5, 1), None) == []


class TestWhenANewRevisionIsNeeded:
    checked = datetime(2025, 5, 3, tzinfo=UTC)
    latest = LatestRevision(revision=1, as_of=checked - timedelta(days=1), checked_at=checked)

    def test_no_revision_yet_makes_the_first(self):
        assert next_step(None, None, SETTLE) == "first"

    def test_nothing_new_needs_nothing(self):
        assert next_step(self.latest, None, SETTLE) == "none"
        assert next_step(self.latest, self.checked - SETTLE - timedelta(seconds=1), SETTLE) == "none"

    def test_a_fact_after_the_last_check_is_looked_at(self):
        assert next_step(self.latest, self.checked + timedelta(seconds=1), SETTLE) == "check"

    def test_a_fact_stamped_just_before_the_check_may_have_committed_after_it_so_it_is_looked_at_again(self):
        assert next_step(self.latest, self.checked - timedelta(seconds=30), SETTLE) == "check"

    def test_only_changes_of_the_commune_inside_the_period_count(self):
        period = parse_period("2025-6M")
        at = datetime(2025, 5, 20, tzinfo=UTC)
        changes = [
            DayChange("25349", date(2025, 4, 30), at),
            DayChange("25349", date(2025, 5, 1), at + timedelta(hours=1)),
            DayChange("25348", date(2025, 1, 1), at + timedelta(hours=2)),
            DayChange("25349", date(2024, 11, 1), at - timedelta(hours=1)),
        ]
        assert last_change(changes, "25349", period) == at
        assert last_change(changes, "25339", period) is None


class TestOnTime:
    due = date(2025, 5, 10)

    def test_produced_by_the_end_of_the_due_date_in_vietnam_is_on_time(self):
        assert on_time(datetime(2025, 5, 10, 16, 59, tzinfo=UTC), self.due)  # 23:59 on 10 May in Vietnam
        assert not on_time(datetime(2025, 5, 10, 17, 0, tzinfo=UTC), self.due)  # 00:00 on 11 May

    def test_generation_time_is_the_first_revisions_and_timeliness_the_first_sending(self):
        first = datetime(2025, 5, 2, tzinfo=UTC)
        status = ReportStatus("25349", 3, first, first + timedelta(days=40), first + timedelta(days=40), self.due)
        assert status.produced and status.produced_on_time is True and status.on_time is None
        sent = ReportStatus("25349", 3, first, first, first, self.due, "sent", 2, datetime(2025, 5, 10, 16, 59, tzinfo=UTC))
        assert sent.on_time is True and sent.timeliness == "on_time"
        late = ReportStatus("25349", 3, first, first, first, self.due, "sent", 1, datetime(2025, 5, 10, 17, 0, tzinfo=UTC))
        assert late.on_time is False and late.timeliness == "late"

    def test_a_report_not_sent_is_late_only_once_the_due_date_is_over(self):
        status = ReportStatus("25349", 0, None, None, None, self.due, today=self.due)
        assert not status.produced and status.on_time is None and status.timeliness == "pending"
        status = ReportStatus("25349", 1, None, None, None, self.due, "approved", 1, None, today=date(2025, 5, 11))
        assert status.on_time is None and status.timeliness == "late"


class TestSameNumbers:
    def summary(self, **changes):
        base = {
            "org_unit": "25349",
            "period": {"id": "2025-6M", "start": date(2024, 11, 1), "end": date(2025, 4, 30), "due": date(2025, 5, 10)},
            "as_of": datetime(2025, 5, 3, tzinfo=UTC),
            "indicators": {"incidents_total": 4, "response": {"police": {"median_seconds_to_acknowledge": 61.5}}},
        }
        return {**base, **changes}

    def test_the_time_and_the_revision_do_not_make_a_difference(self):
        stored = numbers(self.summary())  # as stored: JSON types
        fresh = self.summary(as_of=datetime(2025, 6, 1, tzinfo=UTC), revision=2)
        assert isinstance(stored["period"]["start"], str)
        assert same_numbers(stored, fresh)

    def test_any_number_does(self):
        changed = self.summary(indicators={"incidents_total": 5, "response": {"police": {"median_seconds_to_acknowledge": 61.5}}})
        assert not same_numbers(self.summary(), changed)


class TestAttach:
    due = date(2025, 5, 10)
    produced = datetime(2025, 5, 1, 1, tzinfo=UTC)

    def statuses(self):
        return {
            "25339": ReportStatus("25339", 1, self.produced, self.produced, self.produced, self.due, "sent", 1, self.produced),
            "25348": ReportStatus("25348", 0, None, None, None, self.due),
            "25349": ReportStatus("25349", 2, self.produced + timedelta(days=20), self.produced, self.produced, self.due,
                                  "sent", 2, self.produced + timedelta(days=20)),
        }

    def test_a_district_summary_says_which_reports_were_produced_and_sent_on_time(self):
        summary = {
            "org_unit": "694",
            "level": "district",
            "communes": [{"code": c, "name": n} for c, n in (("25339", "An Phú"), ("25348", "Minh Đức"), ("25349", "Minh Tâm"))],
            "completeness": {"communes_expected": ["25339", "25348", "25349"], "communes_with_data": []},
        }
        completeness = attach(summary, self.statuses())["completeness"]
        rows = {r["code"]: r for r in completeness["reports"]}
        assert (rows["25339"]["produced"], rows["25339"]["on_time"], rows["25339"]["revision"]) == (True, True, 1)
        assert (rows["25348"]["produced"], rows["25348"]["on_time"], rows["25348"]["revision"]) == (False, None, None)
        assert (rows["25349"]["on_time"], rows["25349"]["revision"], rows["25349"]["name"]) == (False, 2, "Minh Tâm")
        assert (completeness["reports_produced"], completeness["reports_on_time"]) == (2, 1)

    def test_a_commune_summary_carries_its_latest_revision(self):
        summary = attach({"org_unit": "25349", "level": "commune"}, self.statuses())
        assert summary["revision"] == 2 and summary["report"]["first_produced_at"] == self.produced + timedelta(days=20)
        assert attach({"org_unit": "25348", "level": "commune"}, self.statuses())["revision"] is None


class TestConfiguration:
    def test_the_plan_comes_from_the_environment(self, monkeypatch):
        from services.reporting.app import plans_of
        from shared.settings import ReportingSettings

        monkeypatch.setenv(
            "BAOVE_REPORTING_PLAN_REPORTS", '[{"suffix": "6M", "due_month": 7, "due_day": 15, "months": 3}]'
        )
        plans = plans_of(ReportingSettings())
        period = parse_period("2026-6M", plans)
        assert (period.start, period.end, period.due) == (date(2026, 4, 1), date(2026, 7, 1), date(2026, 7, 15))

    def test_the_default_plan_is_the_seeds(self):
        from services.reporting.app import plans_of
        from shared.settings import ReportingSettings

        assert plans_of(ReportingSettings()) is DEFAULT_PLANS

    @pytest.mark.parametrize(
        "reports",
        [
            '[{"suffix": "6M", "due_month": 2, "due_day": 30, "months": 6}]',
            '[{"suffix": "6M", "due_month": 5, "due_day": 10, "months": 6}, {"suffix": "6M", "due_month": 6, "due_day": 1, "months": 1}]',
        ],
    )
    def test_a_plan_that_cannot_be_is_refused_at_start(self, monkeypatch, reports):
        from services.reporting.app import plans_of
        from shared.settings import ReportingSettings

        monkeypatch.setenv("BAOVE_REPORTING_PLAN_REPORTS", reports)
        with pytest.raises(ValueError):
            plans_of(ReportingSettings())

    def test_the_clock_offset_is_for_development_only(self):
        from pydantic import ValidationError

        from shared.clock import offset_clock
        from shared.settings import CommonSettings, ReportingSettings

        moved = offset_clock(ReportingSettings(clock_offset_seconds=-86400).clock_offset_seconds)
        assert abs((datetime.now(UTC) - moved()) - timedelta(days=1)) < timedelta(seconds=5)
        with pytest.raises(ValidationError, match="refused outside"):
            ReportingSettings(clock_offset_seconds=60, common=CommonSettings(env="prod"))
