"""Reporting's HTTP models (contract.md, Reporting)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class PeriodRead(BaseModel):
    id: str
    kind: Literal["year", "half", "quarter", "month", "plan"]
    start: date = Field(description="first day (Vietnam's date)")
    end: date = Field(description="last day, inclusive (Vietnam's date)")
    due: date | None = Field(description="the report's due date (plan periods only)")


class HierarchyVersionRead(BaseModel):
    id: str
    name: str
    start: date = Field(description="first day of the period this version was used for")
    end: date = Field(description="last day, inclusive")
    communes: list[str]


class ResponseIndicators(BaseModel):
    assignments: int
    acknowledged: int
    acknowledged_within_deadline: int
    median_seconds_to_acknowledge: float | None = Field(description="null when nothing was acknowledged")
    overdue: int = Field(description="assignments routing flagged overdue (not acknowledged by due_at)")
    escalations: int = Field(description="escalations caused by this unit type's overdue assignments")


class Indicators(BaseModel):
    """Counts of the period's incidents and their children; every breakdown lists every code, 0 where none."""

    incidents_total: int
    children_total: int
    by_category: dict[str, int]
    by_urgency: dict[str, int]
    by_channel: dict[str, int]
    by_hamlet: dict[str, int] = Field(description="hamlet unit id -> incidents; 'unknown' where no hamlet was given")
    by_sex: dict[str, int]
    by_age_band: dict[str, int]
    children_by_category: dict[str, int] = Field(description="children affected, by form of abuse or harm")
    by_special_circumstance: dict[str, int] = Field(description="children per Law on Children Art. 10 group")
    children_in_special_circumstances: int
    injuries_and_drownings: int
    cases_open: int
    cases_closed: int
    response: dict[str, ResponseIndicators] = Field(description="per unit type, for the period's incidents")


class CommuneRow(BaseModel):
    code: str
    name: str
    indicators: Indicators


class Completeness(BaseModel):
    communes_expected: list[str]
    communes_with_data: list[str] = Field(description="communes with at least one incident in the period")


class SummaryRead(BaseModel):
    org_unit: str
    name: str
    level: str
    period: PeriodRead
    as_of: datetime
    hierarchy_version: list[HierarchyVersionRead] = Field(description="[] when the unit did not exist in the period")
    note: str | None = Field(None, description="why indicators are null, or which part of the period is covered")
    indicators: Indicators | None = Field(description="null: no data (the unit did not exist), distinct from zero")
    communes: list[CommuneRow] | None = Field(None, description="a row per commune, above commune level")
    completeness: Completeness | None = Field(None, description="above commune level")
