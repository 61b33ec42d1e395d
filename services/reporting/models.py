"""Reporting's read model: codes, dates and counts only. No names, phones, addresses, birth dates, schools or free text.

Each table is written by its own events, so events may arrive in any order: an acknowledgement
before its `incident.routed`, a closure before its `incident.reported`. Summaries join at read time.
Every fact row carries `ingested_at` (reporting's clock when the event was folded in), so the
report scheduler can tell which communes and dates changed after a report was generated.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IncidentFactColumns, UtcDateTime
from shared.outbox import service_metadata

metadata, outbox_message, inbox_message = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class IncidentFact(IncidentFactColumns, Base):
    """`incident.reported` facts; `local_date` is the Vietnam date of occurred_at (else received_at)."""

    __tablename__ = "incident_fact"
    # Every summary filters communes by a date window, then groups.
    __table_args__ = (Index("ix_incident_fact_commune_date", "commune_code", "local_date"),)

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    commune_code: Mapped[str] = mapped_column(String(5))
    hamlet: Mapped[str | None] = mapped_column(String(80))
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime())
    local_date: Mapped[date] = mapped_column(Date)
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


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
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class EscalationFact(Base):
    """One `incident.escalated`, keyed by its event id; its unit type is the overdue assignment's."""

    __tablename__ = "escalation_fact"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(36), index=True)
    assignment_id: Mapped[str] = mapped_column(String(36), index=True)
    escalated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class IncidentClosure(Base):
    """`incident.closure_recorded` and `incident.reopened`: the latest of each. The closing's outcome is free text:
    it travels in `incident.closed`, which reporting's queue is not bound to.

    A case is closed when it has a `closed_at` later than any `reopened_at`, whatever order the events came in.
    """

    __tablename__ = "incident_closure"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reopened_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The latest closing's risk level (Mẫu 06); null for a closing folded before issue 17 kept it.
    risk_level: Mapped[str | None] = mapped_column(String(8))
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class StepFact(Base):
    """`incident.step_changed` (issue 17): when a case first completed each step of the Decree 56/2017 process.

    The incident, the step and the time only: never who moved it (a person's label) nor the step's record. The first
    time is kept (a plan drafted again after a review does not move the plan's date), whatever the arrival order.
    """

    __tablename__ = "step_fact"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class StepOverdueFact(Base):
    """`incident.step_overdue` (issue 17): a step missed its deadline and routing told the chairman (once per step)."""

    __tablename__ = "step_overdue_fact"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class CareFact(Base):
    """`incident.care_decided` (issue 17): the chairman's temporary care decision at its highest version (an extension
    or correction replaces the dates). Dates only: where the child is cared for, and who decided, stay in routing."""

    __tablename__ = "care_fact"
    __table_args__ = (Index("ix_care_fact_commune_dates", "commune_code", "starts_on"),)

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    commune_code: Mapped[str] = mapped_column(String(5))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class IncidentLink(Base):
    """`incident.linked` (issue 17): a later report the commune's cp_officer linked to an earlier one of the same child.

    Its children are the earlier report's: they are not counted again (indicator 0101 counts children, not reports).
    """

    __tablename__ = "incident_link"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    linked_to: Mapped[str] = mapped_column(String(36))
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class ActivityFact(Base):
    """One activity of a unit under the commune's plan, at the highest revision seen (issue 16).

    Codes, a date and counts: the author's note never reaches reporting. A withdrawn activity stays as a
    tombstone (`withdrawn`), so that an earlier revision arriving late cannot bring it back.
    """

    __tablename__ = "activity_fact"
    __table_args__ = (Index("ix_activity_fact_commune_date", "commune_code", "local_date"),)

    activity_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    commune_code: Mapped[str] = mapped_column(String(5))
    local_date: Mapped[date] = mapped_column(Date)
    unit_id: Mapped[str] = mapped_column(String(80))
    unit_type: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(16))
    plan_version: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    participants_total: Mapped[int] = mapped_column(Integer, default=0)
    participants_male: Mapped[int] = mapped_column(Integer, default=0)
    participants_female: Mapped[int] = mapped_column(Integer, default=0)
    participants_under_16: Mapped[int] = mapped_column(Integer, default=0)
    participants_16_17: Mapped[int] = mapped_column(Integer, default=0)
    participants_adult: Mapped[int] = mapped_column(Integer, default=0)
    children_supported: Mapped[int] = mapped_column(Integer, default=0)
    households_visited: Mapped[int] = mapped_column(Integer, default=0)
    sites_inspected: Mapped[int] = mapped_column(Integer, default=0)
    violations_found: Mapped[int] = mapped_column(Integer, default=0)
    items_published: Mapped[int] = mapped_column(Integer, default=0)
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class GeneratedReport(Base):
    """One revision of a commune's plan-period report, as generated and published (`report.generated`).

    `summary` is the summary JSON of that moment: codes and counts by construction, nothing personal.
    Revisions are never changed; `checked_at` is the last time the scheduler found the numbers unchanged.
    """

    __tablename__ = "generated_report"
    # Several replicas may generate the same revision at once: the UNIQUE key lets exactly one row in.
    __table_args__ = (UniqueConstraint("org_unit", "period", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_unit: Mapped[str] = mapped_column(String(5))
    period: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime())
    due_date: Mapped[date] = mapped_column(Date)
    produced_at: Mapped[datetime] = mapped_column(UtcDateTime())
    on_time: Mapped[bool] = mapped_column(Boolean)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    incidents_total: Mapped[int] = mapped_column(Integer)
    children_total: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class TallyCell(Base):
    """A commune's month of facts: `version` goes up in the same transaction as every fact written for it.

    A fact of an incident counts in the cell of the incident's commune and month (its `local_date`).
    """

    __tablename__ = "tally_cell"

    commune_code: Mapped[str] = mapped_column(String(5), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # the first day
    version: Mapped[int] = mapped_column(Integer)


class TallyCache(Base):
    """A cell's tally (cells.Stored: counts and acknowledgement waits) as of a cell version: valid while the versions match.

    Pre-aggregation for summaries: a province's year reads 12 cells per commune instead of every fact.
    """

    __tablename__ = "tally_cache"

    commune_code: Mapped[str] = mapped_column(String(5), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ReportDocument(Base):
    """One version of a commune's plan-period report as an official document: its narrative and its sign-off.

    The figures are not copied: a version pins the generated revision (`revision`) whose summary it prints. A later
    revision of the figures after the document was sent makes a new version, never a change to a sent one.
    Status: draft -> submitted (cp_officer) -> approved (chairman or a deputy) -> sent (report.submitted).
    The narrative is the officer's own text about the commune's work; it holds no child's data.
    """

    __tablename__ = "report_document"
    __table_args__ = (UniqueConstraint("org_unit", "period", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_unit: Mapped[str] = mapped_column(String(5))
    period: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    number: Mapped[str | None] = mapped_column(String(32))
    narrative: Mapped[dict[str, Any]] = mapped_column(JSON)
    drafted_by: Mapped[str] = mapped_column(String(120))
    drafted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    submitted_by: Mapped[str | None] = mapped_column(String(120))
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    signer_name: Mapped[str | None] = mapped_column(String(200))
    signed_as: Mapped[str | None] = mapped_column(String(16))
    sent_by: Mapped[str | None] = mapped_column(String(120))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    on_time: Mapped[bool | None] = mapped_column(Boolean)


class ReportReminder(Base):
    """The marker of a `report.due` published: one row per commune, plan period and reminder (days before the due
    date), inserted in the transaction that stages the event, so a restart or a second scheduler never sends it twice."""

    __tablename__ = "report_reminder"
    __table_args__ = (UniqueConstraint("org_unit", "period", "days_before"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_unit: Mapped[str] = mapped_column(String(5))
    period: Mapped[str] = mapped_column(String(16))
    days_before: Mapped[int] = mapped_column(Integer)
    due: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())
