"""Notifications to units (pure core and the consumer's work): which events a unit is told of, the thin message
each becomes, when it may be sent (quiet hours, retries), and the deliveries stored for the delivery loop.

A message names what happened, its urgency, its due time and a link to the console: never a child's name,
birth date, school, phone or the description (Decree 56 Art. 33). Everything else is read in the console.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import Clock
from shared.db import dialect_insert
from shared.enums import Category, UnitType, Urgency
from shared.events import (
    AssignmentOverdue,
    Envelope,
    Event,
    IncidentClosed,
    IncidentEscalated,
    IncidentRouted,
    IncidentStepOverdue,
    ReportDue,
)
from shared.settings import NotifySettings

from .models import Assignment, Delivery, RoutedIncident, Subscription, Unit

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


class NotificationType(StrEnum):
    """What a unit may subscribe to."""

    assignment_created = "assignment.created"
    assignment_overdue = "assignment.overdue"
    incident_escalated = "incident.escalated"
    incident_closed = "incident.closed"
    report_due = "report.due"
    step_overdue = "incident.step_overdue"


class ChannelKind(StrEnum):
    webhook = "webhook"
    email = "email"


class Notification(BaseModel):
    """The thin message a unit receives (webhook body, agency queue message, email facts): no personal data, a link to the console."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Notification")
    schema_version: ClassVar[int] = 1

    type: NotificationType
    notification_id: str = Field(description="the delivery's id, equal to the webhook-id header; the same on every retry")
    incident_id: str | None = Field(description="the case; null for report.due")
    assignment_id: str | None = Field(description="the unit's assignment; null for report.due")
    unit_id: str = Field(description="the unit told, e.g. 25349.police")
    commune_code: str
    category: Category | None = Field(description="the case's category; null for report.due")
    urgency: Urgency = Field(description="the case's urgency; low for report.due (a reminder)")
    due_at: datetime | None = Field(description="when the unit must have acknowledged (assignments); the missed deadline (incident.step_overdue)")
    step: str | None = Field(None, description="incident.step_overdue: the Decree 56/2017 step not done in time (initial_assessment, plan, temporary_care)")
    occurred_at: datetime = Field(description="when baove recorded what happened")
    console_url: str = Field(description="where the unit reads the case (the report, for report.due), after signing in")
    period: str | None = Field(None, description="report.due: the plan period, e.g. 2025-6M")
    due_date: date | None = Field(None, description="report.due: the last day to send the report (Vietnam's date)")
    days_left: int | None = Field(None, description="report.due: days from the reminder to the due date")
    document_status: str | None = Field(
        None, description="report.due: the document's status then: none (not drafted), draft, submitted or approved"
    )


WEBHOOK_HEADERS = {
    "webhook-id": "the delivery's id (= notification_id): the same on every retry; receivers dedupe by it",
    "webhook-timestamp": "seconds since the epoch when this attempt was signed",
    "webhook-signature": "space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>, one per valid whsec_ secret",
}


def notification_contract() -> dict:
    """The published contract of what a unit receives (docs/contracts/notifications.schema.json)."""
    return {
        "title": "baove notifications",
        "description": "The body of each webhook (Standard Webhooks) and of each message on an agency queue (agency.{unit_id}, message_id = notification_id), and the facts of each email sent to a unit.",
        "schema_version": Notification.schema_version,
        "webhook_headers": WEBHOOK_HEADERS,
        "payload": Notification.model_json_schema(),
    }


@dataclass(frozen=True)
class Told:
    """One unit to tell of one event."""

    type: NotificationType
    unit_id: str
    assignment_id: str
    due_at: datetime | None


def told(event: Event, assignments: Sequence[Assignment] = ()) -> list[Told]:
    """The units an event concerns. `assignments` are the incident's, for the events that do not list them."""
    match event:
        case IncidentRouted():
            return [Told(NotificationType.assignment_created, a.unit_id, a.assignment_id, a.due_at) for a in event.assignments]
        case AssignmentOverdue():
            return [Told(NotificationType.assignment_overdue, event.unit_id, event.assignment_id, event.due_at)]
        case IncidentEscalated():
            # The escalation made one new lead assignment per unit escalated to.
            origin = f"escalation:{event.overdue_assignment_id}"
            return [
                Told(NotificationType.incident_escalated, a.unit_id, a.id, a.due_at)
                for a in assignments
                if a.origin == origin and a.unit_id in event.escalated_to
            ]
        case IncidentClosed():
            return [Told(NotificationType.incident_closed, a.unit_id, a.id, None) for a in _one_per_unit(assignments)]
        case IncidentStepOverdue():
            # The chairman directs the process (Art. 26); the case's deadline, not an assignment's.
            return [Told(NotificationType.step_overdue, unit, "", event.due_at) for unit in event.escalated_to]
        case ReportDue():
            # The cp_officer compiles the report, the chairman signs it (a unit with no subscription is told nothing).
            return [Told(NotificationType.report_due, report_unit(event.org_unit, t), "", None) for t in REPORT_DUE_TOLD]
    return []


REPORT_DUE_TOLD = (UnitType.cp_officer, UnitType.chairman)


def report_unit(commune_code: str, unit_type: UnitType) -> str:
    return f"{commune_code}.{unit_type.value}"


def _one_per_unit(assignments: Sequence[Assignment]) -> list[Assignment]:
    seen: dict[str, Assignment] = {}
    for a in sorted(assignments, key=lambda a: a.assigned_at):
        seen.setdefault(a.unit_id, a)
    return list(seen.values())


