"""Routing's incident.reported subscriber, in memory (faststream's TestRabbitBroker) over a SQLite file."""

from __future__ import annotations

import json

import pytest
from faststream.rabbit import TestRabbitBroker
from pydantic import SecretStr
from sqlalchemy import func, select

from services.routing.app import create_runtime
from services.routing.models import Assignment, AssignmentChange, RoutedIncident, outbox_message
from services.routing.rules import RulesError
from shared import topology
from shared.events import IncidentRouted
from shared.settings import CommonSettings, RoutingSettings
from tests.routing_support import HAMLET, SCHOOL, reported, route, routing_runtime


@pytest.fixture
async def routing(tmp_path):
    runtime = await routing_runtime(tmp_path)
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def publish(broker, envelope):
    # In memory there are no exchange bindings (they are declared apart): deliver to the queue itself.
    await broker.publish(
        envelope.model_dump_json().encode(), queue=topology.ROUTING_INCIDENTS.name, message_id=str(envelope.event_id)
    )


async def stored(runtime, incident_id):
    async with runtime.sessionmaker() as session:
        assignments = (await session.execute(select(Assignment).where(Assignment.incident_id == incident_id))).scalars().all()
        changes = (await session.execute(select(func.count()).select_from(AssignmentChange))).scalar_one()
        outbox = (await session.execute(select(outbox_message))).all()
    return assignments, changes, outbox


class TestRoutingAReportedIncident:
    async def test_the_assignments_and_their_event_are_stored_once_despite_redelivery(self, routing):
        event = reported(category="sexual_abuse", urgency="emergency")
        envelope = event.envelope(correlation_id=event.incident_id, producer="intake")
        republished = event.envelope(correlation_id=event.incident_id, producer="intake")  # same incident, new event id
        async with TestRabbitBroker(routing.broker) as broker:
            await publish(broker, envelope)
            await publish(broker, envelope)
            await publish(broker, republished)
        assignments, changes, outbox = await stored(routing, event.incident_id)
        assert {(a.unit_id, a.role) for a in assignments} == {
            ("25349.police", "lead"),
            ("25349.health", "support"),
            (SCHOOL, "support"),
            ("25349.cp_officer", "support"),
            (HAMLET, "support"),
            ("25349.chairman", "support"),
        }
        assert all(a.status == "pending" and a.origin == "routing" for a in assignments)
        assert changes == len(assignments)
        [row] = outbox
        assert row.event_type == "incident.routed" and row.correlation_id == event.incident_id
        routed = IncidentRouted.model_validate(json.loads(row.body)["payload"])
        assert {a.assignment_id for a in routed.assignments} == {a.id for a in assignments}
        assert routed.rules_version == "2025.1"

    async def test_the_case_is_kept_for_the_inbox_without_an_anonymous_reporters_identity(self, routing):
        event = reported(anonymous=True)
        async with TestRabbitBroker(routing.broker) as broker:
            await publish(broker, event.envelope(correlation_id=event.incident_id, producer="intake"))
        async with routing.sessionmaker() as session:
            incident = await session.get(RoutedIncident, event.incident_id)
        assert incident.case["reporter"] == {"name": None, "phone": None, "relation": "neighbour", "anonymous": True}
        assert incident.case["children"][0]["full_name"] == event.case.children[0].full_name
        assert incident.category == "sexual_abuse" and incident.received_at == event.facts.received_at


class TestHandleReported:
    async def test_other_events_are_ignored(self, routing):
        other = IncidentRouted(
            incident_id="x", commune_code="25349", category="other", urgency="low", rules_version="v", assignments=()
        )
        assert await route(routing, other) == []

    async def test_a_school_outside_the_commune_is_not_reached_even_when_registered(self, routing):
        """Another commune's school is not the incident's commune's to involve (rules: other_communes)."""
        event = reported(category="school_violence", school="25348.school.thcs-minh-duc")
        [envelope] = await route(routing, event)
        routed = IncidentRouted.model_validate(envelope.payload)
        assert "25348.school.thcs-minh-duc" not in [a.unit_id for a in routed.assignments]
        [lead] = [a for a in routed.assignments if a.role == "lead"]
        assert lead.unit_id == "25349.cp_officer" and "another commune" in lead.reason
        assert envelope.event_type == "incident.routed" and envelope.producer == "routing"

    async def test_an_unregistered_school_falls_back_to_the_cp_officer_and_the_event_says_why(self, routing):
        event = reported(category="school_violence", school="25349.school.closed-long-ago")
        [envelope] = await route(routing, event)
        routed = IncidentRouted.model_validate(envelope.payload)
        [lead] = [a for a in routed.assignments if a.role == "lead"]
        assert lead.unit_id == "25349.cp_officer" and "closed-long-ago" in lead.reason
        assert any("falls back" in note for note in routed.notes)


class TestTheServiceStarts:
    def test_with_a_rules_file_it_does_not_understand_it_refuses_to_start(self, tmp_path):
        bad = tmp_path / "rules.yaml"
        bad.write_text('version: "x"\nack_deadlines: {}\nalways: {}\ncategories: {}\n', encoding="utf-8")
        settings = RoutingSettings(
            rules_file=bad, database_url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"), common=CommonSettings(data_dir=tmp_path)
        )
        with pytest.raises(RulesError, match="missing urgency 'emergency'"):
            create_runtime(settings)

