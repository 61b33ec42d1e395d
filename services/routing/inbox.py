"""A unit's inbox: its assignments, filtered and in the order a unit works them, each as the unit may see it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.cursor import InvalidCursor, decode_cursor, encode_cursor
from shared.enums import AssignmentStatus, Urgency
from shared.errors import NotFound

from . import disclosure
from .models import Assignment, RoutedIncident

URGENCY_RANK = {u.value: rank for rank, u in enumerate(Urgency)}

log = logging.getLogger("baove.routing")



def may_use_inbox(principal: Principal, unit_id: str) -> bool:
    return principal.is_admin or principal.unit_id == unit_id



@dataclass(frozen=True)
class InboxPosition:
    """Where a page ended, in the inbox order, and the clock the listing started with."""

    as_of: datetime
    overdue: int
    urgency: int
    due_at: datetime
    id: str



def _inbox_position(values: dict) -> InboxPosition:
    try:
        position = InboxPosition(
            as_of=datetime.fromisoformat(values["as_of"]),
            overdue=int(values["overdue"]),
            urgency=int(values["urgency"]),
            due_at=datetime.fromisoformat(values["due_at"]),
            id=str(values["id"]),
        )
    except (TypeError, ValueError):
        position = None
    if position is None or position.as_of.tzinfo is None or position.due_at.tzinfo is None:
        raise InvalidCursor()
    return position



@dataclass(frozen=True)
class SeenAssignment:
    """An assignment and its case as the assignment's unit may see them (domain.md 7: only what it needs)."""

    assignment: Assignment
    incident: RoutedIncident
    view: disclosure.View
    case: dict



def seen_by_unit(a: Assignment, incident: RoutedIncident) -> SeenAssignment:
    """The disclosure rule, applied to every assignment a unit is shown, whatever the entry point."""
    view = disclosure.view_of(a.role, a.unit_type)
    return SeenAssignment(a, incident, view, disclosure.disclosed(incident.case, view, incident.occurred_at or incident.received_at))



@dataclass
class InboxPage:
    rows: list[SeenAssignment]
    next_cursor: str | None



async def list_assignments(
    session: AsyncSession,
    unit_id: str,
    principal: Principal,
    *,
    now: datetime,
    statuses: Sequence[AssignmentStatus] = (),
    overdue: bool | None = None,
    urgencies: Sequence[Urgency] = (),
    limit: int = 50,
    cursor: str | None = None,
) -> InboxPage:
    """One unit's assignments, filtered: overdue first, then by urgency, due time and id (keyset pages)."""
    if not may_use_inbox(principal, unit_id):
        # Another unit's inbox answers as if it did not exist: NotFound reveals nothing.
        raise NotFound(f"no inbox {unit_id} for this token")
    after = _inbox_position(decode_cursor(cursor, as_of=str, overdue=int, urgency=int, due_at=str, id=str)) if cursor else None
    # Later pages order and filter by the first page's clock, so nothing moves between pages.
    as_of = after.as_of if after else now
    is_overdue = and_(Assignment.status == AssignmentStatus.pending.value, Assignment.due_at < as_of)
    overdue_rank = case((is_overdue, 0), else_=1)
    urgency = case(URGENCY_RANK, value=RoutedIncident.urgency, else_=len(URGENCY_RANK))
    stmt = (
        select(Assignment, RoutedIncident, overdue_rank, urgency)
        .join(RoutedIncident, RoutedIncident.incident_id == Assignment.incident_id)
        .where(Assignment.unit_id == unit_id)
    )
    if statuses:
        stmt = stmt.where(Assignment.status.in_([s.value for s in statuses]))
    if overdue is not None:
        stmt = stmt.where(is_overdue if overdue else not_(is_overdue))
    if urgencies:
        stmt = stmt.where(RoutedIncident.urgency.in_([u.value for u in urgencies]))
    if after:
        o, u, due, i = after.overdue, after.urgency, after.due_at, after.id
        stmt = stmt.where(
            or_(
                overdue_rank > o,
                and_(overdue_rank == o, urgency > u),
                and_(overdue_rank == o, urgency == u, Assignment.due_at > due),
                and_(overdue_rank == o, urgency == u, Assignment.due_at == due, Assignment.id > i),
            )
        )
    stmt = stmt.order_by(overdue_rank, urgency, Assignment.due_at, Assignment.id).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(
            {"as_of": as_of.isoformat(), "overdue": last[2], "urgency": last[3], "due_at": last[0].due_at.isoformat(), "id": last[0].id}
        )
    page = [seen_by_unit(a, incident) for a, incident, _, _ in rows]
    # Every read of a case is logged: who, and which incidents (domain.md section 7).
    log.info(
        "inbox read",
        extra={"by": principal.label, "unit_id": unit_id, "incident_ids": ",".join(sorted({seen.incident.incident_id for seen in page}))},
    )
    return InboxPage(page, next_cursor)
