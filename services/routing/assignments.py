"""Assignments: made, stored and told of in events; acknowledged, moved through their lifecycle, a declined lead handed on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, parse_unit_id
from shared.db import new_id
from shared.enums import AssignmentStatus, Role, Urgency
from shared.errors import Conflict, NotFound
from shared.events import (
    AssignmentAcknowledged,
    AssignmentStatusChanged,
    Envelope,
    Event,
    IncidentRouted,
    RoutedAssignment,
)
from shared.metrics import RoutingMetrics
from shared.uow import UnitOfWork

from . import lifecycle, rules
from .inbox import SeenAssignment, may_use_inbox, seen_by_unit
from .models import Assignment, AssignmentChange, RoutedIncident, dedupe_key
from .rules import RuleTable

if TYPE_CHECKING:
    from .rulesets import RuleSets

PRODUCER = "routing"
HANDOFF_RULES_VERSION = "handoff"

log = logging.getLogger("baove.routing")



def routed_assignment(a: Assignment) -> RoutedAssignment:
    return RoutedAssignment(
        assignment_id=a.id, unit_id=a.unit_id, unit_type=a.unit_type, role=Role(a.role), rule=a.rule, reason=a.reason, due_at=a.due_at
    )



def to_envelope(event: Event, incident_id: str, now: datetime) -> Envelope:
    """Routing's events carry its clock's time, so the envelope agrees with the payload."""
    return event.envelope(correlation_id=incident_id, producer=PRODUCER, emitted_at=now)



def follow_up_assignment(
    incident: RoutedIncident,
    unit_id: str,
    role: Role,
    *,
    rule: str,
    reason: str,
    rules_version: str,
    origin: str,
    due_at: datetime,
    now: datetime,
) -> Assignment:
    """A pending assignment made after the routing decision (a handoff, an escalation, a reopened case)."""
    return Assignment(
        id=new_id(),
        incident_id=incident.incident_id,
        unit_id=unit_id,
        unit_type=parse_unit_id(unit_id)[1].value,
        commune_code=incident.commune_code,
        role=role.value,
        status=AssignmentStatus.pending.value,
        rule=rule,
        reason=reason,
        rules_version=rules_version,
        origin=origin,
        dedupe_key=dedupe_key(incident.incident_id, unit_id, origin),
        due_at=due_at,
        assigned_at=now,
        updated_at=now,
    )



class CaseFacts(Protocol):
    """What `incident.routed` repeats of the case: a stored RoutedIncident or a report's IncidentFacts."""

    commune_code: str
    category: Any
    urgency: Any


def routed_event(
    incident_id: str, case: CaseFacts, assignments: Sequence[Assignment], rules_version: str, notes: Sequence[str], now: datetime
) -> Envelope:
    """`incident.routed` telling of assignments: the routing decision's, or those made after it."""
    event = IncidentRouted(
        incident_id=incident_id,
        commune_code=case.commune_code,
        category=case.category,
        urgency=case.urgency,
        rules_version=rules_version,
        assignments=tuple(routed_assignment(a) for a in assignments),
        notes=tuple(notes),
    )
    return to_envelope(event, incident_id, now)



async def add_assignments(session: AsyncSession, assignments: Sequence[Assignment], now: datetime) -> None:
    """Insert assignments and the first line of their history."""
    session.add_all(assignments)
    await session.flush()
    session.add_all(
        AssignmentChange(assignment_id=a.id, at=now, from_status=None, to_status=a.status, principal=PRODUCER) for a in assignments
    )
    await session.flush()

ASSIGNMENT_COLUMNS = tuple(c.key for c in Assignment.__table__.columns)



async def bulk_insert_assignments(session: AsyncSession, assignments: Sequence[Assignment], now: datetime) -> None:
    """`add_assignments` in two Core statements, for new assignments nobody else holds yet (routing a report)."""
    if not assignments:
        return
    await session.execute(
        Assignment.__table__.insert(), [{key: getattr(a, key) for key in ASSIGNMENT_COLUMNS} for a in assignments]
    )
    await session.execute(
        AssignmentChange.__table__.insert(),
        [{"assignment_id": a.id, "at": now, "from_status": None, "to_status": a.status, "principal": PRODUCER, "note": None} for a in assignments],
    )



