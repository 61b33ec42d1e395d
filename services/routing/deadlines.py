"""Acknowledgement deadlines: which assignments are overdue at `now` and the escalation they cause (pure),
and the watcher that applies them from the database.

The deadlines live in the assignment table (`due_at`, `overdue_at`), never in timers in memory: a watcher
that restarts at any moment finds the same overdue rows, and a row once flagged is not escalated again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import Clock
from shared.db import on_postgresql
from shared.enums import AssignmentStatus, Role, UnitType, Urgency
from shared.events import AssignmentOverdue, IncidentEscalated, IncidentStepOverdue
from shared.loops import repeat
from shared.metrics import RoutingMetrics
from shared.runtime import Runtime

from . import lifecycle, process, rules
from .assignments import (
    PRODUCER,
    add_assignments,
    assignment_event,
    count_created,
    follow_up_assignment,
    routed_event,
    to_envelope,
)
from .models import Assignment, RoutedIncident, Unit
from .rules import RuleTable
from .rulesets import RuleSets

log = logging.getLogger("baove.routing.deadlines")

ESCALATION_ORIGIN = "escalation:"
ESCALATION_RULE = "escalation.overdue"
ESCALATION_RULES_VERSION = "escalation"
# domain.md section 4: an assignment not acknowledged in time escalates to the focal point and the chairman.
ESCALATE_TO = (UnitType.cp_officer, UnitType.chairman)
REASON_UNITS = 3


# -- pure --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A pending assignment as the watcher sees it."""

    assignment_id: str
    unit_id: str
    role: Role
    due_at: datetime
    origin: str

    @property
    def escalates(self) -> bool:
        """A late escalation is flagged but goes no higher: the cp_officer and the chairman are the top of the commune."""
        return not self.origin.startswith(ESCALATION_ORIGIN)


@dataclass(frozen=True)
class PlannedEscalation:
    unit_id: str
    unit_type: UnitType
    origin: str
    reason: str
    due_at: datetime


@dataclass(frozen=True)
class Escalation:
    """What one incident's newly overdue assignments cause: new assignments, named after the one that triggered them."""

    trigger: Pending
    assignments: tuple[PlannedEscalation, ...]
    notes: tuple[str, ...]

    @property
    def escalated_to(self) -> tuple[str, ...]:
        return tuple(a.unit_id for a in self.assignments)


def overdue(pending: Iterable[Pending], now: datetime) -> tuple[Pending, ...]:
    """The assignments past due at `now`: the lead first, then by due time and id."""
    late = [p for p in pending if lifecycle.is_overdue(AssignmentStatus.pending, p.due_at, now)]
    return tuple(sorted(late, key=lambda p: (p.role is not Role.lead, p.due_at, p.assignment_id)))


def escalation_origin(overdue_assignment_id: str) -> str:
    """Part of the escalation's dedupe key: a second run for the same overdue assignment inserts nothing."""
    return f"{ESCALATION_ORIGIN}{overdue_assignment_id}"


def targets(commune_code: str) -> tuple[str, ...]:
    return tuple(f"{commune_code}.{t.value}" for t in ESCALATE_TO)


def escalation_reason(late_units: Sequence[str]) -> str:
    shown = ", ".join(late_units[:REASON_UNITS]) + (f" (+{len(late_units) - REASON_UNITS})" if len(late_units) > REASON_UNITS else "")
    return f"Báo lên do quá hạn tiếp nhận: {shown} (escalated: not acknowledged in time)"


def plan_escalation(
    commune_code: str,
    urgency: Urgency,
    late: Sequence[Pending],
    holders: Set[str],
    registered: Set[str],
    now: datetime,
    table: RuleTable,
) -> Escalation | None:
    """The escalation for an incident's newly overdue assignments (`late`, as `overdue` orders them), or None."""
    # One escalation assignment per target per incident: a target still holding an open escalation of the
    # incident (`holders`) gets no second one. The cp_officer is escalated to even when missing from the
    # registry (a case is never dropped, as in rules.decide); the chairman only when registered.
    escalating = [p for p in late if p.escalates]
    if not escalating:
        return None
    trigger = escalating[0]
    reason = escalation_reason(list(dict.fromkeys(p.unit_id for p in escalating)))
    due = rules.due_at(now, urgency, table)
    planned: list[PlannedEscalation] = []
    notes: list[str] = []
    for unit_type, unit_id in zip(ESCALATE_TO, targets(commune_code)):
        if unit_id in holders:
            notes.append(f"{unit_id} already holds an open escalation of this incident")
        elif unit_type is not UnitType.cp_officer and unit_id not in registered:
            notes.append(f"{ESCALATION_RULE} skipped: {unit_id} is not in the unit registry")
        else:
            planned.append(PlannedEscalation(unit_id, unit_type, escalation_origin(trigger.assignment_id), reason, due))
    if not planned:
        return None
    return Escalation(trigger, tuple(planned), tuple(notes))


