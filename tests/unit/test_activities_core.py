"""The validation core of an activity: against the commune's plan, the counts' consistency, the note, who may act."""

from datetime import UTC, date, datetime

import pytest

from services.intake import activities
from services.reporting.aggregates import ActivityGroup, activity_indicators
from shared.auth import Principal
from shared.events import ActivityWithdrawn, parse_payload
from shared.plans import COUNT_FIELDS, ActivityCounts, PlanNotFound, load_plan

PLAN = load_plan("25349", 2025)


def check(unit="25349.police", task="IV.7", kind="communication", note=None, **counts):
    counts = counts or {"sessions": 2, "participants_total": 80, "participants_male": 30, "participants_female": 50}
    return activities.check_activity(PLAN, "25349", unit, task, kind, ActivityCounts(**counts), note, 2025)


def messages(errors):
    return " | ".join(e["msg"] for e in errors)


class TestAgainstThePlan:
    def test_a_unit_records_under_its_own_task(self):
        assert check() == []

    def test_a_supporting_unit_may_record_under_the_task(self):
        assert check(unit="25349.radio", task="IV.7") == []

    def test_a_task_not_in_the_plan_is_refused_naming_the_plans_tasks(self):
        [error] = check(task="IV.11")
        assert error["loc"] == ["body", "task_id"] and "IV.11" in error["msg"] and "IV.7" in error["msg"]

    def test_a_unit_neither_responsible_nor_supporting_is_refused(self):
        [error] = check(unit="25349.health", task="IV.7")
        assert "not a health unit" in error["msg"] and "IV.4" in error["msg"]

    def test_the_finance_task_takes_no_activity(self):
        assert "IV.2" in messages(check(unit="25349.cp_officer", task="IV.2"))

    def test_a_kind_the_task_does_not_imply_is_refused(self):
        [error] = check(kind="media")
        assert error["loc"] == ["body", "kind"] and "communication" in error["msg"]

    def test_no_plan_for_the_year_is_said(self):
        [error] = activities.check_activity(None, "25349", "25349.police", "IV.7", "communication", ActivityCounts(sessions=1), None, 2024)
        assert "no children's-work plan for 2024" in error["msg"]

    def test_november_counts_under_the_next_years_plan(self):
        def lookup(commune, year):
            if year != 2025:
                raise PlanNotFound(year)
            return PLAN

        assert activities.plan_for(lookup, "25349", date(2024, 11, 20)) is PLAN
        assert activities.plan_for(lookup, "25349", date(2024, 10, 31)) is None
        assert activities.plan_for(lookup, "25349", date(2025, 12, 1)) is PLAN  # the year's own plan first


class TestCounts:
    def test_a_count_the_kind_does_not_take_is_refused(self):
        assert "not ['sites_inspected']" in messages(check(sessions=1, sites_inspected=3))

    def test_the_required_count_must_be_at_least_one(self):
        assert "needs sessions of at least 1" in messages(check(participants_total=10))
        assert "needs sites_inspected" in messages(check(kind="inspection", sessions=1))

    def test_participants_by_sex_cannot_exceed_the_total(self):
        error = messages(check(sessions=1, participants_total=10, participants_male=6, participants_female=5))
        assert "by sex" in error and "exceed participants_total (10)" in error

    def test_participants_by_age_group_cannot_exceed_the_total(self):
        assert "by age group" in messages(check(sessions=1, participants_total=10, participants_under_16=8, participants_adult=3))

    def test_a_breakdown_without_a_total_is_refused(self):
        assert "participants_total is 0" in messages(check(sessions=1, participants_female=3))

    def test_negative_counts_never_get_this_far(self):
        with pytest.raises(ValueError):
            ActivityCounts(sessions=-1)


class TestNote:
    @pytest.mark.parametrize("note", ["gọi 0912 345 678 để hẹn", "CCCD 079123456789", "mail a.b@example.com"])
    def test_a_note_with_personal_data_is_refused(self, note):
        assert "no personal data" in messages(activities.note_errors(note))

    def test_an_ordinary_note_passes(self):
        assert activities.note_errors("Tuyên truyền tại Ấp 2, 2 buổi, ngày 12/3/2025, 80 người dự") == []

    def test_a_long_note_is_refused(self):
        assert "at most 500" in messages(activities.note_errors("a" * 501))


class TestWhoMay:
    police = Principal("unit", "25349.police", "t1")
    cp = Principal("unit", "25349.cp_officer", "t2", username="lan")
    other_cp = Principal("unit", "25339.cp_officer", "t3")

    def test_a_unit_records_for_itself_and_the_cp_officer_for_the_commune(self):
        assert activities.may_record(self.police, "25349.police")
        assert not activities.may_record(self.police, "25349.radio")
        assert activities.may_record(self.cp, "25349.school.th-minh-tam-a")
        assert not activities.may_record(self.other_cp, "25349.police")

    def test_the_author_is_the_person_or_the_machine_token(self):
        assert activities.author_of(self.cp) == "user:lan"
        assert activities.author_of(self.police) == "token:t1"


class TestEvent:
    def test_the_event_carries_codes_and_counts_never_the_note(self):
        row = {
            "id": "a1", "revision": 3, "commune_code": "25349", "unit_id": "25349.police", "unit_type": "police", "task_id": "IV.7",
            "plan_version": "2025.1", "kind": "communication", "held_on": date(2025, 3, 2), "counts": {"sessions": 2},
            "note": "Tuyên truyền bí mật",
        }
        envelope = activities.build_event("withdrawn", row, "25349.police", datetime(2025, 3, 3, tzinfo=UTC))
        assert envelope.event_type == "activity.withdrawn" and envelope.correlation_id == "a1"
        assert "bí mật" not in envelope.model_dump_json()
        event = parse_payload(envelope)
        assert isinstance(event, ActivityWithdrawn) and event.revision == 3 and event.counts.sessions == 2


class TestSummaryShape:
    def test_rows_follow_the_plans_order_and_sum_per_task_and_in_total(self):
        counts = [0] * len(COUNT_FIELDS)
        counts[0], counts[1] = 2, 50  # sessions, participants_total

        groups = [
            ActivityGroup("25349", "25349.hamlet.ap-2", "hamlet", "IV.10", "communication", 1, tuple(counts)),
            ActivityGroup("25349", "25349.radio", "radio", "IV.7", "communication", 1, tuple(counts)),
            ActivityGroup("25349", "25349.police", "police", "IV.7", "communication", 2, tuple(counts)),
        ]
        out = activity_indicators(groups)
        assert [(r["task"], r["unit_id"]) for r in out["rows"]] == [
            ("IV.7", "25349.police"), ("IV.7", "25349.radio"), ("IV.10", "25349.hamlet.ap-2"),
        ]
        assert out["by_task"][0] == {
            "task": "IV.7", "kind": "communication", "units": ["25349.police", "25349.radio"], "activities": 3,
            **{f: 0 for f in COUNT_FIELDS}, "sessions": 4, "participants_total": 100,
        }
        assert out["totals"]["activities"] == 4 and out["totals"]["sessions"] == 6

    def test_no_activity_is_a_true_zero(self):
        out = activity_indicators([])
        assert out["rows"] == [] and out["totals"] == {"activities": 0, **{f: 0 for f in COUNT_FIELDS}}
