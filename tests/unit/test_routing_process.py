"""The Decree 56/2017 case process's pure core (services/routing/process.py): steps, who moves them, deadlines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.routing import process
from services.routing.process import Actor, Step, StepCannotMove
from shared.auth import Principal
from shared.errors import Conflict, Forbidden
from shared.workdays import VN, load_calendar

CALENDAR = load_calendar()
CP = Principal("unit", "25349.cp_officer", "t1")
CHAIR = Principal("unit", "25349.chairman", "t2")
POLICE = Principal("unit", "25349.police", "t3")
OTHER_CP = Principal("unit", "25339.cp_officer", "t4")


def test_the_happy_path_with_emergency_measures_and_a_second_plan():
    path = [
        (Step.initial_assessment, Actor.cp_officer),
        (Step.emergency_measures, Actor.cp_officer),
        (Step.detailed_assessment, Actor.cp_officer),
        (Step.plan, Actor.cp_officer),
        (Step.plan_approved, Actor.chairman),
        (Step.implementation, Actor.cp_officer),
        (Step.review, Actor.cp_officer),
        (Step.plan, Actor.cp_officer),  # review not good enough: back to planning
        (Step.plan_approved, Actor.chairman),
        (Step.implementation, Actor.cp_officer),
        (Step.review, Actor.cp_officer),
        (Step.closed, Actor.cp_officer),
    ]
    step = Step.received
    for target, actor in path:
        step = process.transition(step, target, actor)
    assert step is Step.closed and process.allowed(step) == ()


def test_emergency_measures_are_optional():
    assert process.transition(Step.initial_assessment, Step.detailed_assessment, Actor.cp_officer) is Step.detailed_assessment


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Step.received, Step.detailed_assessment),  # no skipping the initial assessment
        (Step.received, Step.emergency_measures),
        (Step.detailed_assessment, Step.emergency_measures),
        (Step.plan, Step.implementation),  # not without the chairman's approval
        (Step.implementation, Step.closed),  # not without a review
        (Step.closed, Step.plan),
        (Step.initial_assessment, Step.initial_assessment),
    ],
)
def test_illegal_moves_name_the_allowed_ones(current, target):
    with pytest.raises(StepCannotMove) as caught:
        process.transition(current, target, Actor.cp_officer)
    assert caught.value.status == 409
    assert caught.value.detail["allowed"] == [s.value for s in process.allowed(current)]


def test_only_the_chairman_approves_and_only_the_cp_officer_runs_the_steps():
    with pytest.raises(Forbidden, match="chairman"):
        process.transition(Step.plan, Step.plan_approved, Actor.cp_officer)
    with pytest.raises(Forbidden, match="cp_officer"):
        process.transition(Step.received, Step.initial_assessment, Actor.chairman)
    with pytest.raises(Forbidden):
        process.transition(Step.received, Step.initial_assessment, None)


def test_actor_of_a_principal_is_bound_to_its_commune():
    assert process.actor_of(CP, "25349") is Actor.cp_officer
    assert process.actor_of(CHAIR, "25349") is Actor.chairman
    assert process.actor_of(POLICE, "25349") is None
    assert process.actor_of(OTHER_CP, "25349") is None
    assert process.actor_of(Principal("admin", "admin", "t5"), "25349") is None


def test_amending_a_record_once_its_step_is_done_and_until_closing():
    assert process.may_amend(Step.initial_assessment, Step.initial_assessment, Actor.cp_officer)
    assert process.may_amend(Step.plan, Step.initial_assessment, Actor.cp_officer)
    assert not process.may_amend(Step.received, Step.initial_assessment, Actor.cp_officer)
    assert not process.may_amend(Step.closed, Step.initial_assessment, Actor.cp_officer)
    assert not process.may_amend(Step.plan, Step.initial_assessment, Actor.chairman)


def test_the_initial_assessment_is_due_12_hours_after_the_report_by_the_clock():
    received = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)  # a holiday in Vietnam: hours run all the same
    due = process.deadline(Step.received, received, CALENDAR)
    assert due == process.Deadline(Step.initial_assessment, received + timedelta(hours=12))
    assert not due.missed(received + timedelta(hours=12))
    assert due.missed(received + timedelta(hours=12, seconds=1))


def test_the_plan_is_due_5_working_days_after_the_day_of_receipt():
    # Wednesday 2026-02-11 (Vietnam): Tết 2026 is off from 14 to 22 February, so the days counted are
    # Thu 12, Fri 13, Mon 23, Tue 24, Wed 25: due at 24:00 of 25 February.
    received = datetime(2026, 2, 11, 9, 0, tzinfo=VN)
    for step in (Step.initial_assessment, Step.emergency_measures, Step.detailed_assessment):
        due = process.deadline(step, received, CALENDAR)
        assert due.step is Step.plan
        assert due.due_at == datetime(2026, 2, 26, 0, 0, tzinfo=VN)


def test_a_plan_deadline_past_the_calendar_is_shown_as_unknown_never_guessed():
    received = datetime(2027, 12, 30, 9, 0, tzinfo=VN)
    due = process.deadline(Step.initial_assessment, received, CALENDAR)
    assert due.step is Step.plan and due.due_at is None and "2028" in due.note
    assert not due.missed(datetime(2030, 1, 1, tzinfo=UTC))


def test_no_deadline_in_this_slice_after_the_plan():
    received = datetime(2026, 3, 2, tzinfo=UTC)
    for step in (Step.plan, Step.plan_approved, Step.implementation, Step.review, Step.closed):
        assert process.deadline(step, received, CALENDAR) is None


def test_the_tet_calendar_is_the_one_assumed():
    assert date(2026, 2, 17) in CALENDAR.days_off


def test_the_initial_assessment_and_the_plan_deadlines_are_watched_and_go_to_the_chairman():
    received = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 08:00 in Vietnam
    assert process.watched_due(Step.received, received, CALENDAR) == received + timedelta(hours=12)
    plan_due = datetime(2026, 3, 10, tzinfo=VN)  # the end of Monday 9 March, the 5th working day after the 2nd
    for step in (Step.initial_assessment, Step.emergency_measures, Step.detailed_assessment):
        assert process.watched_due(step, received, CALENDAR) == plan_due
        assert process.overdue_step(step) is Step.plan
    for step in (Step.plan, Step.plan_approved, Step.implementation, Step.review, Step.closed):
        assert process.watched_due(step, received, CALENDAR) is None
    assert process.overdue_step(Step.received) is Step.initial_assessment
    assert process.escalate_to("25349") == ("25349.chairman",)


def test_a_plan_deadline_past_the_calendar_is_shown_with_its_note_and_not_watched():
    received = datetime(2027, 12, 28, 2, 0, tzinfo=UTC)  # 2028 is not in the holidays file
    assert process.watched_due(Step.initial_assessment, received, CALENDAR) is None
    due = process.deadline(Step.initial_assessment, received, CALENDAR)
    assert due.due_at is None and "2028" in due.note


@pytest.mark.parametrize(
    ("current", "form", "actor", "moves_to"),
    [
        (Step.received, process.Form.initial_assessment, Actor.cp_officer, Step.initial_assessment),
        (Step.initial_assessment, process.Form.initial_assessment, Actor.cp_officer, None),  # an amendment
        (Step.initial_assessment, process.Form.emergency_measures, Actor.cp_officer, Step.emergency_measures),
        (Step.emergency_measures, process.Form.care_decision, Actor.chairman, None),  # a decision, no step
        (Step.implementation, process.Form.care_decision, Actor.chairman, None),  # an extension
        (Step.emergency_measures, process.Form.detailed_assessment, Actor.cp_officer, Step.detailed_assessment),
        (Step.detailed_assessment, process.Form.plan, Actor.cp_officer, Step.plan),
        (Step.plan, process.Form.plan, Actor.cp_officer, None),  # amended before approval: a new version
        (Step.plan, process.Form.plan_approval, Actor.chairman, Step.plan_approved),
        (Step.implementation, process.Form.review, Actor.cp_officer, Step.review),
        (Step.review, process.Form.review, Actor.cp_officer, None),
        (Step.review, process.Form.plan, Actor.cp_officer, Step.plan),  # back to planning
    ],
)
def test_what_recording_a_form_does(current, form, actor, moves_to):
    assert process.record(current, form, actor) == moves_to


@pytest.mark.parametrize(
    ("current", "form", "actor", "error"),
    [
        (Step.plan, process.Form.plan_approval, Actor.cp_officer, Forbidden),  # the chairman approves
        (Step.emergency_measures, process.Form.care_decision, Actor.cp_officer, Forbidden),
        (Step.received, process.Form.review, Actor.cp_officer, StepCannotMove),
        (Step.received, process.Form.care_decision, Actor.chairman, StepCannotMove),  # no assessment yet
        (Step.implementation, process.Form.plan, Actor.cp_officer, StepCannotMove),  # review first
        (Step.implementation, process.Form.plan_approval, Actor.chairman, StepCannotMove),  # a decision is not amended
        (Step.review, process.Form.initial_assessment, None, Forbidden),
        (Step.closed, process.Form.initial_assessment, Actor.cp_officer, StepCannotMove),
    ],
)
def test_what_recording_a_form_may_not_do(current, form, actor, error):
    with pytest.raises(error):
        process.record(current, form, actor)


def test_a_case_closes_from_review_only_at_low_risk():
    process.may_close(Step.review, "low")
    for level in ("medium", "high"):
        with pytest.raises(Conflict) as caught:
            process.may_close(Step.review, level)
        assert caught.value.detail["allowed"] == ["plan"] and level in caught.value.detail["message"]
    process.may_close(Step.initial_assessment, None)  # a report found groundless
    with pytest.raises(StepCannotMove):
        process.may_close(Step.closed, None)


def test_temporary_care_lasts_15_days_unless_extended_with_a_reason():
    start = date(2026, 12, 1)
    assert process.care_problems(start, date(2026, 12, 15), "") == []
    assert process.care_problems(start, date(2026, 12, 16), "")[0][0] == "extension_reason"
    assert process.care_problems(start, date(2026, 12, 30), "the family is not yet safe") == []
    assert process.care_problems(start, date(2026, 11, 30), "")[0][0] == "ends_on"
    assert process.end_of_day(date(2026, 12, 15)) == datetime(2026, 12, 16, tzinfo=VN)
