"""Reporting's read-model subscriber, in memory (faststream's TestRabbitBroker) over a SQLite file."""

from datetime import UTC, datetime

import pytest
from faststream.rabbit import TestRabbitBroker
from sqlalchemy import func, select

from services.reporting.models import AssignmentFact, ChildFact, IncidentClosure, IncidentFact
from shared import topology
from shared.events import (
    AssignmentAcknowledged,
    ChildCase,
    ChildFacts,
    IncidentCase,
    IncidentClosed,
    IncidentClosureRecorded,
    IncidentFacts,
    IncidentRecorded,
    IncidentReported,
    ReportGenerated,
)
from tests.support import make_runtime, migrate

AT = datetime(2025, 3, 2, 1, tzinfo=UTC)


@pytest.fixture
async def reporting(tmp_path):
    runtime = make_runtime("reporting", tmp_path)
    await migrate(runtime)
    yield runtime
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def publish(broker, envelope, user_id: str | None = "guest"):
    # In memory there are no exchange bindings (they are declared apart): deliver to the queue itself.
    await broker.publish(
        envelope.model_dump_json().encode(), queue=topology.REPORTING_EVENTS.name, message_id=str(envelope.event_id),
        user_id=user_id,  # the producer's broker user (one user in development)
    )


def reported():
    facts = IncidentFacts(
        commune_code="25349",
        hamlet="25349.hamlet.ap-2",
        category="violence",
        urgency="high",
        channel="phone",
        occurred_at=datetime(2025, 4, 30, 16, 30, tzinfo=UTC),
        received_at=AT,
        children=(ChildFacts(sex="female", age_band="11-15", special_circumstances=("orphan",)),),
    )
    case = IncidentCase(description="private", children=(ChildCase(full_name="Nguyễn Thị A", sex="female"),))
    return IncidentReported(incident_id="inc-1", reported_by="25349.police", facts=facts, case=case).envelope(
        correlation_id="inc-1", producer="intake"
    )


async def count(runtime, model) -> int:
    async with runtime.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


class TestReadModelSubscriber:
    async def test_a_report_is_kept_once_on_its_vietnam_date_even_when_redelivered(self, reporting):
        envelope = reported()
        async with TestRabbitBroker(reporting.broker) as broker:
            await publish(broker, envelope)
            await publish(broker, envelope)  # a redelivery: the inbox skips it
        async with reporting.sessionmaker() as session:
            fact = await session.get(IncidentFact, "inc-1")
        assert (fact.commune_code, fact.hamlet, fact.local_date.isoformat()) == ("25349", "25349.hamlet.ap-2", "2025-04-30")
        assert await count(reporting, ChildFact) == 1

    async def test_an_acknowledgement_before_its_incident_is_kept(self, reporting):
        acked = AssignmentAcknowledged(
            incident_id="inc-1", assignment_id="a1", unit_id="25349.police", unit_type="police", role="lead",
            commune_code="25349", by="25349.police", at=AT, due_at=AT, assigned_at=AT,
        ).envelope(correlation_id="inc-1", producer="routing")
        async with TestRabbitBroker(reporting.broker) as broker:
            await publish(broker, acked)
        async with reporting.sessionmaker() as session:
            row = await session.get(AssignmentFact, "a1")
        assert (row.unit_type, row.status, row.acknowledged_at) == ("police", "acknowledged", AT)

    async def test_an_event_reporting_does_not_fold_changes_nothing(self, reporting):
        generated = ReportGenerated(org_unit="25349", period="2025-6M", revision=1, as_of=AT)
        async with TestRabbitBroker(reporting.broker) as broker:
            await publish(broker, generated.envelope(correlation_id="25349", producer="reporting"))
        assert await count(reporting, IncidentFact) == 0 and await count(reporting, AssignmentFact) == 0


class TestOnlyFactsFromTheirProducer:
    async def test_incident_recorded_gives_the_same_facts_as_incident_reported(self, reporting):
        facts = IncidentReported.model_validate(reported().payload).facts
        recorded = IncidentRecorded(incident_id="inc-1", facts=facts).envelope(correlation_id="inc-1", producer="intake")
        async with TestRabbitBroker(reporting.broker) as broker:
            await publish(broker, recorded)
        async with reporting.sessionmaker() as session:
            fact = await session.get(IncidentFact, "inc-1")
        assert (fact.commune_code, fact.hamlet, fact.local_date.isoformat()) == ("25349", "25349.hamlet.ap-2", "2025-04-30")
        assert await count(reporting, ChildFact) == 1

    async def test_incident_closure_recorded_gives_the_same_closing_as_incident_closed(self, reporting):
        # incident.closed: only one queued before the upgrade unbound it; its outcome is never kept.
        legacy = IncidentClosed(incident_id="inc-1", commune_code="25349", risk_level="low", outcome="Nguyễn Thị A an toàn", by="b", at=AT)
        facts = IncidentClosureRecorded(incident_id="inc-2", commune_code="25349", risk_level="low", at=AT)
        async with TestRabbitBroker(reporting.broker) as broker:
            await publish(broker, legacy.envelope(correlation_id="inc-1", producer="routing"))
            await publish(broker, facts.envelope(correlation_id="inc-2", producer="routing"))
        async with reporting.sessionmaker() as session:
            rows = {r.incident_id: (r.closed_at, r.reopened_at) for r in (await session.execute(select(IncidentClosure))).scalars()}
        assert rows == {"inc-1": (AT, None), "inc-2": (AT, None)}

    @pytest.mark.parametrize(
        ("user_id", "producer", "believed"),
        [
            ("routing", "routing", True),  # routing's user: its own event
            ("reporting", "routing", False),  # another service's user
            ("reporting", "reporting", False),  # ... even naming itself as producer
            (None, "routing", False),  # no user_id at all
        ],
    )
    async def test_an_event_not_sent_by_its_producers_user_is_dead_lettered_unread(self, reporting, user_id, producer, believed):
        reporting.common.broker_users = {"intake": "intake", "routing": "routing", "reporting": "reporting"}
        acked = AssignmentAcknowledged(
            incident_id="inc-1", assignment_id="a1", unit_id="25349.police", unit_type="police", role="lead",
            commune_code="25349", by="25349.police", at=AT, due_at=AT, assigned_at=AT,
        ).envelope(correlation_id="inc-1", producer=producer)
        async with TestRabbitBroker(reporting.broker) as broker:
            await publish(broker, acked, user_id=user_id)
        assert await count(reporting, AssignmentFact) == int(believed)
        forged = reporting.consumer_metrics.forged.labels("reporting.events", "assignment.acknowledged")._value.get()
        assert forged == int(not believed)

    async def test_with_one_development_user_the_user_id_must_still_be_there(self, reporting):
        # No BAOVE_BROKER_USERS: every service is BAOVE_AMQP_URL's user (guest here).
        async with TestRabbitBroker(reporting.broker) as broker:
            await publish(broker, reported(), user_id=None)
            await publish(broker, reported(), user_id="guest")
        assert await count(reporting, IncidentFact) == 1
