"""Reporting counts a child once across reports the cp_officer linked as one (issue 17; indicator 0101)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

from services.reporting import aggregates, summaries
from services.reporting.periods import parse_period
from shared.events import IncidentLinked
from shared.reference import load_hierarchy
from tests.integration import test_reporting_db
from tests.integration.test_reporting_db import World, feed, incident

world = test_reporting_db.world  # the same world of generated reports, on SQLite and PostgreSQL


async def uncached(world: World, org_unit: str, period: str) -> dict:
    hierarchy = load_hierarchy()
    p = parse_period(period)
    coverages = hierarchy.coverage(org_unit, p.start, p.end)
    async with world.runtime.sessionmaker() as session:
        counted = await summaries.tallies(session, coverages)
        process = await summaries.process_tallies(session, coverages)  # never cached: read from the facts either way
    summary = aggregates.build_summary(hierarchy, org_unit, p, coverages, counted, datetime.now(UTC), process=process)
    return json.loads(json.dumps(summary["indicators"], default=str))


def linked(later, earlier) -> object:
    event = IncidentLinked(
        incident_id=later.envelope.payload["incident_id"], linked_to=earlier.envelope.payload["incident_id"],
        commune_code="25349", by="25349.cp_officer", at=datetime(2025, 3, 20, 3, 0, tzinfo=UTC),
    )
    return event.envelope(correlation_id=event.incident_id, producer="intake")


class TestLinkedReports:
    async def test_a_child_reported_by_the_school_and_the_hamlet_counts_once_once_linked(self, world: World):
        before = (await world.summary("25349", "202503"))["indicators"]
        school = incident(9101, "25349", datetime(2025, 3, 10, 9, 0), rng=random.Random(1), category="violence")
        hamlet = incident(9102, "25349", datetime(2025, 3, 12, 9, 0), rng=random.Random(1), category="violence")
        await feed(world.runtime, [school.envelope, hamlet.envelope])
        both = (await world.summary("25349", "202503"))["indicators"]
        assert both["abused_children_total"] == before["abused_children_total"] + len(school.children) + len(hamlet.children)
        await feed(world.runtime, [linked(hamlet, school)])
        after = (await world.summary("25349", "202503"))["indicators"]  # the cached month is recomputed
        assert after["abused_children_total"] == before["abused_children_total"] + len(school.children)
        assert after["children_total"] == before["children_total"] + len(school.children)
        assert after["incidents_total"] == before["incidents_total"] + 2  # reports are still reports
        assert after == await uncached(world, "25349", "202503")

    async def test_a_link_delivered_twice_or_before_its_report_counts_the_same(self, world: World):
        before = (await world.summary("25349", "202503"))["indicators"]
        school = incident(9201, "25349", datetime(2025, 3, 10, 9, 0), rng=random.Random(2), category="neglect")
        hamlet = incident(9202, "25349", datetime(2025, 3, 11, 9, 0), rng=random.Random(2), category="neglect")
        link = linked(hamlet, school)
        await feed(world.runtime, [school.envelope, link])
        await world.summary("25349", "202503")
        await feed(world.runtime, [hamlet.envelope, link.model_copy(update={"event_id": uuid.uuid4()})])
        after = (await world.summary("25349", "202503"))["indicators"]
        assert after["abused_children_total"] == before["abused_children_total"] + len(school.children)