# -- the watcher -------------------------------------------------------------------------------------


def pending_of(a: Assignment) -> Pending:
    return Pending(a.id, a.unit_id, Role(a.role), a.due_at, a.origin)


class DeadlineWatcher:
    """Every `interval` seconds: flag pending assignments past due_at and escalate them, one incident per transaction."""

    def __init__(
        self,
        runtime: Runtime,
        rule_sets: RuleSets,
        clock: Clock,
        metrics: RoutingMetrics,
        *,
        interval: float = 15.0,
        batch_size: int = 100,
    ) -> None:
        self.runtime = runtime
        self.rule_sets = rule_sets
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        self.batch_size = batch_size

    async def run(self) -> None:
        # Database away: the deadlines wait in their table; look again on the next tick.
        await repeat(self.tick, pause=self.interval, failed=self._failed)

    @staticmethod
    def _failed(exc: Exception) -> None:
        log.warning("deadline watcher cannot run yet: %s", type(exc).__name__, extra={"error": str(exc)[:200]})

    async def tick(self) -> int:
        """One pass over every incident with newly overdue assignments; returns how many incidents it handled."""
        now = self.clock()
        handled = 0
        while True:
            candidates = await self._candidates(now)
            done = [await self._escalate_one(incident_id, now) for incident_id in candidates]
            handled += sum(done)
            # A full batch may hide more; incidents another replica holds are left to the next tick.
            if len(candidates) < self.batch_size or not any(done):
                break
        await self._count_overdue(now)
        await self.tick_steps(now)
        return handled

    # -- the Decree 56/2017 process's deadlines (process.py): routed_incident.step_due_at --------------------------

    async def tick_steps(self, now: datetime | None = None) -> int:
        """Tell the chairman, once, of each case whose watched step deadline passed or whose temporary care reached
        its end date; returns how many were told."""
        now = now or self.clock()
        told = 0
        for watch in (STEP_WATCH, CARE_WATCH):
            while True:
                async with self.runtime.unit_of_work() as uow:
                    rows = await uow.session.execute(
                        select(RoutedIncident.incident_id)
                        .where(*watch.newly_overdue(now))
                        .order_by(watch.due, RoutedIncident.incident_id)
                        .limit(self.batch_size)
                    )
                    candidates = list(rows.scalars())
                done = [await self.escalate_step(incident_id, now, watch) for incident_id in candidates]
                told += sum(done)
                if len(candidates) < self.batch_size or not any(done):
                    break
        return told

    async def escalate_step(self, incident_id: str, now: datetime, watch: _Watch | None = None) -> bool:
        """Flag one case's missed step deadline (or ended temporary care) and publish incident.step_overdue, in one
        transaction."""
        watch = watch or STEP_WATCH
        async with self.runtime.unit_of_work() as uow:
            # Compare-and-set: the flag is the once. A replica that lost the race, or a case whose step was
            # recorded meanwhile (step_due_at cleared), updates nothing.
            flagged = (
                await uow.session.execute(
                    update(RoutedIncident)
                    .where(RoutedIncident.incident_id == incident_id, *watch.newly_overdue(now))
                    .values({watch.flag.key: now})
                    .returning(RoutedIncident.commune_code, RoutedIncident.step, watch.due)
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if flagged is None:
                return False
            commune_code, step, due_at = flagged
            late = watch.late(step)
            event = IncidentStepOverdue(
                incident_id=incident_id,
                commune_code=commune_code,
                step=late,
                due_at=due_at,
                escalated_to=process.escalate_to(commune_code),
                at=now,
            )
            await uow.stage(to_envelope(event, incident_id, now))
        log.info("process step overdue", extra={"incident_id": incident_id, "step": late})
        return True

    async def _candidates(self, now: datetime) -> list[str]:
        async with self.runtime.unit_of_work() as uow:
            rows = await uow.session.execute(
                select(Assignment.incident_id)
                .where(*_newly_overdue(now))
                .group_by(Assignment.incident_id)
                .order_by(func.min(Assignment.due_at), Assignment.incident_id)
                .limit(self.batch_size)
            )
            return list(rows.scalars())

    async def _escalate_one(self, incident_id: str, now: datetime) -> bool:
        try:
            return await self.escalate(incident_id, now)
        except IntegrityError:
            # The dedupe key says this escalation was made already: the second line of defence held. The
            # transaction is undone; the other incidents go on, and the error stays visible in the log.
            log.error("escalation already exists; incident left as it is", extra={"incident_id": incident_id})
            return False

    async def escalate(self, incident_id: str, now: datetime) -> bool:
        """Flag one incident's overdue assignments and escalate them, with their events, in one transaction."""
        async with self.runtime.unit_of_work() as uow:
            session = uow.session
            # Over PostgreSQL several replicas may watch: each claims an incident with FOR UPDATE SKIP LOCKED (closing
            # a case locks the same row), and the UNIQUE dedupe key of an escalation is the second line of defence.
            claim = select(RoutedIncident).where(RoutedIncident.incident_id == incident_id)
            if on_postgresql(session):
                claim = claim.with_for_update(skip_locked=True)
            incident = (await session.execute(claim)).scalar_one_or_none()
            if incident is None:
                return False  # another replica holds it
            # Compare-and-set: only rows still pending and unflagged are ours (a unit may acknowledge meanwhile).
            flagged_ids = (
                await session.execute(
                    update(Assignment)
                    .where(Assignment.incident_id == incident_id, *_newly_overdue(now))
                    .values(overdue_at=now)
                    .returning(Assignment.id)
                    .execution_options(synchronize_session=False)
                )
            ).scalars().all()
            if not flagged_ids:
                return False
            flagged = (await session.execute(select(Assignment).where(Assignment.id.in_(flagged_ids)))).scalars().all()
            late = overdue([pending_of(a) for a in flagged], now)
            plan = plan_escalation(
                incident.commune_code,
                Urgency(incident.urgency),
                late,
                await self._holders(session, incident_id),
                await self._registered(session, incident.commune_code),
                now,
                await self.rule_sets.active(session),
            )
            events = [
                assignment_event(AssignmentOverdue, a, PRODUCER, now, due_at=a.due_at)
                for a in sorted(flagged, key=lambda a: a.id)
            ]
            created: list[Assignment] = []
            if plan is not None:
                created = [
                    follow_up_assignment(
                        incident,
                        p.unit_id,
                        Role.support,
                        rule=ESCALATION_RULE,
                        reason=p.reason,
                        rules_version=ESCALATION_RULES_VERSION,
                        origin=p.origin,
                        due_at=p.due_at,
                        now=now,
                    )
                    for p in plan.assignments
                ]
                await add_assignments(session, created, now)
                escalated = IncidentEscalated(
                    incident_id=incident_id,
                    commune_code=incident.commune_code,
                    overdue_assignment_id=plan.trigger.assignment_id,
                    escalated_to=plan.escalated_to,
                    at=now,
                )
                events.append(to_envelope(escalated, incident_id, now))
                events.append(routed_event(incident_id, incident, created, ESCALATION_RULES_VERSION, plan.notes, now))
            await uow.stage(*events)
        if plan is not None:
            self.metrics.escalations.inc()
            count_created(self.metrics, created)
        log.info(
            "assignments overdue",
            extra={
                "incident_id": incident_id,
                "overdue": len(flagged),
                "escalated_to": ",".join(plan.escalated_to) if plan else "",
            },
        )
        return True

    async def _holders(self, session: AsyncSession, incident_id: str) -> frozenset[str]:
        """Units already holding an open escalation of the incident."""
        rows = await session.execute(
            select(Assignment.unit_id).where(
                Assignment.incident_id == incident_id,
                Assignment.origin.startswith(ESCALATION_ORIGIN),
                Assignment.status.in_([s.value for s in lifecycle.OPEN]),
            )
        )
        return frozenset(rows.scalars())

    async def _registered(self, session: AsyncSession, commune_code: str) -> frozenset[str]:
        rows = await session.execute(select(Unit.id).where(Unit.id.in_(targets(commune_code)), Unit.active.is_(True)))
        return frozenset(rows.scalars())

    async def _count_overdue(self, now: datetime) -> None:
        async with self.runtime.unit_of_work() as uow:
            rows = await uow.session.execute(
                select(Assignment.unit_type, func.count())
                .where(Assignment.status == AssignmentStatus.pending.value, Assignment.due_at < now)
                .group_by(Assignment.unit_type)
            )
            counts = dict(rows.all())
        for unit_type in UnitType:
            self.metrics.overdue.labels(unit_type.value).set(counts.get(unit_type.value, 0))


@dataclass(frozen=True)
class _Watch:
    """A deadline kept on the case's row: its due column, the flag set once when it is found missed, and the step
    incident.step_overdue names."""

    due: Any
    flag: Any
    late: Callable[[str], str]

    def newly_overdue(self, now: datetime) -> tuple:
        return (RoutedIncident.status == lifecycle.CaseStatus.open.value, self.flag.is_(None), self.due < now)


STEP_WATCH = _Watch(RoutedIncident.step_due_at, RoutedIncident.step_overdue_at, lambda step: process.overdue_step(process.Step(step)).value)
CARE_WATCH = _Watch(RoutedIncident.care_ends_at, RoutedIncident.care_overdue_at, lambda step: process.CARE_OVERDUE_STEP)


def _newly_overdue(now: datetime) -> tuple:
    return (Assignment.status == AssignmentStatus.pending.value, Assignment.overdue_at.is_(None), Assignment.due_at < now)
