"""An incident report worked out without I/O: the checks a commune's hierarchy makes, the facts and the event
it becomes, who may report and read."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from shared.auth import Principal
from shared.children import age_band, age_on
from shared.events import (
    ChildCase,
    ChildFacts,
    Consent,
    Envelope,
    IncidentCase,
    IncidentFacts,
    IncidentRecorded,
    IncidentReported,
    Reporter,
)
from shared.reference import Hierarchy

from .models import Incident
from .schemas import ChildIn, IncidentCreate

VN = timezone(timedelta(hours=7))
PRODUCER = "intake"
CHILD_CONSENT_AGE = 7  # domain.md 7: disclosure needs the consent of a child of 7 or more



def vn_date(moment: datetime) -> date:
    return moment.astimezone(VN).date()



def child_age(child: ChildIn, on: date) -> int | None:
    return age_on(child.birth_date, on) if child.birth_date is not None else child.age_years



def child_facts(child: ChildIn, on: date) -> ChildFacts:
    return ChildFacts(
        sex=child.sex,
        age_band=age_band(child.birth_date, child.age_years, on),
        special_circumstances=tuple(sorted(c.value for c in child.special_circumstances)),
    )



def check_commune(hierarchy: Hierarchy, body: IncidentCreate, received_at: datetime) -> list[dict]:
    """Errors (FastAPI's shape): no such commune on the incident's date, a child 18+, a child's consent where all are under 7."""
    errors = []
    day = vn_date(body.occurred_at or received_at)
    if hierarchy.commune_on(body.commune_code, day) is None:
        known = hierarchy.unit(body.commune_code)
        msg = (
            f"commune {body.commune_code} is not in the administrative hierarchy"
            if known is None
            else f"commune {body.commune_code} ({known.name}) did not exist on {day.isoformat()}"
        )
        errors.append({"loc": ["body", "commune_code"], "msg": msg, "type": "value_error"})
    for i, child in enumerate(body.children):
        if child.birth_date is not None and age_on(child.birth_date, day) >= 18:
            errors.append(
                {"loc": ["body", "children", i, "birth_date"], "msg": "18 or older on the incident date: not a child", "type": "value_error"}
            )
    ages = [child_age(child, day) for child in body.children]
    if body.consent.child is not None and all(age is not None and age < CHILD_CONSENT_AGE for age in ages):
        errors.append(
            {
                "loc": ["body", "consent", "child"],
                "msg": f"a child's consent is asked only of a child aged {CHILD_CONSENT_AGE} or more: every child here is younger; leave it null",
                "type": "value_error",
            }
        )
    return errors



def build_event(incident_id: str, body: IncidentCreate, principal: Principal, received_at: datetime) -> Envelope:
    day = vn_date(body.occurred_at or received_at)
    facts = IncidentFacts(
        commune_code=body.commune_code,
        hamlet=body.hamlet,
        category=body.category,
        urgency=body.urgency,
        channel=body.channel,
        occurred_at=body.occurred_at,
        received_at=received_at,
        children=tuple(child_facts(c, day) for c in body.children),
    )
    case = IncidentCase(
        description=body.description,
        children=tuple(
            ChildCase(
                full_name=c.full_name,
                sex=c.sex,
                birth_date=c.birth_date.isoformat() if c.birth_date else None,
                age_years=c.age_years,
                school=c.school,
                special_circumstances=tuple(s.value for s in c.special_circumstances),
            )
            for c in body.children
        ),
        reporter=Reporter(**body.reporter.model_dump()) if body.reporter else None,
        consent=Consent(**body.consent.model_dump()),
    )
    event = IncidentReported(incident_id=incident_id, reported_by=principal.label, facts=facts, case=case)
    return event.envelope(correlation_id=incident_id, producer=PRODUCER)


def facts_event(reported: Envelope) -> Envelope:
    """incident.recorded: the facts of an incident.reported without its case, for the consumers that keep no personal data."""
    payload = reported.payload
    event = IncidentRecorded(incident_id=payload["incident_id"], facts=IncidentFacts.model_validate(payload["facts"]))
    return event.envelope(correlation_id=reported.correlation_id, producer=PRODUCER, emitted_at=reported.emitted_at)



def may_report(principal: Principal, commune_code: str) -> bool:
    return principal.is_admin or (principal.kind == "unit" and principal.commune_code == commune_code)



def may_read(principal: Principal, incident: Incident) -> bool:
    """The case file: admins, the unit that reported, the commune's cp_officer and its chairman, who directs the case
    process, approves its plan and is told of its missed deadlines (domain.md sections 3 and 7)."""
    chairman = principal.commune_code == incident.commune_code and principal.unit_type == "chairman"
    return principal.is_admin or principal.label == incident.reported_by or principal.is_cp_officer_of(incident.commune_code) or chairman
