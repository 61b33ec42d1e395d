"""Reporting's read model: codes, dates and counts only. No names, phones, addresses, birth dates, schools or free text.

Each table is written by its own events, so events may arrive in any order: an acknowledgement
before its `incident.routed`, a closure before its `incident.reported`. Summaries join at read time.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UtcDateTime, new_metadata
from shared.inbox import inbox_table
from shared.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = new_metadata()


metadata = Base.metadata
outbox_message = outbox_table(metadata)
inbox_message = inbox_table(metadata)


class IncidentFact(Base):
    """`incident.reported` facts; `local_date` is the Vietnam date of occurred_at (else received_at)."""

    __tablename__ = "incident_fact"
    # Every summary filters communes by a date window, then groups.
    __table_args__ = (Index("ix_incident_fact_commune_date", "commune_code", "local_date"),)

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    commune_code: Mapped[str] = mapped_column(String(5))
    hamlet: Mapped[str | None] = mapped_column(String(80))
    category: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime())
    local_date: Mapped[date] = mapped_column(Date)


class ChildFact(Base):
    """One child of an incident: sex, age band and special-circumstance codes, nothing that identifies."""

    __tablename__ = "child_fact"
    # The incident's commune, date and category are copied (they never change) so children group without a join.
    __table_args__ = (Index("ix_child_fact_commune_date", "commune_code", "local_date"),)

    incident_id: Mapped[str] = mapped_column(ForeignKey("incident_fact.incident_id"), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    commune_code: Mapped[str] = mapped_column(String(5))
    local_date: Mapped[date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(32))
    sex: Mapped[str] = mapped_column(String(8))
    age_band: Mapped[str] = mapped_column(String(8))
    special_circumstances: Mapped[str] = mapped_column(String(400), default="")


class AssignmentFact(Base):
    """One assignment, upserted by routing's events; `status_at` orders status changes that arrive out of order."""

    __tablename__ = "assignment_fact"

    assignment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_type: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)


class EscalationFact(Base):
    """One `incident.escalated`, keyed by its event id; its unit type is the overdue assignment's."""

    __tablename__ = "escalation_fact"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(36), index=True)
    assignment_id: Mapped[str] = mapped_column(String(36), index=True)
    escalated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IncidentClosure(Base):
    """`incident.closed`: when. The outcome is free text and is not kept."""

    __tablename__ = "incident_closure"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime())
