"""Intake's timeline subscriber, in memory (faststream's TestRabbitBroker) over a SQLite file."""

from datetime import datetime, timezone

import pytest
from faststream.rabbit import TestRabbitBroker
from sqlalchemy import select

from services.intake.models import Incident, TimelineEntry
from shared import topology
from shared.events import AssignmentAcknowledged, IncidentRouted
from tests.support import make_runtime, migrate

pytestmark = pytest.mark.unit


@pytest.fixture
async def intake(tmp_path):
    runtime = make_runtime("intake", tmp_path)
    await migrate(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            Incident(
                id="inc-1", reported_by="25349.police", commune_code="25349", category="violence", urgency="high",
                channel="phone", received_at=datetime(2025, 3, 2, tzinfo=timezone.utc), status="received",
                description="d", children=[{"sex": "female"}],
            )
        )
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def publish(broker, envelope):
    # In memory there are no exchange bindings (they are declared apart): deliver to the queue itself.
    await broker.publish(
        envelope.model_dump_json().encode(), queue=topology.INTAKE_TIMELINE.name, message_id=str(envelope.event_id)
    )


async def timeline(runtime):
    async with runtime.sessionmaker() as session:
        return (await session.execute(select(TimelineEntry).order_by(TimelineEntry.id))).scalars().all()


class TestTimelineHandler:
    async def test_routing_and_acknowledgement_are_recorded_and_the_status_moves(self, intake):
        at = datetime(2025, 3, 2, 1, tzinfo=timezone.utc)
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
