"""Routing a reported incident (the incident.reported consumer): decide with the active rule set, store, tell of it."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import Clock
from shared.db import dialect_insert, new_id
from shared.decree56 import initial_assessment_due
from shared.enums import AssignmentStatus
from shared.events import Envelope, Event, IncidentCase, IncidentReported
from shared.metrics import RoutingMetrics

from . import process, rules
from .assignments import after_commit, bulk_insert_assignments, count_created, routed_event
from .lifecycle import CaseStatus
from .models import Assignment, RoutedIncident, Unit, dedupe_key
from .rules import Decision, RoutingInput
from .rulesets import RuleSets

ORIGIN_ROUTING = "routing"

log = logging.getLogger("baove.routing")



def case_record(case_: IncidentCase) -> dict:
    """The personal part routing keeps; an anonymous reporter's name and phone are never stored."""
    record = case_.model_dump(mode="json")
    reporter = record.get("reporter")
    if reporter and reporter.get("anonymous"):
        record["reporter"] = {"name": None, "phone": None, "relation": reporter.get("relation"), "anonymous": True}
    return record



async def active_units(session: AsyncSession, incident: RoutingInput) -> frozenset[str]:
    """The registered, active units that may act: the commune's own and any the report names (a school elsewhere)."""
    key = (incident.commune_code, incident.named_units())
    cache = session.info.setdefault("active_units", {})  # per transaction: the registry cannot change under it
    if key not in cache:
        stmt = select(Unit.id).where(
            Unit.active.is_(True), or_(Unit.commune_code == incident.commune_code, Unit.id.in_(incident.named_units()))
        )
        cache[key] = frozenset((await session.execute(stmt)).scalars())
    return cache[key]



def decided_assignments(incident_id: str, incident: RoutingInput, decision: Decision, now: datetime) -> list[Assignment]:
    return [
        Assignment(
            id=new_id(),
            incident_id=incident_id,
            unit_id=planned.unit_id,
            unit_type=planned.unit_type.value,
            commune_code=incident.commune_code,
            role=planned.role.value,
            status=AssignmentStatus.pending.value,
            rule=planned.rule,
            reason=planned.reason,
            rules_version=decision.rules_version,
            origin=ORIGIN_ROUTING,
            dedupe_key=dedupe_key(incident_id, planned.unit_id, ORIGIN_ROUTING),
            due_at=decision.due_at,
            assigned_at=now,
            updated_at=now,
        )
        for planned in decision.assignments
    ]



async def handle_reported(
    session: AsyncSession, event: Event, envelope: Envelope, *, rule_sets: RuleSets, clock: Clock, metrics: RoutingMetrics
) -> list[Envelope]:
    """Route one reported incident with the active rule set: store it and its assignments, and tell of them in `incident.routed`."""
    if not isinstance(event, IncidentReported):
        return []
    started = time.perf_counter()
    table = await rule_sets.active(session)
    incident = RoutingInput.from_event(event)
    decision = rules.decide(incident, await active_units(session, incident), table)
    now = clock()
    facts = event.facts
    # Core statements: this runs for every report. The incident row claims the business key: a
    # re-publish (same incident, another event id) or a concurrent delivery finds it taken.
    stored = await session.execute(
        dialect_insert(session)(RoutedIncident.__table__)
        .values(
            incident_id=event.incident_id,
            commune_code=facts.commune_code,
            hamlet=facts.hamlet,
            category=facts.category.value,
            urgency=facts.urgency.value,
            channel=facts.channel.value,
            occurred_at=facts.occurred_at,
            received_at=facts.received_at,
            routed_at=now,
            rules_version=decision.rules_version,
            case=case_record(event.case),
            status=CaseStatus.open.value,
            # Decree 56/2017: the initial assessment is due 12 hours after the report's receipt (process.py).
            step=process.Step.received.value,
            step_due_at=initial_assessment_due(facts.received_at),
        )
        .on_conflict_do_nothing(index_elements=["incident_id"])
    )
    if stored.rowcount == 0:
        log.info("incident already routed", extra={"incident_id": event.incident_id})
        return []
    assignments = decided_assignments(event.incident_id, incident, decision, now)
    await bulk_insert_assignments(session, assignments, now)
    metrics.decision_seconds.observe(time.perf_counter() - started)
    after_commit(session, lambda: count_created(metrics, assignments))
    log.info(
        "incident routed",
        extra={
            "incident_id": event.incident_id,
            "category": facts.category.value,
            "urgency": facts.urgency.value,
            "assignments": len(assignments),
            "lead": ",".join(a.unit_id for a in decision.lead),
            "rules_version": decision.rules_version,
        },
    )
    return [routed_event(event.incident_id, facts, assignments, decision.rules_version, decision.notes, now)]
