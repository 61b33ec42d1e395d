"""Closing a case once its assignments are done or declined, and reopening it: the commune's focal point's acts."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.enums import AssignmentStatus, RiskLevel, UnitType
from shared.errors import Forbidden, NotFound
from shared.events import IncidentClosed, IncidentClosureRecorded, IncidentReopened
from shared.uow import UnitOfWork

from . import lifecycle
from .assignments import add_lead, routed_event, to_envelope
from .lifecycle import CaseStatus
from .models import Assignment, IncidentChange, RoutedIncident
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
