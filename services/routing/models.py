"""Routing's tables: the unit registry, rule sets, routed incidents (personal data lives here), assignments and their history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IncidentFactColumns, UtcDateTime
from shared.outbox import service_metadata

metadata, outbox_message, inbox_message = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class Unit(Base):
    """A unit that can receive assignments (contract.md, unit ids)."""

    __tablename__ = "unit"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    commune_code: Mapped[str] = mapped_column(String(5), index=True)
    unit_type: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RoutedIncident(IncidentFactColumns, Base):
    """An incident as routing received it; `case` holds what the units need to act (personal data)."""

    __tablename__ = "routed_incident"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    commune_code: Mapped[str] = mapped_column(String(5))
    hamlet: Mapped[str | None] = mapped_column(String(120))
    routed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rules_version: Mapped[str] = mapped_column(String(40))
    case: Mapped[dict] = mapped_column(JSON)
    # "open" or "closed" (lifecycle.CaseStatus); the history of closings is in incident_change.
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    risk_level: Mapped[str | None] = mapped_column(String(16))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The Decree 56/2017 process (process.py): the last step done, the watched deadline of the next one and when
    # the watcher found it missed and escalated (once); the history of the steps is in step_change.
    step: Mapped[str] = mapped_column(String(32), default="received", server_default="received")
    step_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    step_overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The chairman's temporary care decision (Art. 32): when its last day ends, and when the watcher told of it (once).
    care_ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    care_overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Linked by the cp_officer to an earlier report of the same child (incident.linked): its process is that case's.
    linked_to: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (
        # The step watcher: unflagged, past due.
        Index("ix_routed_incident_step_watch", "step_overdue_at", "step_due_at"),
        Index("ix_routed_incident_care_watch", "care_overdue_at", "care_ends_at"),
    )


class IncidentChange(Base):
    """The history of a case: who closed it (risk level, outcome) or reopened it (reason), and when."""

    __tablename__ = "incident_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("routed_incident.incident_id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    action: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(String(120))
    risk_level: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)


class StepChange(Base):
    """The history of a case's process steps: who moved it from which step to which, when, by which record."""

    __tablename__ = "step_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("routed_incident.incident_id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    from_step: Mapped[str] = mapped_column(String(32))
    to_step: Mapped[str] = mapped_column(String(32))
    principal: Mapped[str] = mapped_column(String(120))
    record_id: Mapped[str | None] = mapped_column(String(36))


class ProcessRecord(Base):
    """One version of a step's form (Mẫu 02, ...) as a validated structured record; an amendment is a new version,
    the old ones kept. `data` may hold personal data (free text): blanked on erasure."""

    __tablename__ = "process_record"
    __table_args__ = (Index("uq_process_record_version", "incident_id", "form", "version", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("routed_incident.incident_id"), index=True)
    form: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict] = mapped_column(JSON)
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RuleSet(Base):
    """A version of the routing table as loaded (its YAML text); exactly one is active."""

    __tablename__ = "rule_set"
    __table_args__ = (
        # At most one active table, whatever two loads at the same time try.
        Index("uq_rule_set_active", "active", unique=True, sqlite_where=text("active"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    source: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    loaded_by: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean)


class Assignment(Base):
    __tablename__ = "assignment"
    __table_args__ = (
        # The inbox query: one unit's assignments by status, soonest due first.
        Index("ix_assignment_inbox", "unit_id", "status", "due_at"),
        # The deadline watcher: pending, not yet flagged, past due.
        Index("ix_assignment_watch", "status", "overdue_at", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("routed_incident.incident_id"), index=True)
    unit_id: Mapped[str] = mapped_column(String(120))
    unit_type: Mapped[str] = mapped_column(String(32))
    commune_code: Mapped[str] = mapped_column(String(5))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(500))
    rules_version: Mapped[str] = mapped_column(String(40))
    # "routing" for the routing decision, "decline:<assignment id>" for a lead handed back,
    # "escalation:<overdue assignment id>" for an escalation, "reopen:<incident change id>" for a reopened case.
    origin: Mapped[str] = mapped_column(String(60))
    # A task of the approved support plan (Mẫu 04) as the plan asks it of the unit (routing only: never in events).
    task: Mapped[str | None] = mapped_column(Text)
    # One assignment per unit per incident and origin: the second line of defence after the inbox.
    dedupe_key: Mapped[str] = mapped_column(String(240), unique=True)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    note: Mapped[str | None] = mapped_column(Text)
    # When the deadline watcher found it pending past due_at and escalated; kept after a late acknowledgement.
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AssignmentChange(Base):
    """The history of an assignment: who moved it from which status to which, and when."""

    __tablename__ = "assignment_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignment.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


def dedupe_key(incident_id: str, unit_id: str, origin: str) -> str:
    return f"{incident_id}:{unit_id}:{origin}"


class Subscription(Base):
    """A unit's wish to be told of some events on one channel (a webhook URL or an email address)."""

    __tablename__ = "notify_subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(120), index=True)
    commune_code: Mapped[str] = mapped_column(String(5))
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(500))
    events: Mapped[list] = mapped_column(JSON)
    # The webhook's `whsec_` secrets, newest last: two during a rotation, each message signed with both.
    secrets: Mapped[list] = mapped_column(JSON)
    # Quiet hours, local time "HH:MM"; an emergency is sent at once whatever the hour.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(120))


class Delivery(Base):
    """One message for one subscription (outbox semantics): its id is the webhook-id, the same on every attempt."""

    __tablename__ = "notify_delivery"
    __table_args__ = (
        # One delivery per subscription, event and assignment, however often the event is redelivered.
        Index("uq_notify_delivery", "subscription_id", "event_id", "assignment_id", unique=True),
        # The delivery loop: pending ones, soonest due first.
        Index("ix_notify_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("notify_subscription.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(36))
    assignment_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(40))
    urgency: Mapped[str] = mapped_column(String(16))
    # The thin message (notify.Notification): no personal data.
    payload: Mapped[dict] = mapped_column(JSON)
    # pending, delivered, failed (out of attempts) or dropped (the endpoint is gone: 410, or disabled).
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
