"""The case process of Decree 56/2017/NĐ-CP, Art. 25-30 (domain.md section 3; issue 17, points 1-2): pure.

A case's `step` is the last step it has completed, each completed by recording its form:

    received (Mẫu 01, at intake) → initial_assessment (Mẫu 02) → [emergency_measures] → detailed_assessment (Mẫu 03)
    → plan (Mẫu 04) → plan_approved (Mẫu 05) → implementation → review (Mẫu 06) → closed, or → plan again.

Beside, not instead of, the assignments (lifecycle.py). Who may make each move: the commune's cp_officer runs the
steps; the chairman (signing as chairman or as a deputy, KT. CHỦ TỊCH) approves the plan.

Deadlines (domain.md section 3):
- the initial assessment within 12 hours of the report's receipt (Art. 26(3)): `received_at + 12 h`, by the clock;
- the plan within 5 working days (shared/workdays.add_working_days). domain.md names no other start for this period
  than the receipt of the information that opens the process, so it counts from the report's receipt (the day after
  it, Civil Code art. 147); `PLAN_COUNTS_FROM` names that choice, to confirm against the decree's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.auth import Principal
from shared.enums import UnitType
from shared.errors import Conflict, Forbidden
from shared.workdays import UncoveredYear, WorkCalendar, add_working_days

INITIAL_ASSESSMENT_WITHIN = timedelta(hours=12)
PLAN_WITHIN_WORKING_DAYS = 5
PLAN_COUNTS_FROM = "received"  # the report's receipt (domain.md section 3 names no other start)


class Step(StrEnum):
    received = "received"
    initial_assessment = "initial_assessment"
    emergency_measures = "emergency_measures"
    detailed_assessment = "detailed_assessment"
    plan = "plan"
    plan_approved = "plan_approved"
    implementation = "implementation"
    review = "review"
    closed = "closed"


class Actor(StrEnum):
    cp_officer = "cp_officer"  # runs the steps
    chairman = "chairman"  # approves (as chairman, or a deputy signing KT. CHỦ TỊCH)


# Every legal move and who makes it.
TRANSITIONS: dict[Step, dict[Step, Actor]] = {
    Step.received: {Step.initial_assessment: Actor.cp_officer},
    Step.initial_assessment: {Step.emergency_measures: Actor.cp_officer, Step.detailed_assessment: Actor.cp_officer},
    Step.emergency_measures: {Step.detailed_assessment: Actor.cp_officer},
    Step.detailed_assessment: {Step.plan: Actor.cp_officer},
    Step.plan: {Step.plan_approved: Actor.chairman},
    Step.plan_approved: {Step.implementation: Actor.cp_officer},
    Step.implementation: {Step.review: Actor.cp_officer},
    Step.review: {Step.closed: Actor.cp_officer, Step.plan: Actor.cp_officer},
    Step.closed: {},
}

# A step's record may be amended (a new version, the old one kept) while the case is at that step or has gone on,
# until it is closed. Only the initial assessment has a record in this slice.
AMENDABLE = frozenset(Step) - {Step.closed, Step.received}


class StepCannotMove(Conflict):
    """The move is not in the table; `allowed` names the moves that are."""

    def __init__(self, current: Step, target: Step) -> None:
        self.current, self.target = current, target
        self.allowed = tuple(TRANSITIONS[current])
        shown = ", ".join(s.value for s in self.allowed) or "none: the case is closed"
        self.message = f"the case cannot go from step {current.value} to {target.value}; allowed: {shown}"
        super().__init__({"message": self.message, "current": current.value, "allowed": [s.value for s in self.allowed]})

    def __str__(self) -> str:
        return self.message


def allowed(current: Step) -> tuple[Step, ...]:
    return tuple(TRANSITIONS[current])


def actor_of(principal: Principal, commune_code: str) -> Actor | None:
    """What the principal is in this commune's process: its cp_officer, its chairman, or nothing."""
    if principal.commune_code != commune_code:
        return None
    if principal.unit_type == UnitType.cp_officer.value:
        return Actor.cp_officer
    if principal.unit_type == UnitType.chairman.value:
        return Actor.chairman
    return None


def transition(current: Step, target: Step, actor: Actor | None) -> Step:
    """The new step, or StepCannotMove (not a legal move) / Forbidden (not this actor's move)."""
    who = TRANSITIONS[current].get(target)
    if who is None:
        raise StepCannotMove(current, target)
    if actor is not who:
        raise Forbidden(f"only the commune's {who.value} may move a case from {current.value} to {target.value}")
    return target


def may_amend(current: Step, record_step: Step, actor: Actor | None) -> bool:
    """An amendment of `record_step`'s record: the cp_officer's, once the step is done and until closing."""
    order = list(Step)
    return actor is Actor.cp_officer and current in AMENDABLE and order.index(current) >= order.index(record_step)


@dataclass(frozen=True)
class Deadline:
    """The step due next and when it is missed; `due_at` None when the calendar does not cover the period (`note`)."""

    step: Step
    due_at: datetime | None
    note: str | None = None

    def missed(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at < now


def initial_assessment_due(received_at: datetime) -> datetime:
    return received_at + INITIAL_ASSESSMENT_WITHIN


def plan_due(received_at: datetime, calendar: WorkCalendar) -> datetime:
    """24:00 (Vietnam) of the 5th working day after the day of the report's receipt; UncoveredYear past the calendar."""
    return add_working_days(received_at, PLAN_WITHIN_WORKING_DAYS, calendar)


def deadline(step: Step, received_at: datetime, calendar: WorkCalendar) -> Deadline | None:
    """The deadline the case is under at `step`, or None where this slice sets none (after the plan is drafted)."""
    if step is Step.received:
        return Deadline(Step.initial_assessment, initial_assessment_due(received_at))
    if step in (Step.initial_assessment, Step.emergency_measures, Step.detailed_assessment):
        try:
            return Deadline(Step.plan, plan_due(received_at, calendar))
        except UncoveredYear as exc:
            return Deadline(Step.plan, None, str(exc))
    return None


# The deadlines the watcher escalates (durably, once, to the chairman); the others are shown only, for now.
WATCHED = frozenset({Step.initial_assessment})


def watched_due(step: Step, received_at: datetime) -> datetime | None:
    """The deadline the watcher keeps for a case at `step` (routed_incident.step_due_at), or None."""
    due = deadline(step, received_at, _NO_CALENDAR) if step is Step.received else None
    return due.due_at if due is not None and due.step in WATCHED else None


def overdue_step(step: Step) -> Step:
    """The step a watched deadline of a case at `step` is for."""
    return _NEXT_DUE[step]


def escalate_to(commune_code: str) -> tuple[str, ...]:
    """A missed step goes to the chairman, who directs the commune's child-protection work (Art. 26)."""
    return (f"{commune_code}.{UnitType.chairman.value}",)


_NEXT_DUE = {
    Step.received: Step.initial_assessment,
    Step.initial_assessment: Step.plan,
    Step.emergency_measures: Step.plan,
    Step.detailed_assessment: Step.plan,
}
_NO_CALENDAR = WorkCalendar(frozenset(), {}, {})  # the 12 hours run by the clock: no calendar needed