def in_quiet_hours(start: str | None, end: str | None, at: datetime) -> datetime | None:
    """When quiet hours (local time, may span midnight) holding `at` end; None outside them."""
    if not start or not end or start == end:
        return None
    local = at.astimezone(LOCAL)
    begin, finish = time.fromisoformat(start), time.fromisoformat(end)
    now = local.timetz().replace(tzinfo=None)
    inside = begin <= now < finish if begin < finish else (now >= begin or now < finish)
    if not inside:
        return None
    until = local.replace(hour=finish.hour, minute=finish.minute, second=0, microsecond=0)
    if until <= local:
        until += timedelta(days=1)
    return until


def first_attempt_at(subscription: Subscription, urgency: Urgency, now: datetime) -> datetime:
    """At once, or at the end of the subscription's quiet hours; an emergency never waits."""
    if urgency == Urgency.emergency:
        return now
    return in_quiet_hours(subscription.quiet_start, subscription.quiet_end, now) or now


def retry_delay(settings: NotifySettings, attempts: int, rng: random.Random | None = None) -> float | None:
    """The wait after `attempts` failed attempts, with jitter; None when the schedule is spent."""
    if attempts > len(settings.retry_seconds):
        return None
    base = settings.retry_seconds[attempts - 1]
    spread = base * settings.jitter
    return max(0.0, base + (rng or random).uniform(-spread, spread))


def console_link(settings: NotifySettings, incident_id: str) -> str:
    return f"{settings.console_url.rstrip('/')}/cases/{incident_id}"


def report_link(settings: NotifySettings, commune_code: str, period: str) -> str:
    return f"{settings.console_url.rstrip('/')}/reports/{commune_code}/document?period={period}"


Status = Literal["pending", "delivered", "failed", "dropped"]


async def record_deliveries(
    session: AsyncSession, event: Event, envelope: Envelope, *, settings: NotifySettings, clock: Clock
) -> int:
    """The consumer's work: one pending delivery per subscription that wants the event (a redelivered event adds none).
    The number of deliveries staged (0: nothing for the delivery loop)."""
    if isinstance(event, ReportDue):
        return await _record_report_due(session, event, envelope, settings=settings, clock=clock)
    incident_id = event.incident_id  # every other bound event names its incident
    incident = await session.get(RoutedIncident, incident_id)
    if incident is None:
        return 0
    assignments = list((await session.execute(select(Assignment).where(Assignment.incident_id == incident_id))).scalars())
    wanted = told(event, assignments)
    if not wanted:
        return 0
    by_unit = await _subscriptions(session, {t.unit_id for t in wanted})
    now = clock()
    rows = [
        _delivery(
            s, t, envelope, Urgency(incident.urgency), now,
            incident_id=incident_id, assignment_id=t.assignment_id, commune_code=incident.commune_code,
            category=incident.category, due_at=t.due_at, console_url=console_link(settings, incident_id),
            **({"step": event.step} if isinstance(event, IncidentStepOverdue) else {}),
        )
        for t in wanted
        for s in by_unit.get(t.unit_id, ())
        if t.type.value in s.events
    ]
    await _insert(session, rows)
    return len(rows)


async def _record_report_due(
    session: AsyncSession, event: ReportDue, envelope: Envelope, *, settings: NotifySettings, clock: Clock
) -> int:
    """report.due: the commune's cp_officer and chairman units (those registered and active) that chose the event.
    A reminder is no case: urgency low (quiet hours apply), no incident, no assignment."""
    wanted = told(event)
    active = set(
        (await session.execute(select(Unit.id).where(Unit.id.in_([t.unit_id for t in wanted]), Unit.active.is_(True)))).scalars()
    )
    by_unit = await _subscriptions(session, active)
    now = clock()
    rows = [
        _delivery(
            s, t, envelope, Urgency.low, now,
            incident_id=None, assignment_id=None, commune_code=event.org_unit, category=None, due_at=None,
            console_url=report_link(settings, event.org_unit, event.period),
            period=event.period, due_date=event.due, days_left=event.days_left, document_status=event.status,
        )
        for t in wanted
        for s in by_unit.get(t.unit_id, ())
        if t.type.value in s.events
    ]
    await _insert(session, rows)
    return len(rows)


def _delivery(s: Subscription, t: Told, envelope: Envelope, urgency: Urgency, now: datetime, **facts) -> dict:
    """The row of one pending delivery and its thin message (`facts`: the rest of Notification's fields)."""
    delivery_id = str(uuid.uuid4())
    message = Notification(
        type=t.type, notification_id=delivery_id, unit_id=t.unit_id, urgency=urgency, occurred_at=envelope.emitted_at, **facts
    )
    return {
        "id": delivery_id,
        "subscription_id": s.id,
        "event_id": str(envelope.event_id),
        "assignment_id": t.assignment_id,  # "" for report.due: one delivery per subscription and event
        "event_type": t.type.value,
        "urgency": urgency.value,
        "payload": message.model_dump(mode="json"),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": first_attempt_at(s, urgency, now),
        "created_at": now,
    }


async def _subscriptions(session: AsyncSession, units: set[str]) -> dict[str, list[Subscription]]:
    subscriptions = (
        await session.execute(select(Subscription).where(Subscription.unit_id.in_(units), Subscription.active.is_(True)))
    ).scalars()
    by_unit: dict[str, list[Subscription]] = {}
    for s in subscriptions:
        by_unit.setdefault(s.unit_id, []).append(s)
    return by_unit


async def _insert(session: AsyncSession, rows: list[dict]) -> None:
    if rows:
        # The unique key (subscription, event, assignment) is the last guard against doubles.
        stmt = dialect_insert(session)(Delivery).values(rows).on_conflict_do_nothing(
            index_elements=["subscription_id", "event_id", "assignment_id"]
        )
        await session.execute(stmt)
