"""An erased incident (incident.erased from intake): routing blanks the case, the notes and the events it still keeps."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.children import erased_case
from shared.events import Envelope, Event, IncidentErased
from shared.outbox import forget_published

from .disclosure import VN
from .models import Assignment, AssignmentChange, IncidentChange, ProcessRecord, RoutedIncident, outbox_message

log = logging.getLogger("baove.routing")

# Where routing keeps personal data: vacuumed on PostgreSQL after an erasure.
PERSONAL_TABLES = ("routed_incident", "incident_change", "assignment", "assignment_change", "process_record", "outbox_message")
# The free-text fields of the process's records (Mẫu 02: the harm, the measures, who assessed).
# Free text of the process's forms (schemas.py): may name the child; blanked wherever it appears, in plan tasks too.
FREE_TEXT = frozenset(
    {
        "harm", "measures_taken", "assessed_by", "measures", "taken_by", "placement", "extension_reason", "participants",
        "needs", "findings", "goals", "task", "drafted_by", "notes", "reviewed_by",
    }
)


def blank_free_text(value):
    """A form's data with its free text blanked, its structure (levels, flags, dates, units) kept."""
    if isinstance(value, dict):
        return {k: ("" if k in FREE_TEXT and isinstance(v, str) else blank_free_text(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [blank_free_text(v) for v in value]
    return value



async def handle_erased(session: AsyncSession, event: Event, envelope: Envelope) -> list[Envelope]:
    """Blank the case (description, children's names, birth dates and schools, the reporter), the closing and reopening
    notes and the assignments' notes; keep the facts, the assignments and their history. Idempotent."""
    if not isinstance(event, IncidentErased):
        return []
    incident = await session.get(RoutedIncident, event.incident_id)
    if incident is None:
        # Never routed here (its report is still queued or dead-lettered: the dead letter is dropped after commit).
        log.info("erased incident not routed here", extra={"incident_id": event.incident_id})
        return []
    if not incident.case.get("erased"):
        incident.case = erased_case(incident.case, (incident.occurred_at or incident.received_at).astimezone(VN).date())
    await session.execute(update(IncidentChange).where(IncidentChange.incident_id == event.incident_id).values(note=""))
    await session.execute(update(Assignment).where(Assignment.incident_id == event.incident_id).values(note=None, task=None))
    assignments = select(Assignment.id).where(Assignment.incident_id == event.incident_id).scalar_subquery()
    await session.execute(update(AssignmentChange).where(AssignmentChange.assignment_id.in_(assignments)).values(note=None))
    # The process's records keep their structure (levels, flags, dates); their free text may name the child.
    for record in (await session.execute(select(ProcessRecord).where(ProcessRecord.incident_id == event.incident_id))).scalars():
        record.data = blank_free_text(record.data)
    await forget_published(session, outbox_message, event.incident_id)
    log.info("erased incident blanked", extra={"incident_id": event.incident_id, "cause": event.cause})
    return []
