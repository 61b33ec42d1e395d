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
  it, Civil Code art. 147); `shared.decree56.PLAN_COUNTS_FROM` names that choice, to confirm against the decree's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from shared.auth import Principal
from shared.decree56 import TEMPORARY_CARE_DAYS, initial_assessment_due, plan_due
from shared.enums import UnitType
from shared.errors import Conflict, Forbidden
from shared.workdays import VN, UncoveredYear, WorkCalendar


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

# The forms (Decree 56/2017's Mẫu and the chairman's decisions), the step each completes and who records it. The
# temporary care decision completes no step: the chairman takes it beside the steps, and its end date is watched.
class Form(StrEnum):
    initial_assessment = "initial_assessment"  # Mẫu 02
    emergency_measures = "emergency_measures"  # the emergency intervention (Art. 26(3), 31)
    care_decision = "care_decision"  # the chairman's decision on temporary care away from the parents (Art. 32)
    detailed_assessment = "detailed_assessment"  # Mẫu 03, with the needs meeting's minutes
    plan = "plan"  # Mẫu 04, the support and intervention plan
    plan_approval = "plan_approval"  # Mẫu 05, the chairman's approval decision
    review = "review"  # Mẫu 06


FORM_STEP: dict[Form, Step | None] = {
    Form.initial_assessment: Step.initial_assessment,
    Form.emergency_measures: Step.emergency_measures,
    Form.care_decision: None,
    Form.detailed_assessment: Step.detailed_assessment,
    Form.plan: Step.plan,
    Form.plan_approval: Step.plan_approved,
    Form.review: Step.review,
}
FORM_ACTOR: dict[Form, Actor] = {f: Actor.chairman if f in (Form.care_decision, Form.plan_approval) else Actor.cp_officer for f in Form}
# Where an amendment (a new version, the old kept) is accepted: a plan only until it is approved (an approved plan is
# changed by a review sending the case back to planning); an approval is a signed decision, never amended; a review
# only while the case is at review. The others from their step until closing.
_ORDER = list(Step)
_AFTER = {step: frozenset(_ORDER[_ORDER.index(step):]) - {Step.closed} for step in Step}
AMEND_AT: dict[Form, frozenset[Step]] = {
    Form.initial_assessment: _AFTER[Step.initial_assessment],
    Form.emergency_measures: _AFTER[Step.emergency_measures],
    Form.care_decision: _AFTER[Step.initial_assessment],
    Form.detailed_assessment: _AFTER[Step.detailed_assessment],
    Form.plan: frozenset({Step.plan}),
    Form.plan_approval: frozenset(),
    Form.review: frozenset({Step.review}),
}
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
    return actor is Actor.cp_officer and current in AMENDABLE and _ORDER.index(current) >= _ORDER.index(record_step)


def record(current: Step, form: Form, actor: Actor | None) -> Step | None:
    """What recording `form` at step `current` does: the step it moves the case to, or None for an amendment (or a
    care decision, which completes no step). Forbidden when it is another's form; StepCannotMove when not now."""
    who = FORM_ACTOR[form]
    target = FORM_STEP[form]
    if actor is not who:
        raise Forbidden(f"only the commune's {who.value} may record the {form.value}")
    if target is not None and target in TRANSITIONS[current]:
        return transition(current, target, actor)
    if current in AMEND_AT[form]:
        return None
    raise StepCannotMove(current, target or current)


def may_close(current: Step, review_level: str | None) -> None:
    """Closing: at review only when it found the child at low risk (else back to planning, Art. 30); at an earlier
    step (a report found groundless, a case closed before this process existed) as the case's own close allows."""
    if current is Step.closed:
        raise StepCannotMove(current, Step.closed)
    if current is Step.review and review_level != "low":
        raise Conflict(
            {
                "message": f"the last review found the child at {review_level} risk: record a new plan (back to planning), "
                "or a review at low risk, before closing",
                "current": current.value,
                "allowed": ["plan"],
            }
        )


@dataclass(frozen=True)
class Deadline:
    """The step due next and when it is missed; `due_at` None when the calendar does not cover the period (`note`)."""

    step: Step
    due_at: datetime | None
    note: str | None = None

    def missed(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at < now


def deadline(step: Step, received_at: datetime, calendar: WorkCalendar) -> Deadline | None:
    """The deadline the case is under at `step`, or None where the decree sets none (once the plan is drafted)."""
    if step is Step.received:
        return Deadline(Step.initial_assessment, initial_assessment_due(received_at))
    if step in (Step.initial_assessment, Step.emergency_measures, Step.detailed_assessment):
        try:
            return Deadline(Step.plan, plan_due(received_at, calendar))
        except UncoveredYear as exc:
            return Deadline(Step.plan, None, str(exc))
    return None


# The deadlines the watcher escalates (durably, once, to the chairman).
WATCHED = frozenset({Step.initial_assessment, Step.plan})


def watched_due(step: Step, received_at: datetime, calendar: WorkCalendar) -> datetime | None:
    """The deadline the watcher keeps for a case at `step` (routed_incident.step_due_at), or None (none, or the
    holidays calendar does not cover it: shown with its note, not watched)."""
    due = deadline(step, received_at, calendar)
    return due.due_at if due is not None and due.step in WATCHED else None


def overdue_step(step: Step) -> Step:
    """The step a watched deadline of a case at `step` is for."""
    return _NEXT_DUE[step]


def escalate_to(commune_code: str) -> tuple[str, ...]:
    """A missed step goes to the chairman, who directs the commune's child-protection work (Art. 26)."""
    return (f"{commune_code}.{UnitType.chairman.value}",)


def end_of_day(day: date) -> datetime:
    """24:00 (Vietnam) of `day`: when a temporary care's last day or a plan task's due day ends."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=VN)


def care_problems(starts_on: date, ends_on: date, extension_reason: str) -> list[tuple[str, str]]:
    """(field, message) for a care decision's dates: at most 15 days unless extended with a reason."""
    if ends_on < starts_on:
        return [("ends_on", "ends_on is before starts_on")]
    days = (ends_on - starts_on).days + 1
    if days > TEMPORARY_CARE_DAYS and not extension_reason:
        return [("extension_reason", f"temporary care lasts at most {TEMPORARY_CARE_DAYS} days ({days} asked): give the extension's reason")]
    return []


CARE_OVERDUE_STEP = "temporary_care"  # incident.step_overdue's step when a temporary care's end date is reached

_NEXT_DUE = {
    Step.received: Step.initial_assessment,
    Step.initial_assessment: Step.plan,
    Step.emergency_measures: Step.plan,
    Step.detailed_assessment: Step.plan,
}

