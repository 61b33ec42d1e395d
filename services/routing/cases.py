"""Closing a case once its assignments are done or declined, and reopening it: the commune's focal point's acts."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, parse_unit_id
from shared.db import new_id, on_postgresql
from shared.decree56 import INITIAL_ASSESSMENT_WITHIN
from shared.enums import AssignmentStatus, RiskLevel, Role, UnitType
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import (
    Envelope,
    Event,
    IncidentCareDecided,
    IncidentClosed,
    IncidentClosureRecorded,
    IncidentLinked,
    IncidentReopened,
    IncidentStepChanged,
)
from shared.uow import UnitOfWork
from shared.workdays import WorkCalendar

from . import lifecycle, process
from .assignments import add_assignments, add_lead, follow_up_assignment, routed_event, to_envelope
from .lifecycle import CaseStatus
from .models import Assignment, IncidentChange, ProcessRecord, RoutedIncident, StepChange, Unit
from .rulesets import RuleSets

REOPEN_RULES_VERSION = "reopen"

log = logging.getLogger("baove.routing")



def may_close(principal: Principal, commune_code: str) -> bool:
    """Closing and reopening are the focal point's (domain.md section 3, step 6) and admins'."""
    return principal.is_admin or principal.is_cp_officer_of(commune_code)



async def _case(session: AsyncSession, incident_id: str, principal: Principal) -> RoutedIncident:
    incident = await session.get(RoutedIncident, incident_id)
    # Outside the commune the incident does not exist for the caller; inside it, only the focal point may act.
    if incident is None or not (principal.is_admin or principal.commune_code == incident.commune_code):
        raise NotFound("incident not found")
    if not may_close(principal, incident.commune_code):
        raise Forbidden(f"only {incident.commune_code}.cp_officer and admins may close or reopen an incident")
    return incident



async def _set_case_status(session: AsyncSession, incident: RoutedIncident, current: CaseStatus, **values) -> bool:
    """Compare-and-set the case's status; True when this transaction moved it."""
    # Over PostgreSQL this also locks the row the deadline watcher claims, so no escalation slips in
    # between the check of the assignments and the commit.
    result = await session.execute(
        update(RoutedIncident)
        .where(RoutedIncident.incident_id == incident.incident_id, RoutedIncident.status == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(incident)
    return result.rowcount == 1



async def close_incident(
    uow: UnitOfWork, incident_id: str, risk_level: RiskLevel, outcome: str, principal: Principal, now: datetime
) -> RoutedIncident:
    """Record the review's risk level and close the case once every assignment is done or declined.

    Publishes incident.closed (with the free-text outcome, for intake's timeline) and, in the same transaction,
    incident.closure_recorded (its facts alone, for reporting: the outcome may name the child)."""
    session = uow.session
    incident = await _case(session, incident_id, principal)
    closed = CaseStatus.closed.value
    if not await _set_case_status(session, incident, CaseStatus.open, status=closed, risk_level=risk_level.value, closed_at=now):
        lifecycle.check_close(CaseStatus(incident.status), ())
    assignments = (
        await session.execute(
            select(Assignment.id, Assignment.unit_id, Assignment.status)
            .where(Assignment.incident_id == incident_id)
            .order_by(Assignment.assigned_at, Assignment.id)
        )
    ).all()
    # Raising here rolls the status back with the rest of the transaction.
    lifecycle.check_close(CaseStatus.open, [(a, u, AssignmentStatus(s)) for a, u, s in assignments])
    step = process.Step(incident.step)
    review = await _latest(session, incident_id, process.Form.review) if step is process.Step.review else None
    process.may_close(step, review.data.get("overall") if review is not None else None)
    moved = await _move(session, incident, step, process.Step.closed, principal.label, None, now, None)
    session.add(IncidentChange(incident_id=incident_id, at=now, action="closed", principal=principal.label, risk_level=risk_level.value, note=outcome))
    event = IncidentClosed(
        incident_id=incident_id, commune_code=incident.commune_code, risk_level=risk_level, outcome=outcome, by=principal.label, at=now
    )
    facts = IncidentClosureRecorded(incident_id=incident_id, commune_code=incident.commune_code, risk_level=risk_level, at=now)
    await uow.stage(to_envelope(event, incident_id, now), to_envelope(facts, incident_id, now), moved)
    log.info("incident closed", extra={"incident_id": incident_id, "risk_level": risk_level.value, "by": principal.label})
    return incident



async def reopen_incident(
    uow: UnitOfWork, rule_sets: RuleSets, incident_id: str, reason: str, principal: Principal, now: datetime
) -> tuple[RoutedIncident, Assignment]:
    """Take a closed case up again: back to planning, led by the commune's cp_officer; publishes incident.reopened."""
    session = uow.session
    incident = await _case(session, incident_id, principal)
    if not await _set_case_status(session, incident, CaseStatus.closed, status=CaseStatus.open.value, closed_at=None):
        lifecycle.check_reopen(CaseStatus(incident.status))
    change = IncidentChange(incident_id=incident_id, at=now, action="reopened", principal=principal.label, note=reason)
    session.add(change)
    await session.flush()
    # Someone must hold the reopened case, or nothing would show it in an inbox (domain.md section 3, step 6).
    cp_officer = f"{incident.commune_code}.{UnitType.cp_officer.value}"
    # The reopening's own reason stays in routing: it is free text and this one travels in events.
    why = f"Mở lại vụ việc: lập lại kế hoạch hỗ trợ (case reopened by {principal.label}: back to planning)"
    lead = await add_lead(
        session, incident, cp_officer, await rule_sets.active(session), now, ("reopen", why, REOPEN_RULES_VERSION, lifecycle.reopen_origin(change.id))
    )
    reopened = IncidentReopened(incident_id=incident_id, commune_code=incident.commune_code, by=principal.label, at=now)
    # The process goes back to the step the case was closed from (from a review: a new plan may follow).
    closing = (
        await session.execute(
            select(StepChange.from_step)
            .where(StepChange.incident_id == incident_id, StepChange.to_step == process.Step.closed.value)
            .order_by(StepChange.at.desc(), StepChange.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    steps = []
    if incident.step == process.Step.closed.value and closing is not None:
        steps.append(await _move(session, incident, process.Step.closed, process.Step(closing), principal.label, None, now, None))
    await uow.stage(
        *steps,
        to_envelope(reopened, incident_id, now),
        routed_event(incident_id, incident, [lead], REOPEN_RULES_VERSION, [f"reopened by {principal.label}: {cp_officer} leads"], now),
    )
    log.info("incident reopened", extra={"incident_id": incident_id, "by": principal.label, "assignment_id": lead.id})
    return incident, lead


# -- the Decree 56/2017 process (process.py): the initial assessment, the case's step, records and history ----------

PLAN_RULES_VERSION = "plan"  # the assignments an approved plan hands out (rule "plan")
# A device clock a little ahead of the server's is no reason to refuse an assessment.
CLOCK_SKEW = timedelta(minutes=5)


async def _process_case(session: AsyncSession, incident_id: str, principal: Principal, *, lock: bool = False) -> RoutedIncident:
    """The case, for its commune's units and admins; anyone else is told it does not exist."""
    stmt = select(RoutedIncident).where(RoutedIncident.incident_id == incident_id)
    if lock and on_postgresql(session):
        stmt = stmt.with_for_update()  # amendments of one case take their versions one after the other
    incident = (await session.execute(stmt)).scalar_one_or_none()
    if incident is None or not (principal.is_admin or principal.commune_code == incident.commune_code):
        raise NotFound("incident not found")
    return incident


def _field_errors(problems: list[tuple[str, str]]) -> Invalid:
    return Invalid([{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"} for field, message in problems])


# Each form's moment (the time the form states), checked against the report's receipt and the clock.
MOMENTS = {
    process.Form.initial_assessment: "assessed_at",
    process.Form.emergency_measures: "taken_at",
    process.Form.detailed_assessment: "meeting_at",
    process.Form.review: "reviewed_at",
}


async def _latest(session: AsyncSession, incident_id: str, form: process.Form) -> ProcessRecord | None:
    return (
        await session.execute(
            select(ProcessRecord)
            .where(ProcessRecord.incident_id == incident_id, ProcessRecord.form == form.value)
            .order_by(ProcessRecord.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def _problems(form: process.Form, data: dict, incident: RoutedIncident, now: datetime) -> list[tuple[str, str]]:
    """What the form says that the case or the clock contradicts (the schema checked its shape)."""
    found = []
    moment = MOMENTS.get(form)
    if moment is not None:
        at = datetime.fromisoformat(data[moment])
        if at > now + CLOCK_SKEW:
            found.append((moment, f"{moment} is in the future"))
        if at < incident.received_at:
            found.append((moment, f"{moment} is before the report was received"))
    if form is process.Form.care_decision:
        starts_on, ends_on = date.fromisoformat(data["starts_on"]), date.fromisoformat(data["ends_on"])
        found += process.care_problems(starts_on, ends_on, data.get("extension_reason", ""))
    if form is process.Form.plan:
        for i, task in enumerate(data["tasks"]):
            try:
                commune, _, _ = parse_unit_id(task["unit_id"])
            except ValueError as exc:
                found.append((f"tasks.{i}.unit_id", str(exc)))
                continue
            if commune != incident.commune_code:
                found.append((f"tasks.{i}.unit_id", f"{task['unit_id']} is not a unit of commune {incident.commune_code}"))
    return found


async def record_form(
    uow: UnitOfWork, incident_id: str, form: process.Form, data: dict, principal: Principal, now: datetime, calendar: WorkCalendar
) -> RoutedIncident:
    """Record one of the process's forms (Mẫu 02-06, the emergency measures, the chairman's decisions): the first of
    a step moves the case on (in the same transaction: its history, incident.step_changed, the next watched
    deadline); another is an amendment, a new version beside the old. The plan's approval hands each of the plan's
    tasks to its unit as an assignment and opens the implementation; a care decision sets the end date watched."""
    session = uow.session
    incident = await _process_case(session, incident_id, principal, lock=True)
    current = process.Step(incident.step)
    if incident.status == CaseStatus.closed.value:
        raise process.StepCannotMove(process.Step.closed, process.FORM_STEP[form] or current)
    if incident.linked_to is not None:
        raise Conflict(
            {
                "message": f"this report was linked to {incident.linked_to}, an earlier report of the same child: record the "
                "process's forms on that case",
                "current": current.value,
                "linked_to": incident.linked_to,
                "allowed": [],
            }
        )
    target = process.record(current, form, process.actor_of(principal, incident.commune_code))
    problems = _problems(form, data, incident, now)
    if form is process.Form.plan and not problems:
        named = {t["unit_id"] for t in data["tasks"]}
        known = set((await session.execute(select(Unit.id).where(Unit.id.in_(named), Unit.active.is_(True)))).scalars())
        problems = [(f"tasks.{i}.unit_id", f"{t['unit_id']} is not a registered unit (GET /v1/units lists them)") for i, t in enumerate(data["tasks"]) if t["unit_id"] not in known]
    if problems:
        raise _field_errors(problems)
    plan = None
    if form is process.Form.plan_approval:
        plan = await _latest(session, incident_id, process.Form.plan)
        if plan is None:
            raise process.StepCannotMove(current, process.Step.plan_approved)
        data = {**data, "plan_version": plan.version}
    version = (
        await session.execute(
            select(func.coalesce(func.max(ProcessRecord.version), 0)).where(
                ProcessRecord.incident_id == incident_id, ProcessRecord.form == form.value
            )
        )
    ).scalar_one() + 1
    record = ProcessRecord(
        id=new_id(), incident_id=incident_id, form=form.value, version=version, data=data, recorded_by=principal.label, recorded_at=now,
    )
    session.add(record)
    await session.flush()
    staged = []
    if target is not None:
        staged.append(await _move(session, incident, current, target, principal.label, record.id, now, calendar))
    if target is process.Step.plan_approved and plan is not None:
        tasks = await _hand_out_tasks(session, incident, plan, record, now)
        staged.append(await _move(session, incident, target, process.Step.implementation, principal.label, record.id, now, calendar))
        notes = [f"plan v{plan.version} approved: {len(tasks)} task(s) handed out"]
        staged.append(routed_event(incident_id, incident, tasks, PLAN_RULES_VERSION, notes, now))
    if form is process.Form.care_decision:
        ends_on = date.fromisoformat(data["ends_on"])
        await session.execute(
            update(RoutedIncident)
            .where(RoutedIncident.incident_id == incident_id)
            .values(care_ends_at=process.end_of_day(ends_on), care_overdue_at=None)
            .execution_options(synchronize_session=False)
        )
        decided = IncidentCareDecided(
            incident_id=incident_id, commune_code=incident.commune_code, starts_on=date.fromisoformat(data["starts_on"]),
            ends_on=ends_on, version=version, by=principal.label, at=now,
        )
        staged.append(to_envelope(decided, incident_id, now))
    if staged:
        await uow.stage(*staged)
    await session.flush()
    await session.refresh(incident)
    extra = {"incident_id": incident_id, "form": form.value, "version": version, "step": incident.step}
    if form is process.Form.initial_assessment:
        extra["late"] = datetime.fromisoformat(data["assessed_at"]) > incident.received_at + INITIAL_ASSESSMENT_WITHIN
    log.info("process form recorded", extra=extra)
    return incident


async def _move(
    session: AsyncSession, incident: RoutedIncident, current: process.Step, target: process.Step, by: str, record_id: str | None,
    now: datetime, calendar: WorkCalendar | None,
) -> Envelope:
    """Compare-and-set the case's step (a concurrent move finds it moved and is refused), its next watched deadline
    (unflagged) and its history line; returns incident.step_changed, to stage in the same transaction."""
    due = process.watched_due(target, incident.received_at, calendar) if calendar is not None else None
    moved = await session.execute(
        update(RoutedIncident)
        .where(RoutedIncident.incident_id == incident.incident_id, RoutedIncident.step == current.value)
        .values(step=target.value, step_due_at=due, step_overdue_at=None)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        raise process.StepCannotMove(current, target)
    session.add(StepChange(incident_id=incident.incident_id, at=now, from_step=current.value, to_step=target.value, principal=by, record_id=record_id))
    changed = IncidentStepChanged(
        incident_id=incident.incident_id, commune_code=incident.commune_code, from_step=current.value, to_step=target.value,
        record_id=record_id, by=by, at=now,
    )
    return to_envelope(changed, incident.incident_id, now)


async def _hand_out_tasks(session: AsyncSession, incident: RoutedIncident, plan: ProcessRecord, approval: ProcessRecord, now: datetime) -> list[Assignment]:
    """Each task of the approved plan as an assignment in its unit's inbox, due at the end of the task's last day."""
    tasks = plan.data["tasks"]
    made = []
    for i, task in enumerate(tasks, 1):
        due_on = date.fromisoformat(task["due_on"])
        assignment = follow_up_assignment(
            incident, task["unit_id"], Role.support,
            rule="plan",
            reason=f"Nhiệm vụ {i}/{len(tasks)} của kế hoạch hỗ trợ, can thiệp (Mẫu 04, phiên bản {plan.version}), hạn {due_on:%d/%m/%Y}",
            rules_version=PLAN_RULES_VERSION, origin=f"plan:{approval.id}:{i}", due_at=process.end_of_day(due_on), now=now,
        )
        assignment.task = task["task"]
        made.append(assignment)
    await add_assignments(session, made, now)
    return made


async def read_process(session: AsyncSession, incident_id: str, principal: Principal) -> tuple[RoutedIncident, list, list]:
    """The case's step with its records (every version) and history: its commune's cp_officer and chairman, admins."""
    incident = await _process_case(session, incident_id, principal)
    if not (principal.is_admin or process.actor_of(principal, incident.commune_code) is not None):
        raise Forbidden(f"only {incident.commune_code}.cp_officer, {incident.commune_code}.chairman and admins may read the case process")
    records = (
        await session.execute(
            select(ProcessRecord).where(ProcessRecord.incident_id == incident_id).order_by(ProcessRecord.form, ProcessRecord.version)
        )
    ).scalars().all()
    history = (
        await session.execute(select(StepChange).where(StepChange.incident_id == incident_id).order_by(StepChange.at, StepChange.id))
    ).scalars().all()
    return incident, list(records), list(history)


async def handle_linked(session: AsyncSession, event: Event, envelope: Envelope) -> list[Envelope]:
    """incident.linked (intake, the cp_officer's decision): the later report joins the earlier one's case. Its own
    process stops there (no deadline watched, no form recorded on it); its assignments stay as they are. Idempotent."""
    if not isinstance(event, IncidentLinked):
        return []
    root = event.linked_to
    for _ in range(10):  # the earlier report may itself have been linked: its case is the one at the end of the chain
        onward = (await session.execute(select(RoutedIncident.linked_to).where(RoutedIncident.incident_id == root))).scalar_one_or_none()
        if onward is None or onward == event.incident_id:
            break
        root = onward
    done = await session.execute(
        update(RoutedIncident)
        .where(RoutedIncident.incident_id == event.incident_id)
        .values(linked_to=root, step_due_at=None, care_ends_at=None)
        .execution_options(synchronize_session=False)
    )
    log.info("incident linked", extra={"incident_id": event.incident_id, "linked_to": root, "found": done.rowcount == 1})
    return []


async def read_record(session: AsyncSession, incident_id: str, record_id: str, principal: Principal) -> tuple[RoutedIncident, list, ProcessRecord, dict[str, str]]:
    """One record of the case to print, with the case's records and the names of the units its forms name (the plan's
    tasks, the hamlet): for the same people as the process (read_process); another case's record is not found."""
    incident, records, _ = await read_process(session, incident_id, principal)
    record = next((r for r in records if r.id == record_id), None)
    if record is None:
        raise NotFound("no such record of this incident")
    named = {t["unit_id"] for r in records if r.form == process.Form.plan.value for t in r.data.get("tasks") or []}
    if incident.hamlet:
        named.add(incident.hamlet)
    names = {uid: name for uid, name in (await session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(named)))).all()} if named else {}
    return incident, records, record, names


async def commune_cases(
    session: AsyncSession, commune_code: str, principal: Principal, steps: list[process.Step], limit: int
) -> list[RoutedIncident]:
    """The commune's open cases in the process (a linked report is its case's), soonest watched deadline first: the
    board of its cp_officer and chairman (which assessments are due, which plans wait for approval), and admins'."""
    if not (principal.is_admin or process.actor_of(principal, commune_code) is not None):
        raise Forbidden(f"only {commune_code}.cp_officer, {commune_code}.chairman and admins list the commune's cases")
    stmt = (
        select(RoutedIncident)
        .where(
            RoutedIncident.commune_code == commune_code,
            RoutedIncident.status == CaseStatus.open.value,
            RoutedIncident.linked_to.is_(None),
        )
        .order_by(RoutedIncident.step_due_at.is_(None), RoutedIncident.step_due_at, RoutedIncident.received_at, RoutedIncident.incident_id)
        .limit(limit)
    )
    if steps:
        stmt = stmt.where(RoutedIncident.step.in_([s.value for s in steps]))
    return list((await session.execute(stmt)).scalars())