def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction commits: metrics count only what was stored."""
    fired = False

    def run(sync_session) -> None:
        nonlocal fired
        # The hook also fires when a savepoint is released; only the outer commit counts.
        if fired or sync_session.in_nested_transaction():
            return
        fired = True
        callback()

    event.listen(session.sync_session, "after_commit", run)



def count_created(metrics: RoutingMetrics, assignments: Sequence[Assignment]) -> None:
    for a in assignments:
        metrics.assignments.labels(a.unit_type, a.role).inc()



def assignment_event(cls, a: Assignment, by: str, now: datetime, **extra) -> Envelope:
    event = cls(
        incident_id=a.incident_id,
        assignment_id=a.id,
        unit_id=a.unit_id,
        unit_type=a.unit_type,
        role=Role(a.role),
        commune_code=a.commune_code,
        by=by,
        at=now,
        **extra,
    )
    return to_envelope(event, a.incident_id, now)



async def _owned(session: AsyncSession, unit_id: str, assignment_id: str, principal: Principal) -> tuple[Assignment, RoutedIncident]:
    if may_use_inbox(principal, unit_id):
        row = (
            await session.execute(
                select(Assignment, RoutedIncident)
                .join(RoutedIncident, RoutedIncident.incident_id == Assignment.incident_id)
                .where(Assignment.id == assignment_id, Assignment.unit_id == unit_id)
            )
        ).first()
        if row is not None:
            return row[0], row[1]
    raise NotFound("assignment not found")



async def _move(
    session: AsyncSession, a: Assignment, target: AssignmentStatus, now: datetime, principal: Principal, note: str | None
) -> AssignmentStatus:
    """Compare-and-set the status, so two concurrent changes cannot both win; records the history."""
    current = AssignmentStatus(a.status)
    values: dict = {"status": target.value, "updated_at": now}
    if target is AssignmentStatus.acknowledged:
        values["acknowledged_at"] = now
    if note:
        values["note"] = note
    result = await session.execute(
        update(Assignment)
        .where(Assignment.id == a.id, Assignment.status == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        await session.refresh(a)
        now_status = AssignmentStatus(a.status)
        raise Conflict(
            {
                "message": f"the assignment was changed at the same time and is now {now_status.value}; read it again",
                "current": now_status.value,
                "allowed": [s.value for s in lifecycle.allowed(now_status)],
            },
        )
    session.add(AssignmentChange(assignment_id=a.id, at=now, from_status=current.value, to_status=target.value, principal=principal.label, note=note))
    await session.flush()
    await session.refresh(a)
    return current



async def acknowledge(uow: UnitOfWork, unit_id: str, assignment_id: str, principal: Principal, now: datetime) -> SeenAssignment:
    """pending -> acknowledged, and `assignment.acknowledged` in the same transaction."""
    session = uow.session
    a, incident = await _owned(session, unit_id, assignment_id, principal)
    target = lifecycle.transition(AssignmentStatus(a.status), AssignmentStatus.acknowledged)
    await _move(session, a, target, now, principal, None)
    await uow.stage(assignment_event(AssignmentAcknowledged, a, principal.label, now, due_at=a.due_at, assigned_at=a.assigned_at))
    log.info("assignment acknowledged", extra={"incident_id": a.incident_id, "assignment_id": a.id, "by": principal.label})
    return seen_by_unit(a, incident)



async def change_status(
    uow: UnitOfWork,
    rule_sets: RuleSets,
    unit_id: str,
    assignment_id: str,
    target: AssignmentStatus,
    note: str | None,
    principal: Principal,
    now: datetime,
) -> tuple[SeenAssignment, Assignment | None]:
    """Move an assignment; a declined lead is handed to the cp_officer as a new lead assignment."""
    session = uow.session
    a, incident = await _owned(session, unit_id, assignment_id, principal)
    lifecycle.transition(AssignmentStatus(a.status), target, note)
    previous = await _move(session, a, target, now, principal, note)
    events = [assignment_event(AssignmentStatusChanged, a, principal.label, now, from_status=previous, to_status=target, has_note=bool(note))]
    handoff = None
    if target is AssignmentStatus.declined and a.role == Role.lead.value:
        handoff = await _hand_off(session, await rule_sets.active(session), a, incident, now)
        events.append(routed_event(incident.incident_id, incident, [handoff], HANDOFF_RULES_VERSION, [f"lead declined by {a.unit_id}: handed to {handoff.unit_id}"], now))
    await uow.stage(*events)
    log.info(
        "assignment status changed",
        extra={"incident_id": a.incident_id, "assignment_id": a.id, "from": previous.value, "to": target.value, "by": principal.label},
    )
    return seen_by_unit(a, incident), handoff



async def add_lead(
    session: AsyncSession, incident: RoutedIncident, unit_id: str, table: RuleTable, now: datetime, why: tuple[str, str, str, str]
) -> Assignment:
    """A new lead for the case, its deadline counted from now (the new lead needs its own time to take the case up).

    `why` is (rule, reason, rules_version, origin)."""
    rule, reason, rules_version, origin = why
    due_at = rules.due_at(now, Urgency(incident.urgency), table)
    lead = follow_up_assignment(
        incident, unit_id, Role.lead, rule=rule, reason=reason, rules_version=rules_version, origin=origin, due_at=due_at, now=now
    )
    await add_assignments(session, [lead], now)
    return lead


async def _hand_off(session: AsyncSession, table: RuleTable, declined: Assignment, incident: RoutedIncident, now: datetime) -> Assignment:
    unit_id = lifecycle.handoff_unit(declined.commune_code, declined.unit_id)
    # The decline note stays out of the reason: it is free text and the reason travels in events.
    reason = f"Nhận lại vai trò chủ trì: {declined.unit_id} từ chối (lead handed back: {declined.unit_id} declined)"
    handoff = await add_lead(
        session, incident, unit_id, table, now, ("handoff.decline", reason, HANDOFF_RULES_VERSION, lifecycle.handoff_origin(declined.id))
    )
    log.info("lead handed off", extra={"incident_id": declined.incident_id, "declined": declined.id, "assignment_id": handoff.id, "unit_id": unit_id})
    return handoff
