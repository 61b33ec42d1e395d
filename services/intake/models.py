"""Intake's tables: the case file (personal data lives here) and its timeline."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IncidentFactColumns, UtcDateTime
from shared.outbox import service_metadata

metadata, outbox_message, inbox_message = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class Incident(IncidentFactColumns, Base):
    __tablename__ = "incident"
    # The duplicate check reads a commune's last 30 days (issue 17): the window is a range of this index.
    __table_args__ = (Index("ix_incident_commune_received", "commune_code", "received_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    report_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    reported_by: Mapped[str] = mapped_column(String(120))
    commune_code: Mapped[str] = mapped_column(String(5), index=True)
    hamlet: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default="received")
    description: Mapped[str] = mapped_column(Text)
    children: Mapped[list] = mapped_column(JSON)
    reporter: Mapped[dict | None] = mapped_column(JSON)
    consent: Mapped[dict | None] = mapped_column(JSON)
    # Accepted, not yet compared with the commune's last 30 days (issue 17): the duplicate check's durable queue.
    duplicates_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)


class TimelineEntry(Base):
    __tablename__ = "timeline_entry"
    __table_args__ = (Index("ix_timeline_entry_incident_at", "incident_id", "at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incident.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(40))
    principal: Mapped[str] = mapped_column(String(120))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class Activity(Base):
    """What a unit did under a task of its commune's plan (issue 16): codes, a date, counts and a short note.

    The note is checked for personal data on the way in and never leaves intake (events carry codes and counts).
    `author` (the person, or a machine token) alone may correct or withdraw it; `revision` counts the changes.
    """

    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_commune_held_on", "commune_code", "held_on"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    commune_code: Mapped[str] = mapped_column(String(5))
    unit_id: Mapped[str] = mapped_column(String(80), index=True)
    unit_type: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(16))
    plan_version: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    held_on: Mapped[date] = mapped_column(Date)
    counts: Mapped[dict] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="recorded")
    revision: Mapped[int] = mapped_column(Integer, default=1)
    recorded_by: Mapped[str] = mapped_column(String(120))
    author: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DuplicateCandidate(Base):
    """Two reports that may be about the same child (issue 17): found at intake, linked or dismissed by the cp_officer.

    `incident_id` is the later report, `other_id` the earlier one; never merged, a link only says they are one case.
    """

    __tablename__ = "duplicate_candidate"
    __table_args__ = (UniqueConstraint("incident_id", "other_id", name="uq_duplicate_candidate_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incident.id"), index=True)
    other_id: Mapped[str] = mapped_column(ForeignKey("incident.id"), index=True)
    commune_code: Mapped[str] = mapped_column(String(5))
    score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | linked | dismissed
    found_at: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
