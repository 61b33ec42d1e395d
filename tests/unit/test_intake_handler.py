"""Intake's timeline subscriber, in memory (faststream's TestRabbitBroker) over a SQLite file."""

from datetime import UTC, datetime, timedelta

import pytest
from faststream.rabbit import TestRabbitBroker
from sqlalchemy import select

from services.intake.models import Incident, TimelineEntry
from services.intake.service import read_incident
from shared import topology
from shared.auth import Principal
from shared.events import (
    AssignmentAcknowledged,
    AssignmentOverdue,
    Envelope,
    IncidentClosed,
    IncidentEscalated,
    IncidentReopened,
    IncidentRouted,
    RoutedAssignment,
)
from tests.support import make_runtime, migrate


@pytest.fixture
async def intake(tmp_path):
    runtime = make_runtime("intake", tmp_path)
    await migrate(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            Incident(
                id="inc-1", reported_by="25349.police", commune_code="25349", category="violence", urgency="high",
                channel="phone", received_at=datetime(2025, 3, 2, tzinfo=UTC), status="received",
                description="d", children=[{"sex": "female"}],
            )
        )
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def publish(broker, envelope):
    # In memory there are no exchange bindings (they are declared apart): deliver to the queue itself.
    await broker.publish(
        envelope.model_dump_json().encode(), queue=topology.INTAKE_TIMELINE.name, message_id=str(envelope.event_id),
        user_id="guest",  # the producer's broker user (one user in development)
    )


async def timeline(runtime):
    async with runtime.sessionmaker() as session:
        return (await session.execute(select(TimelineEntry).order_by(TimelineEntry.id))).scalars().all()


class TestTimelineHandler:
    async def test_routing_and_acknowledgement_are_recorded_and_the_status_moves(self, intake):
        at = datetime(2025, 3, 2, 1, tzinfo=UTC)
        routed = IncidentRouted(
            incident_id="inc-1", commune_code="25349", category="violence", urgency="high", rules_version="v1", assignments=()
        ).envelope(correlation_id="inc-1", producer="routing")
        acked = AssignmentAcknowledged(
            incident_id="inc-1", assignment_id="a1", unit_id="25349.police", unit_type="police", role="support",
            commune_code="25349", by="25349.police", at=at, due_at=at, assigned_at=at,
        ).envelope(correlation_id="inc-1", producer="routing")
        async with TestRabbitBroker(intake.broker) as broker:
            await publish(broker, routed)
            await publish(broker, acked)
            await publish(broker, routed)  # a redelivery
        kinds = [(e.kind, e.principal) for e in await timeline(intake)]
        assert kinds == [("routed", "routing"), ("assignment.acknowledged", "25349.police")]
        async with intake.sessionmaker() as session:
            assert (await session.get(Incident, "inc-1")).status == "routed"

    async def test_an_event_of_an_unknown_incident_is_ignored(self, intake):
        routed = IncidentRouted(
            incident_id="elsewhere", commune_code="25349", category="violence", urgency="high", rules_version="v1", assignments=()
        ).envelope(correlation_id="elsewhere", producer="routing")
        async with TestRabbitBroker(intake.broker) as broker:
            await publish(broker, routed)
        assert await timeline(intake) == []


T0 = datetime(2025, 3, 2, 1, tzinfo=UTC)
CP_OFFICER = Principal("unit", "25349.cp_officer", "t")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def routed(rules_version: str, minutes: int, *units: tuple[str, str, str]):
    assignments = tuple(
        RoutedAssignment(assignment_id=f"a-{unit}", unit_id=unit, unit_type=unit.split(".")[1], role=role, rule=rule, reason="r", due_at=at(60))
        for unit, role, rule in units
    )
    event = IncidentRouted(
        incident_id="inc-1", commune_code="25349", category="violence", urgency="high", rules_version=rules_version, assignments=assignments
    )
    return event.envelope(correlation_id="inc-1", producer="routing", emitted_at=at(minutes))


def assignment_fields(unit: str, minutes: int) -> dict:
    return dict(
        incident_id="inc-1", assignment_id=f"a-{unit}", unit_id=unit, unit_type=unit.split(".")[1], role="lead",
        commune_code="25349", at=at(minutes),
    )


class TestTheTimelineOfACase:
    async def test_escalation_closing_and_reopening_are_listed_in_time_and_causal_order_with_their_principals(self, intake):
        events = [
            routed("2025.1", 1, ("25349.police", "lead", "category.violence.lead"), ("25349.health", "support", "category.violence.support.health"),
                   ("25349.womens_union", "support", "category.violence.support.womens_union")),
            # One instant in routing, arriving in another order (a redelivery after a crash can do that).
            routed("escalation", 62, ("25349.cp_officer", "support", "escalation.overdue")),
            IncidentEscalated(incident_id="inc-1", commune_code="25349", overdue_assignment_id="a-25349.police",
                              escalated_to=("25349.cp_officer", "25349.chairman"), at=at(62)),
            AssignmentOverdue(**assignment_fields("25349.police", 62), by="routing", due_at=at(60)),
            IncidentClosed(incident_id="inc-1", commune_code="25349", risk_level="low", outcome="safe with family", by="25349.cp_officer", at=at(300)),
            IncidentReopened(incident_id="inc-1", commune_code="25349", by="admin", at=at(400)),
        ]
        # An acknowledgement that arrives last but happened before the escalation still lists in its place.
        late_ack = AssignmentAcknowledged(**assignment_fields("25349.health", 30), by="25349.health", due_at=at(60), assigned_at=at(1))
        async with TestRabbitBroker(intake.broker) as broker:
            for event in [*events, late_ack]:
                await publish(broker, event if isinstance(event, Envelope) else event.envelope(correlation_id="inc-1", producer="routing"))
        async with intake.sessionmaker() as session:
            incident, entries = await read_incident(session, "inc-1", CP_OFFICER)
        assert [(e.kind, e.principal) for e in entries] == [
            ("routed", "routing"),
            ("assignment.acknowledged", "25349.health"),
            ("assignment.overdue", "routing"),
            ("escalated", "routing"),
            ("routed", "routing"),
            ("closed", "25349.cp_officer"),
            ("reopened", "admin"),
        ]
        assert [e.at for e in entries] == sorted(e.at for e in entries)
        decision = entries[0].detail
        assert decision["rules_version"] == "2025.1"
        assert decision["rules"] == ["category.violence.lead", "category.violence.support.health", "category.violence.support.womens_union"]
        assert entries[3].detail == {"to": ["25349.cp_officer", "25349.chairman"], "overdue_assignment_id": "a-25349.police"}
        assert entries[4].detail["rules_version"] == "escalation" and entries[4].detail["rules"] == ["escalation.overdue"]
        assert entries[5].detail == {"risk_level": "low", "outcome": "safe with family"}
        assert incident.status == "reopened"
