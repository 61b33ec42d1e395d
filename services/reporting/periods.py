"""Report periods (domain.md section 5): calendar and plan period ids, their windows in Vietnam's dates.

Pure: no clock, no I/O. A window is [start, end) of Vietnam's calendar dates (UTC+7); the
helpers turn a date into the UTC instant of its local midnight and an instant into its local date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Literal

# Vietnam keeps UTC+7 all year (no daylight saving), so a fixed offset is exact.
VN = timezone(timedelta(hours=7), "ICT")

PeriodKind = Literal["year", "half", "quarter", "month", "plan"]

MIN_YEAR, MAX_YEAR = 1900, 9998


@dataclass(frozen=True)
class PlanReport:
    """A report the plan asks for: due on a day of the due month, covering the months just before it."""

    suffix: str
    due_month: int
    due_day: int
    months: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d{1,2}M", self.suffix):
            raise ValueError(f"plan report suffix {self.suffix!r} must look like 6M or 12M")
        if not 1 <= self.months <= 24:
            raise ValueError(f"plan report {self.suffix}: months must be 1..24, not {self.months}")
        # A leap year accepts every real (month, day), 29 February included.
        date(2000, self.due_month, self.due_day)


@dataclass(frozen=True)
class PlanConfig:
    """The plan's periodic reports; defaults from the seed: 6-month report by 10 May, annual by 10 November."""

    reports: tuple[PlanReport, ...] = (
        PlanReport("6M", due_month=5, due_day=10, months=6),
        PlanReport("12M", due_month=11, due_day=10, months=12),
    )

    def report(self, suffix: str) -> PlanReport | None:
        return next((r for r in self.reports if r.suffix == suffix), None)


DEFAULT_PLANS = PlanConfig()


@dataclass(frozen=True)
class Period:
    id: str
    kind: PeriodKind
    start: date  # first day, Vietnam's date
    end: date  # the day after the last (exclusive)
    due: date | None = None  # plan periods only

    @property
    def last_day(self) -> date:
        """The inclusive end date, as people write it."""
        return self.end - timedelta(days=1)

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    def utc_window(self) -> tuple[datetime, datetime]:
        """[start, end) as UTC instants."""
        return local_midnight_utc(self.start), local_midnight_utc(self.end)


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (the bus and the database speak UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def local_date(moment: datetime) -> date:
    """Vietnam's calendar date of an instant (a naive one is taken as UTC)."""
    return as_utc(moment).astimezone(VN).date()


def local_midnight_utc(day: date) -> datetime:
    """The UTC instant at which `day` begins in Vietnam."""
    return datetime.combine(day, time(0), VN).astimezone(UTC)


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after (or before) `day`'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def _calendar(year: int, kind: PeriodKind, first_month: int, months: int, period_id: str) -> Period:
    start = date(year, first_month, 1)
    return Period(period_id, kind, start, add_months(start, months))


def plan_period(year: int, report: PlanReport) -> Period:
    """The plan report due in `year`, covering the `months` months before its due month."""
    due = date(year, report.due_month, report.due_day)
    end = date(year, report.due_month, 1)
    return Period(f"{year}-{report.suffix}", "plan", add_months(end, -report.months), end, due)


PERIOD_FORMS = "YYYY, YYYYS1-2, YYYYQ1-4, YYYYMM or a plan period YYYY-<suffix>"
_ID = re.compile(r"^(?P<year>\d{4})(?:(?P<half>S[12])|(?P<quarter>Q[1-4])|(?P<month>\d{2})|-(?P<plan>\d{1,2}M))?$")


def parse_period(text: str, plans: PlanConfig = DEFAULT_PLANS) -> Period:
    """The period a period id names; ValueError saying what is wrong."""
    period_id = text.strip().upper()
    m = _ID.match(period_id)
    if not m:
        raise ValueError(f"period {text!r} is not one of {PERIOD_FORMS} (e.g. 2025, 2025S1, 2025Q2, 202505, 2025-6M)")
    year = int(m["year"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"period {text!r}: year must be between {MIN_YEAR} and {MAX_YEAR}")
    if m["half"]:
        return _calendar(year, "half", 1 if m["half"] == "S1" else 7, 6, period_id)
    if m["quarter"]:
        return _calendar(year, "quarter", 3 * int(m["quarter"][1]) - 2, 3, period_id)
    if m["month"]:
        month = int(m["month"])
        if not 1 <= month <= 12:
            raise ValueError(f"period {text!r}: month {m['month']} is not 01..12")
        return _calendar(year, "month", month, 1, period_id)
    if m["plan"]:
        report = plans.report(m["plan"])
        if report is None:
            known = ", ".join(f"{year}-{r.suffix}" for r in plans.reports)
            raise ValueError(f"period {text!r}: no plan report {m['plan']!r}; known: {known}")
        return plan_period(year, report)
    return _calendar(year, "year", 1, 12, period_id)
