"""Generated reports (domain.md section 5): which are due, when a new revision is needed, and timeliness.

Pure: no clock, no I/O. The scheduler (revisions.py) reads the database, asks these functions what
to do, and writes. A commune's report for a plan period is produced when the period's data window
has closed (its last day is over in Vietnam); events that arrive later make a new revision.

"Produced" means a revision exists: the automatic generation counts, since the report a district
reads is exactly the generated one. "On time" means the first revision was produced on or before
the due date (Vietnam's date); later revisions correct the numbers but do not change timeliness.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from shared.reference import Hierarchy

from .periods import Period, PlanConfig, local_date, plan_period

# Summary keys that describe the moment or the report, not the numbers: a revision is about the rest.
NOT_NUMBERS = ("as_of", "revision", "report")


@dataclass(frozen=True)
class DueReport:
    commune: str
    period: Period


@dataclass(frozen=True)
class LatestRevision:
    revision: int
    as_of: datetime
    checked_at: datetime


@dataclass(frozen=True)
class DayChange:
    """The newest ingestion time of any fact of a commune's incidents dated `day`."""

    commune: str
    day: date
    ingested_at: datetime


@dataclass(frozen=True)
class ReportStatus:
    """What the district needs to know of one commune's report for a plan period."""

    commune: str
    revisions: int  # 0: not produced
    first_produced_at: datetime | None
    latest_produced_at: datetime | None
    latest_as_of: datetime | None
    due: date

    @property
    def produced(self) -> bool:
        return self.revisions > 0

    @property
    def on_time(self) -> bool | None:
        """None while not produced: `produced` says that it is missing."""
        if self.first_produced_at is None:
            return None
        return on_time(self.first_produced_at, self.due)


Step = Literal["first", "check", "none"]


def closed_plan_periods(plans: PlanConfig, today: date, first_day: date) -> list[Period]:
    """Plan periods whose data window is over by `today` and holds days from `first_day` on, oldest first."""
    periods = [
        period
        for year in range(first_day.year, today.year + 1)
        for report in plans.reports
        for period in (plan_period(year, report),)
        if first_day < period.end <= today
    ]
    return sorted(periods, key=lambda p: (p.end, p.start, p.id))


def communes_existing(hierarchy: Hierarchy, start: date, end: date) -> list[str]:
    """Every commune that existed on some day of [start, end), in any hierarchy version."""
    found: set[str] = set()
    for version in hierarchy.versions:
        version_end = version.end_exclusive()
        if version.valid_from < end and (version_end is None or start < version_end):
            found |= {u.code for u in version.units.values() if u.level == "commune"}
    return sorted(found)


def due_reports(hierarchy: Hierarchy, plans: PlanConfig, today: date, first_day: date | None) -> list[DueReport]:
    """A report per commune and closed plan period; none before the read model holds any data."""
    if first_day is None:
        return []
    return [
        DueReport(commune, period)
        for period in closed_plan_periods(plans, today, first_day)
        for commune in communes_existing(hierarchy, period.start, period.end)
    ]


def last_change(changes: Iterable[DayChange], commune: str, period: Period) -> datetime | None:
    """The newest ingestion among a commune's changed days inside the period."""
    times = [c.ingested_at for c in changes if c.commune == commune and period.contains(c.day)]
    return max(times, default=None)


def next_step(latest: LatestRevision | None, changed_at: datetime | None, settle: timedelta) -> Step:
    """first: no revision yet; check: facts came in since the last check (within `settle` of it); else none.

    `settle` covers a write that took its time to commit: a fact stamped just before a check may not
    have been visible to it, so facts stamped up to `settle` before the last check are looked at again.
    """
    if latest is None:
        return "first"
    if changed_at is not None and changed_at > latest.checked_at - settle:
        return "check"
    return "none"


def on_time(produced_at: datetime, due: date) -> bool:
    """Produced on or before the due date, in Vietnam's time."""
    return local_date(produced_at) <= due


def as_json(value: Any) -> Any:
    """A summary as stored: JSON types only (dates and instants as ISO 8601)."""
    return json.loads(json.dumps(value, default=_iso, ensure_ascii=False))


def _iso(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def numbers(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a summary a revision stands for: everything but its time and report status."""
    return {k: v for k, v in as_json(dict(summary)).items() if k not in NOT_NUMBERS}


def same_numbers(stored: Mapping[str, Any], fresh: Mapping[str, Any]) -> bool:
    return numbers(stored) == numbers(fresh)


def status_read(status: ReportStatus, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": status.commune,
        "produced": status.produced,
        "revision": status.revisions or None,
        "first_produced_at": status.first_produced_at,
        "on_time": status.on_time,
        "latest_produced_at": status.latest_produced_at,
        "latest_as_of": status.latest_as_of,
        "due": status.due,
    }
    if name is not None:
        out["name"] = name
    return out


def attach(summary: dict[str, Any], statuses: Mapping[str, ReportStatus]) -> dict[str, Any]:
    """Add the generated reports' status to a plan-period summary: the commune's own, or one row per commune."""
    if summary["level"] == "commune":
        status = statuses.get(summary["org_unit"])
        summary["revision"] = status.revisions or None if status else None
        summary["report"] = status_read(status) if status else None
        return summary
    completeness = summary.get("completeness")
    if completeness is None:
        return summary
    names = {row["code"]: row["name"] for row in summary.get("communes") or []}
    rows = [status_read(statuses[c], names.get(c)) for c in completeness["communes_expected"] if c in statuses]
    completeness["reports"] = rows
    completeness["reports_produced"] = sum(1 for r in rows if r["produced"])
    completeness["reports_on_time"] = sum(1 for r in rows if r["on_time"])
    return summary
