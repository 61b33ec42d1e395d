"""Indicators from grouped counts: every code shown, zero distinct from no data, communes summed, medians pooled."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.reporting.aggregates import (
    ABUSE_FORMS,
    AckTime,
    CaseSteps,
    ChildGroup,
    ChildPlaceGroup,
    ClosedGroup,
    EscalationGroup,
    IncidentGroup,
    LateStepGroup,
    ProcessTally,
    ResponseGroup,
    Tally,
    build_summary,
    covered_windows,
    indicators,
    join_circumstances,
    median,
    process_by_commune,
    tally_by_commune,
    total,
    total_process,
)
from services.reporting.exports import PROCESS_LABELS, SECTIONS, flatten, label
from services.reporting.periods import parse_period
from shared.decree56 import plan_due
from shared.enums import AgeBand, Category, Channel, Sex, SpecialCircumstance, UnitType, Urgency
from shared.reference import load_hierarchy
from shared.workdays import load_calendar

AS_OF = datetime(2026, 1, 5, tzinfo=UTC)


def sample() -> dict[str, Tally]:
    return tally_by_commune(
        incidents=[
            IncidentGroup("25349", "violence", "high", "hotline_111", "25349.hamlet.ap-2", False, 3),
            IncidentGroup("25349", "drowning", "emergency", "phone", None, True, 1),
            IncidentGroup("25348", "injury", "low", "in_person", "25348.hamlet.ap-1", True, 2),
        ],
        children=[
            ChildGroup("25349", "violence", "female", "6-10", "disabled,orphan", 2),
            ChildGroup("25349", "violence", "male", "11-15", "", 2),
            ChildGroup("25348", "injury", "unknown", "unknown", "disabled", 2),
        ],
        responses=[
            ResponseGroup("25349", "police", 3, 2, 1, 1),
            ResponseGroup("25348", "health", 2, 2, 2, 0),
        ],
        ack_times=[
            AckTime("25349", "police", 600.0),
            AckTime("25349", "police", 1800.0),
            AckTime("25348", "police", 60.0),
            AckTime("25348", "health", -3.0),
        ],
        escalations=[EscalationGroup("25349", "police", 1)],
    )


class TestIndicatorsOfOneCommune:
    def test_totals_and_breakdowns_add_up(self):
        ind = indicators(sample()["25349"], ["25349.hamlet.ap-1", "25349.hamlet.ap-2"])
        assert ind["incidents_total"] == 4
        assert ind["children_total"] == 4
        assert ind["by_category"]["violence"] == 3 and ind["by_category"]["drowning"] == 1
        assert ind["by_urgency"] == {"emergency": 1, "high": 3, "medium": 0, "low": 0}
        assert ind["by_hamlet"] == {"25349.hamlet.ap-1": 0, "25349.hamlet.ap-2": 3, "unknown": 1}
        assert ind["by_sex"] == {"male": 2, "female": 2, "unknown": 0}
        assert ind["by_age_band"]["6-10"] == 2 and ind["by_age_band"]["11-15"] == 2
        assert ind["children_by_category"]["violence"] == 4
        assert ind["by_special_circumstance"]["disabled"] == 2 and ind["by_special_circumstance"]["orphan"] == 2
        assert ind["children_in_special_circumstances"] == 2
        assert ind["injuries_and_drownings"] == 1
        assert (ind["cases_open"], ind["cases_closed"]) == (3, 1)

    def test_every_breakdown_lists_every_code_of_its_enum(self):
        ind = indicators(Tally())
        assert list(ind["by_category"]) == [c.value for c in Category]
        assert list(ind["by_urgency"]) == [u.value for u in Urgency]
        assert list(ind["by_channel"]) == [c.value for c in Channel]
        assert list(ind["by_sex"]) == [s.value for s in Sex]
        assert list(ind["by_age_band"]) == [a.value for a in AgeBand]
        assert list(ind["by_special_circumstance"]) == [s.value for s in SpecialCircumstance]
        assert list(ind["response"]) == [u.value for u in UnitType]
        assert ind["by_hamlet"] == {"unknown": 0}

    def test_response_per_unit_type_has_counts_median_overdue_and_escalations(self):
        ind = indicators(sample()["25349"])
        assert ind["response"]["police"] == {
            "assignments": 3,
            "acknowledged": 2,
            "acknowledged_within_deadline": 1,
            "median_seconds_to_acknowledge": 1200.0,
            "overdue": 1,
            "escalations": 1,
        }

    def test_a_unit_type_with_nothing_acknowledged_has_a_null_median(self):
        assert indicators(sample()["25349"])["response"]["health"]["median_seconds_to_acknowledge"] is None

    def test_a_negative_wait_from_clock_skew_counts_as_zero(self):
        assert indicators(sample()["25348"])["response"]["health"]["median_seconds_to_acknowledge"] == 0.0


class TestZeroAndNoData:
    def test_no_data_is_null(self):
        assert indicators(None) is None

    def test_a_commune_with_no_incidents_is_all_zeros(self):
        ind = indicators(Tally())
        assert ind["incidents_total"] == 0 and ind["children_total"] == 0
        assert set(ind["by_category"].values()) == {0}
        assert ind["response"]["police"]["median_seconds_to_acknowledge"] is None

    def test_a_code_outside_the_enum_is_kept_not_dropped(self):
        t = tally_by_commune([IncidentGroup("25349", "violence", "low", "phone", "25349.hamlet.ap-9", False, 1)])
        ind = indicators(t["25349"], ["25349.hamlet.ap-1"])
        assert ind["by_hamlet"] == {"25349.hamlet.ap-1": 0, "unknown": 0, "25349.hamlet.ap-9": 1}


class TestSummingCommunes:
    def test_the_total_is_the_sum_of_the_commune_rows(self):
        tallies = sample()
        rows = [indicators(t) for t in tallies.values()]
        whole = indicators(total(tallies.values()))
        assert whole["incidents_total"] == sum(r["incidents_total"] for r in rows) == 6
        for key in ("by_category", "by_channel", "by_sex", "by_special_circumstance"):
            for code, n in whole[key].items():
                assert n == sum(r[key][code] for r in rows)
        assert whole["response"]["police"]["assignments"] == 3
        assert whole["response"]["health"]["acknowledged_within_deadline"] == 2

    def test_the_total_median_pools_every_wait_rather_than_averaging_medians(self):
        whole = indicators(total(sample().values()))
        assert whole["response"]["police"]["median_seconds_to_acknowledge"] == 600.0  # of 60, 600, 1800

    def test_summing_leaves_the_rows_untouched(self):
        tallies = sample()
        total(tallies.values())
        assert tallies["25349"].incidents_total == 4


class TestMedian:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [([], None), ([5.0], 5.0), ([3.0, 1.0, 2.0], 2.0), ([1.0, 2.0, 3.0, 10.0], 2.5)],
    )
    def test_median(self, values, expected):
        assert median(values) == expected


class TestStoredCircumstances:
    def test_only_known_codes_are_kept_sorted_and_once(self):
        assert join_circumstances(["orphan", "disabled", "orphan", "Nguyen Van A, 12 Le Loi"]) == "disabled,orphan"
        assert join_circumstances([]) == ""


class TestSummary:
    hierarchy = load_hierarchy()

    def build(self, code: str, period_id: str, tallies: dict[str, Tally] | None = None) -> dict:
        period = parse_period(period_id)
        coverages = self.hierarchy.coverage(code, period.start, period.end)
        return build_summary(self.hierarchy, code, period, coverages, tallies or {}, AS_OF)

    def test_a_district_has_a_row_per_commune_that_sums_to_its_total(self):
        s = self.build("694", "2025S1", sample())
        assert s["level"] == "district" and s["name"] == "Hớn Quản"
        assert [r["code"] for r in s["communes"]] == ["25339", "25348", "25349"]
        assert s["indicators"]["incidents_total"] == sum(r["indicators"]["incidents_total"] for r in s["communes"]) == 6
        assert s["completeness"] == {"communes_expected": ["25339", "25348", "25349"], "communes_with_data": ["25348", "25349"]}
        assert s["note"] is None

    def test_a_commune_row_with_no_incidents_shows_zeros_not_nulls(self):
        row = self.build("694", "2025S1", sample())["communes"][0]
        assert row["indicators"]["incidents_total"] == 0

    def test_a_district_abolished_mid_period_covers_only_the_days_it_existed(self):
        s = self.build("694", "2025")
        assert [(v["id"], v["start"], v["end"]) for v in s["hierarchy_version"]] == [
            ("vn-admin-2008", date(2025, 1, 1), date(2025, 6, 30))
        ]
        assert "2025-01-01..2025-06-30" in s["note"]

    def test_a_unit_that_did_not_exist_in_the_period_has_null_indicators(self):
        s = self.build("75", "2025S1")
        assert s["hierarchy_version"] == []
        assert s["indicators"] is None and s["communes"] is None and s["completeness"] is None
        assert "did not exist" in s["note"]

    def test_a_commune_takes_the_name_it_had_in_the_period(self):
        assert self.build("25349", "2025S1")["name"] == "Minh Tâm"
        assert self.build("25349", "2025S2")["name"] == "Minh Đức"

    def test_a_commune_across_the_reform_uses_both_versions_and_has_no_commune_rows(self):
        s = self.build("25349", "2025", sample())
        assert [v["id"] for v in s["hierarchy_version"]] == ["vn-admin-2008", "vn-admin-2025-07"]
        assert s["note"] is None and s["communes"] is None
        assert s["indicators"]["incidents_total"] == 4

    def test_touching_windows_merge(self):
        period = parse_period("2025")
        assert covered_windows(self.hierarchy.coverage("25349", period.start, period.end)) == [
            (date(2025, 1, 1), date(2026, 1, 1))
        ]


class TestDomainIndicators:
    """domain.md section 5: abused children by form, children in special circumstances supported, children by place."""

    def tallies(self) -> dict[str, Tally]:
        return tally_by_commune(
            incidents=[IncidentGroup("25349", "violence", "high", "phone", "25349.hamlet.ap-2", False, 2)],
            children=[
                ChildGroup("25349", "violence", "female", "6-10", "orphan", 2, supported=True),
                ChildGroup("25349", "school_violence", "male", "11-15", "disabled", 1, supported=False),
                ChildGroup("25349", "drowning", "male", "0-5", "", 3, supported=True),
                ChildGroup("25349", "malnutrition", "female", "0-5", "", 1),
            ],
            child_places=[
                ChildPlaceGroup("25349", "high", "phone", "25349.hamlet.ap-2", 4),
                ChildPlaceGroup("25349", "low", "hotline_111", None, 3),
            ],
        )

    def test_abused_children_count_only_the_forms_of_abuse_of_the_law(self):
        ind = indicators(self.tallies()["25349"])
        assert ind["abused_children_total"] == 3
        assert ind["abused_children_by_form"]["violence"] == 2 and ind["abused_children_by_form"]["school_violence"] == 1
        assert "drowning" not in ind["abused_children_by_form"] and "malnutrition" not in ind["abused_children_by_form"]
        assert set(ind["abused_children_by_form"]) == set(ABUSE_FORMS)

    def test_children_in_special_circumstances_supported_are_those_whose_case_was_taken_up(self):
        ind = indicators(self.tallies()["25349"])
        assert ind["children_in_special_circumstances"] == 3
        assert ind["children_in_special_circumstances_supported"] == 2

    def test_children_are_counted_by_their_incidents_urgency_channel_and_hamlet(self):
        ind = indicators(self.tallies()["25349"], ["25349.hamlet.ap-2"])
        assert ind["children_by_urgency"] == {"emergency": 0, "high": 4, "medium": 0, "low": 3}
        assert ind["children_by_channel"]["phone"] == 4 and ind["children_by_channel"]["hotline_111"] == 3
        assert ind["children_by_hamlet"] == {"25349.hamlet.ap-2": 4, "unknown": 3}

    def test_they_sum_over_communes(self):
        tallies = self.tallies()
        tallies["25348"] = tally_by_commune([], children=[ChildGroup("25348", "neglect", "male", "6-10", "abandoned", 1, True)])["25348"]
        whole = indicators(total(tallies.values()))
        assert whole["abused_children_total"] == 4 and whole["children_in_special_circumstances_supported"] == 3


class TestCells:
    """The pre-aggregated cells: whole months per commune, the edges read from facts, tallies stored without loss."""

    def test_a_year_across_the_2025_reform_is_whole_months_only(self):
        from services.reporting.cells import split

        hierarchy = load_hierarchy()
        period = parse_period("2025")
        parts = split(hierarchy.coverage("25349", period.start, period.end))
        assert parts.partial == ()
        assert [m for c, m in parts.cells] == [date(2025, m, 1) for m in range(1, 13)]
        assert {c for c, _ in parts.cells} == {"25349"}

    def test_a_version_change_inside_a_month_leaves_those_days_to_the_facts(self):
        from services.reporting.cells import split
        from shared.reference import Coverage

        version = load_hierarchy().versions[0]
        parts = split([Coverage(version, date(2025, 1, 1), date(2025, 3, 15), ("25339", "25348"))])
        assert parts.cells == (("25339", date(2025, 1, 1)), ("25348", date(2025, 1, 1)), ("25339", date(2025, 2, 1)), ("25348", date(2025, 2, 1)))
        assert [(p.start, p.end) for p in parts.partial] == [(date(2025, 3, 1), date(2025, 3, 15))]
        inside = split([Coverage(version, date(2025, 3, 3), date(2025, 3, 9), ("25339",))])
        assert inside.cells == () and [(p.start, p.end) for p in inside.partial] == [(date(2025, 3, 3), date(2025, 3, 9))]

    def test_a_stored_tally_comes_back_equal_and_adds_up(self):
        from services.reporting.cells import decode, encode

        tallies = tally_by_commune(
            [IncidentGroup("25349", "violence", "high", "phone", None, True, 3)],
            [ChildGroup("25349", "violence", "female", "6_10", "orphan", 2, True)],
            [ResponseGroup("25349", "police", 3, 2, 1, 1)],
            [AckTime("25349", "police", 12.5), AckTime("25349", "police", 0.25)],
            [EscalationGroup("25349", "police", 1)],
            [ChildPlaceGroup("25349", "high", "phone", None, 2)],
        )
        tally = tallies["25349"]
        back = decode(encode(tally))
        assert indicators(back) == indicators(tally)
        assert sorted(back.response["police"].seconds_to_acknowledge) == [0.25, 12.5]
        twice = decode(encode(tally), encode(tally))
        assert twice.incidents_total == 6 and twice.by_category["violence"] == 6
        assert indicators(twice)["response"]["police"]["median_seconds_to_acknowledge"] == pytest.approx(6.375)

    def test_codes_outside_the_enums_survive_storage(self):
        from services.reporting.cells import decode, encode

        tally = Tally(incidents_total=1)
        tally.by_category["a_new_category"] = 1
        tally.by_hamlet["25349.hamlet.ap-9"] = 1
        tally.unit("district_office").assignments = 2
        tally.unit("district_office").seconds_to_acknowledge.extend([5.0, 1.0])
        back = decode(encode(tally), encode(tally))
        assert back.by_category == {"a_new_category": 2}
        assert back.by_hamlet == {"25349.hamlet.ap-9": 2}
        assert back.response["district_office"].assignments == 4
        assert sorted(back.response["district_office"].seconds_to_acknowledge) == [1.0, 1.0, 5.0, 5.0]


# -- the case process (issue 17, point 6) ---------------------------------------------------------------------


class TestProcessIndicators:
    VN = ZoneInfo("Asia/Ho_Chi_Minh")

    def at(self, *args: int) -> datetime:
        return datetime(*args, tzinfo=self.VN)

    def test_twelve_hours_counted_from_the_report_to_the_minute(self):
        received = self.at(2025, 1, 6, 8, 0)
        cases = [
            CaseSteps("25349", received, received + timedelta(hours=11), None),
            CaseSteps("25349", received, received + timedelta(hours=12), None),  # on the deadline: in time
            CaseSteps("25349", received, received + timedelta(hours=12, minutes=1), None),
        ]
        t = process_by_commune(cases, load_calendar())["25349"]
        assert (t.assessed, t.assessed_within_12_hours, t.planned) == (3, 2, 0)

    def test_a_plan_due_over_tet_has_routings_due_date(self):
        # Friday 24 January 2025, the last working day before Tết Ất Tỵ (25/1 to 2/2 off): 3 to 7 February count.
        received = self.at(2025, 1, 24, 10, 0)
        calendar = load_calendar()
        assert plan_due(received, calendar) == self.at(2025, 2, 8, 0, 0)  # routing's deadline, the one reporting counts
        cases = [
            CaseSteps("25348", received, None, self.at(2025, 2, 7, 23, 59)),
            CaseSteps("25348", received, None, self.at(2025, 2, 8, 0, 1)),
        ]
        t = process_by_commune(cases, calendar)["25348"]
        assert (t.planned, t.planned_within_5_working_days, t.plan_due_unknown) == (2, 1, 0)

    def test_a_year_the_calendar_does_not_hold_is_neither_in_time_nor_late(self):
        received = datetime(2031, 3, 3, 1, 0, tzinfo=UTC)
        t = process_by_commune([CaseSteps("25349", received, None, received + timedelta(days=1))], load_calendar())["25349"]
        assert (t.planned, t.planned_within_5_working_days, t.plan_due_unknown) == (1, 0, 1)

    def test_risk_levels_and_care_sum_over_communes(self):
        tallies = process_by_commune(
            [],
            load_calendar(),
            closed=[ClosedGroup("25349", "low", 2), ClosedGroup("25348", "high", 1), ClosedGroup("25348", None, 1)],
            late=[LateStepGroup("25349", "initial_assessment", 1), LateStepGroup("25348", "plan", 2)],
            care=[("25349", 1, 3), ("25348", 2, 2)],
        )
        ind = indicators(Tally(), process=total_process(tallies.values()))
        assert ind["cases_closed_by_risk_level"] == {"high": 1, "medium": 0, "low": 2, "unknown": 1}
        assert ind["temporary_care"] == {"cases": 3, "children": 5}
        assert ind["initial_assessment"]["escalated_overdue"] == 1 and ind["plan"]["escalated_overdue"] == 2
        # No process data: every line still shows, as a counted zero.
        empty = indicators(Tally())
        assert empty["plan"] == {"planned": 0, "planned_within_5_working_days": 0, "due_unknown": 0, "escalated_overdue": 0}
        assert empty["cases_closed_by_risk_level"] == {"high": 0, "medium": 0, "low": 0}

    def test_every_process_line_has_a_vietnamese_label(self):
        lines = [(s, c) for s, c, _ in flatten(indicators(Tally(), process=ProcessTally(closed_by_risk_level=Counter(unknown=1))))]
        process = [(s, c) for s, c in lines if s in PROCESS_LABELS]
        assert len(process) == 3 + 4 + 4 + 2
        for section, code in process:
            assert label(section, code, {}) != code and SECTIONS[section] != section
