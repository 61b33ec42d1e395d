"""Closing a case once its assignments are done or declined, and reopening it: the commune's focal point's acts."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.db import new_id, on_postgresql
from shared.enums import AssignmentStatus, RiskLevel, UnitType
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import IncidentClosed, IncidentClosureRecorded, IncidentReopened, IncidentStepChanged
from shared.uow import UnitOfWork

from . import lifecycle, process
from .assignments import add_lead, routed_event, to_envelope
from .lifecycle import CaseStatus
from .models import Assignment, IncidentChange, ProcessRecord, RoutedIncident, StepChange
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
    session.add(IncidentChange(incident_id=incident_id, at=now, action="closed", principal=principal.label, risk_level=risk_level.value, note=outcome))
    event = IncidentClosed(
        incident_id=incident_id, commune_code=incident.commune_code, risk_level=risk_level, outcome=outcome, by=principal.label, at=now
    )
    facts = IncidentClosureRecorded(incident_id=incident_id, commune_code=incident.commune_code, risk_level=risk_level, at=now)
    await uow.stage(to_envelope(event, incident_id, now), to_envelope(facts, incident_id, now))
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
    await uow.stage(
        to_envelope(reopened, incident_id, now),
        routed_event(incident_id, incident, [lead], REOPEN_RULES_VERSION, [f"reopened by {principal.label}: {cp_officer} leads"], now),
    )
    log.info("incident reopened", extra={"incident_id": incident_id, "by": principal.label, "assignment_id": lead.id})
    return incident, lead


# -- the Decree 56/2017 process (process.py): the initial assessment, the case's step, records and history ----------

ASSESSMENT_FORM = process.Step.initial_assessment.value
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


def _field_error(field: str, message: str) -> Invalid:
    return Invalid([{"loc": ["body", field], "msg": message, "type": "value_error"}])


async def record_assessment(
    uow: UnitOfWork, incident_id: str, assessment: dict, assessed_at: datetime, principal: Principal, now: datetime
) -> RoutedIncident:
    """Record the initial assessment (Mẫu 02) by the commune's cp_officer: the first moves the case to
    initial_assessment and ends its 12-hour deadline; a later one is an amendment, a new version beside the old."""
    session = uow.session
    incident = await _process_case(session, incident_id, principal, lock=True)
    actor = process.actor_of(principal, incident.commune_code)
    current = process.Step(incident.step)
    target = process.Step.initial_assessment
    amending = current is not process.Step.received
    if not amending:
        process.transition(current, target, actor)  # Forbidden for anyone but the cp_officer
    elif not process.may_amend(current, target, actor):
        if actor is not process.Actor.cp_officer:
            raise Forbidden(f"only {incident.commune_code}.cp_officer may record or amend the initial assessment")
        raise process.StepCannotMove(current, target)
    if assessed_at > now + CLOCK_SKEW:
        raise _field_error("assessed_at", "assessed_at is in the future")
    if assessed_at < incident.received_at:
        raise _field_error("assessed_at", "assessed_at is before the report was received")
    version = (
        await session.execute(
            select(func.coalesce(func.max(ProcessRecord.version), 0)).where(
                ProcessRecord.incident_id == incident_id, ProcessRecord.form == ASSESSMENT_FORM
            )
        )
    ).scalar_one() + 1
    record = ProcessRecord(
        id=new_id(), incident_id=incident_id, form=ASSESSMENT_FORM, version=version, data=assessment,
        recorded_by=principal.label, recorded_at=now,
    )
    session.add(record)
    if not amending:
        # Compare-and-set: a concurrent first recording finds the step moved and is refused.
        moved = await session.execute(
            update(RoutedIncident)
            .where(RoutedIncident.incident_id == incident_id, RoutedIncident.step == current.value)
            .values(step=target.value, step_due_at=process.watched_due(target, incident.received_at))
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:
            raise process.StepCannotMove(current, target)
        session.add(StepChange(incident_id=incident_id, at=now, from_step=current.value, to_step=target.value, principal=principal.label, record_id=record.id))
        changed = IncidentStepChanged(
            incident_id=incident_id, commune_code=incident.commune_code, from_step=current.value, to_step=target.value,
            record_id=record.id, by=principal.label, at=now,
        )
        await uow.stage(to_envelope(changed, incident_id, now))
    await session.flush()
    await session.refresh(incident)
    log.info(
        "initial assessment recorded",
        extra={"incident_id": incident_id, "version": version, "late": assessed_at > incident.received_at + process.INITIAL_ASSESSMENT_WITHIN},
    )
    return incident


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
