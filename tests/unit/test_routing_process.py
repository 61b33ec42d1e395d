"""The Decree 56/2017 case process's pure core (services/routing/process.py): steps, who moves them, deadlines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.routing import process
from services.routing.process import Actor, Step, StepCannotMove
from shared.auth import Principal
from shared.errors import Forbidden
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
    received = datetime(2026, 12, 30, 9, 0, tzinfo=VN)
    due = process.deadline(Step.initial_assessment, received, CALENDAR)
    assert due.step is Step.plan and due.due_at is None and "2027" in due.note
    assert not due.missed(datetime(2030, 1, 1, tzinfo=UTC))


def test_no_deadline_in_this_slice_after_the_plan():
    received = datetime(2026, 3, 2, tzinfo=UTC)
    for step in (Step.plan, Step.plan_approved, Step.implementation, Step.review, Step.closed):
        assert process.deadline(step, received, CALENDAR) is None


def test_the_tet_calendar_is_the_one_assumed():
    assert date(2026, 2, 17) in CALENDAR.days_off


def test_only_the_initial_assessment_deadline_is_watched_and_it_goes_to_the_chairman():
    received = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert process.watched_due(Step.received, received) == received + timedelta(hours=12)
    for step in Step:
        if step is not Step.received:
            assert process.watched_due(step, received) is None
    assert process.overdue_step(Step.received) is Step.initial_assessment
    assert process.escalate_to("25349") == ("25349.chairman",)
