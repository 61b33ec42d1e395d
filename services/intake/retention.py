"""The retention policy and what an erasure keeps, without I/O (docs/privacy.md says which law each period follows).

A case file (intake's incident and timeline, routing's case, notes and changes) is kept while the case is open
and for `closed_case_days` after it was last closed; then its personal data is blanked, as on an erasure
requested by an admin. The anonymous facts (category, dates, hamlet code, each child's sex and age band) stay.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

# Free text on a timeline entry (the review's outcome, from incident.closed): the writer may have named the child.
FREE_TEXT = ("outcome",)


class ClosedCase(NamedTuple):
    incident_id: str
    status: str
    closed_at: datetime | None  # the last time it was closed; None if never



@dataclass(frozen=True)
class RetentionPolicy:
    closed_case_days: int

    def cutoff(self, now: datetime) -> datetime:
        """Cases closed at or before this moment are due."""
        return now - timedelta(days=self.closed_case_days)

    def due(self, cases: Iterable[ClosedCase], now: datetime) -> list[str]:
        """The ids of the cases whose personal data must go now, the longest closed first. An open, reopened or
        already erased case is never due: the duty of care comes before the end of storage."""
        cutoff = self.cutoff(now)
        due = [c for c in cases if c.status == "closed" and c.closed_at is not None and c.closed_at <= cutoff]
        return [c.incident_id for c in sorted(due, key=lambda c: (c.closed_at, c.incident_id))]



def erased_detail(detail: dict) -> dict:
    """A timeline entry's detail without free text."""
    return {k: v for k, v in detail.items() if k not in FREE_TEXT}



def redacted_reported(body: str) -> str:
    """An unpublished incident.reported envelope (outbox body) with its case blanked but still valid for its consumers."""
    envelope = json.loads(body)
    case = envelope["payload"]["case"]
    case.update(
        description="",
        reporter=None,
        children=[{"sex": c["sex"], "special_circumstances": c.get("special_circumstances", [])} for c in case["children"]],
    )
    return json.dumps(envelope)
