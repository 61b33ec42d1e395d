"""Intake's tables: the case file (personal data lives here) and its timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IncidentFactColumns, UtcDateTime
from shared.outbox import service_metadata

metadata, outbox_message, inbox_message = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class Incident(IncidentFactColumns, Base):
    __tablename__ = "incident"

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


class TimelineEntry(Base):
    __tablename__ = "timeline_entry"
    __table_args__ = (Index("ix_timeline_entry_incident_at", "incident_id", "at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incident.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(40))
    principal: Mapped[str] = mapped_column(String(120))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
