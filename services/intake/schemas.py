"""Intake's HTTP models (contract.md, Intake)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.auth import parse_unit_id
from shared.enums import Category, Channel, Sex, SpecialCircumstance, UnitType, Urgency
from shared.plans import ActivityCounts

PHONE = re.compile(r"^\+?[0-9][0-9 .-]{5,19}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChildIn(Strict):
    full_name: str | None = Field(None, max_length=200)
    sex: Sex
    birth_date: date | None = None
    age_years: int | None = Field(None, ge=0, le=17, description="estimated age when the birth date is unknown")
    school: str | None = Field(None, description="the school's unit id, e.g. 25349.school.th-minh-tam-a")
    special_circumstances: list[SpecialCircumstance] = Field(default_factory=list, max_length=14)

    @field_validator("birth_date")
    @classmethod
    def _not_future(cls, value: date | None) -> date | None:
        if value is not None and value > date.today() + timedelta(days=1):
            raise ValueError("birth date is in the future")
        return value

    @field_validator("school")
    @classmethod
    def _school_unit(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _, unit_type, _ = parse_unit_id(value)
        if unit_type != UnitType.school:
            raise ValueError(f"{value!r} is not a school unit id (COMMUNE.school.LOCAL_ID)")
        return value


class ReporterIn(Strict):
    name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=20)
    relation: str | None = Field(None, max_length=100)
    anonymous: bool = Field(False, description="true: the reporter's name and phone are dropped on arrival, never stored or published")

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not PHONE.match(value):
            raise ValueError("phone must be digits, optionally with a leading + and spaces, dots or dashes")
        return value

    @model_validator(mode="after")
    def _forget_an_anonymous_reporter(self) -> ReporterIn:
        # Dropped here, before anything is stored or published, so no path (row, event, answer) can keep them.
        if self.anonymous:
            self.name = self.phone = None
        return self


class ConsentIn(Strict):
    """Consent to disclose the case beyond the units that must act (domain.md 7); null: not asked."""

    child: bool | None = Field(None, description="the child's own consent: only for a child aged 7 or more")
    guardian: bool | None = Field(None, description="the parent's or guardian's consent")


class IncidentCreate(Strict):
    report_id: uuid.UUID | None = Field(None, description="client UUID: a repeat with the same id returns the same incident")
    commune_code: str = Field(pattern=r"^\d{5}$", description="the commune where it happened (5-digit code)")
    hamlet: str | None = Field(None, description="the hamlet's unit id, e.g. 25349.hamlet.ap-2")
    category: Category
    urgency: Urgency
    channel: Channel
    occurred_at: AwareDatetime | None = Field(None, description="ISO 8601 with an offset")
    description: str = Field(min_length=1, max_length=4000)
    children: list[ChildIn] = Field(min_length=1, max_length=50)
    reporter: ReporterIn | None = None
    consent: ConsentIn = Field(default_factory=ConsentIn)

    @field_validator("occurred_at")
    @classmethod
    def _not_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + timedelta(minutes=10):
            raise ValueError("occurred_at is in the future")
        return value

    @model_validator(mode="after")
    def _hamlet_of_commune(self) -> IncidentCreate:
        if self.hamlet is not None:
            commune, unit_type, _ = parse_unit_id(self.hamlet)
            if unit_type != UnitType.hamlet or commune != self.commune_code:
                raise ValueError(f"hamlet must be a hamlet unit id of commune {self.commune_code} ({self.commune_code}.hamlet.LOCAL_ID)")
        return self


class IncidentAccepted(BaseModel):
    incident_id: str
    status: str


class TimelineEntryRead(BaseModel):
    at: datetime
    kind: str
    principal: str
    detail: dict[str, Any]


class IncidentRead(BaseModel):
    incident_id: str
    report_id: str | None
    commune_code: str
    hamlet: str | None
    category: Category
    urgency: Urgency
    channel: Channel
    occurred_at: datetime | None
    received_at: datetime
    status: str
    reported_by: str
    description: str
    children: list[dict[str, Any]]
    reporter: dict[str, Any] | None
    consent: ConsentIn
    timeline: list[TimelineEntryRead]


class AuditEntryRead(BaseModel):
    at: datetime
    principal: str
    action: str = Field(description="read, or a people event: sign_in, sign_in_failed, lockout, sign_out, user_added, ...")
    incident_id: str | None
    endpoint: str
    service: str
    username: str | None = Field(description="the person (for people events: the person the event is about)")
    token_id: str | None
    token_name: str | None = Field(description="a machine token's name")
    detail: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryRead]
    next_cursor: str | None


class ErasureCreate(BaseModel):
    reason: str = Field(
        min_length=3, max_length=300, description="why (kept in the audit): a request's reference, never the child's name"
    )


class ErasureRead(BaseModel):
    incident_id: str
    status: str
    erased_at: datetime
    already_erased: bool = Field(description="it was erased before: nothing was changed again")


class SubjectAccess(BaseModel):
    incident: IncidentRead = Field(description="the case file and its timeline as intake holds them")
    accesses: list[AuditEntryRead] = Field(description="who read or changed this incident's record, newest first")
    held_elsewhere: dict[str, str] = Field(description="what the other services hold about it (no personal data in reporting)")


class ActivityChange(Strict):
    """What an activity says; a correction (PUT) sends it whole again."""

    task_id: str = Field(max_length=16, description="the plan's task, e.g. IV.7")
    kind: str = Field(max_length=32, description="an activity kind the task implies, e.g. communication")
    held_on: date = Field(description="the day it took place (Vietnam's date); its year chooses the plan")
    counts: ActivityCounts = Field(default_factory=ActivityCounts)
    note: str | None = Field(
        None, max_length=500, description="what was done, at most 500 characters; no personal data (numbers of 7+ digits and e-mails are refused)"
    )

    @field_validator("held_on")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > (datetime.now(UTC) + timedelta(hours=7)).date():
            raise ValueError("held_on is in the future")
        return value


class ActivityCreate(ActivityChange):
    unit_id: str = Field(max_length=80, description="the unit that did it: the caller's own (a cp_officer may name any unit of the commune)")

    @field_validator("unit_id")
    @classmethod
    def _unit(cls, value: str) -> str:
        parse_unit_id(value)
        return value


class ActivityRead(BaseModel):
    activity_id: str
    commune_code: str
    unit_id: str
    unit_type: str
    task_id: str
    plan_version: str
    kind: str
    held_on: date
    counts: ActivityCounts
    note: str | None
    status: str = Field(description="recorded | withdrawn")
    revision: int
    recorded_by: str = Field(description="the principal that recorded it (a unit, never a person's name)")
    yours: bool = Field(description="the caller is its author: may correct or withdraw it")
    recorded_at: datetime
    changed_at: datetime


class ActivityPage(BaseModel):
    items: list[ActivityRead]
    next_cursor: str | None
