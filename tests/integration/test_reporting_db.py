"""Reporting against real databases: events in, summaries out over HTTP, checked against an independent recount.

Runs on SQLite and PostgreSQL (the `database_url` fixture). No broker: events go straight to the
consumer's work function, and the API is called in process without its lifespan.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from openpyxl import load_workbook
from sqlalchemy import String, Text, select, text

from services.reporting import aggregates, scheduler, summaries
from services.reporting.app import MIGRATIONS, create_runtime
from services.reporting.fold import handle_event, handle_events
from services.reporting.models import AssignmentFact, metadata
from services.reporting.periods import parse_period
from shared.auth import issue_token
from shared.db import make_sessionmaker
from shared.enums import AgeBand, Category, Channel, Role, Sex, SpecialCircumstance, Urgency
from shared.events import (
    AssignmentAcknowledged,
    AssignmentOverdue,
    AssignmentStatusChanged,
    ChildCase,
    ChildFacts,
    Envelope,
    IncidentCase,
    IncidentClosureRecorded,
    IncidentEscalated,
    IncidentFacts,
    IncidentReported,
    IncidentRouted,
    Reporter,
    RoutedAssignment,
    parse_payload,
)
from shared.migrate import upgrade
from shared.reference import load_hierarchy
from shared.runtime import AUTH_MIGRATIONS
from shared.settings import CommonSettings, ReportingSettings
from shared.topology import REPORTING_EVENTS

pytestmark = pytest.mark.integration

# The recount uses the IANA zone, not the service's fixed offset: two ways to the same dates.
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
UTC = UTC
OLD_COMMUNES = ("25339", "25348", "25349")


# -- the world: generated incidents with personal data in `case` --------------------------------


@dataclass(frozen=True)
class Generated:
    envelope: Envelope
    commune: str
    local_day: date
    category: str
    urgency: str
    channel: str
    hamlet: str | None
    children: tuple[ChildFacts, ...]


def incident(
    i: int, commune: str, local: datetime, *, rng: random.Random, use_received: bool = False, category: str | None = None
) -> Generated:
    """One incident.reported whose facts are random codes and whose case is full of (fake) personal data."""
    hamlets = load_hierarchy().hamlet_unit_ids(commune)
    hamlet = rng.choice([*hamlets, None])
    moment = local.replace(tzinfo=HCM)
    # Half the times travel as UTC, half with the +07:00 offset: the read model must not care.
    moment = moment.astimezone(UTC) if i % 2 else moment
    children = tuple(
        ChildFacts(
            sex=rng.choice(list(Sex)),
            age_band=rng.choice(list(AgeBand)),
            special_circumstances=tuple(sorted(rng.sample([s.value for s in SpecialCircumstance], rng.randint(0, 2)))),
        )
        for _ in range(rng.randint(1, 3))
    )
    facts = IncidentFacts(
        commune_code=commune,
        hamlet=hamlet,
        category=category or rng.choice(list(Category)),
        urgency=rng.choice(list(Urgency)),
        channel=rng.choice(list(Channel)),
        occurred_at=None if use_received else moment,
        received_at=moment if use_received else moment + timedelta(hours=rng.randint(1, 30)),
        children=children,
    )
    case = IncidentCase(
        description=f"Mô tả riêng tư {i}: bé bị đánh tại nhà số {i} đường Lê Lợi",
        children=tuple(
            ChildCase(
                full_name=f"Nguyễn Văn Bé {i}-{n}",
                sex=c.sex,
                birth_date=f"2013-0{1 + n}-1{n}",
                school="25349.school.th-minh-tam-a",
                special_circumstances=c.special_circumstances,
            )
            for n, c in enumerate(children)
        ),
        reporter=Reporter(name=f"Trần Thị Báo {i}", phone=f"0912{i:06d}", relation="hàng xóm"),
    )
    incident_id = str(uuid.uuid4())
    event = IncidentReported(incident_id=incident_id, reported_by=f"{commune}.cp_officer", facts=facts, case=case)
    return Generated(
        event.envelope(correlation_id=incident_id, producer="intake"),
        commune,
        moment.astimezone(HCM).date(),
        facts.category.value,
        facts.urgency.value,
        facts.channel.value,
        hamlet,
        children,
    )


def generate() -> list[Generated]:
    rng = random.Random(2025)
    out: list[Generated] = []

    def add(commune: str, local: datetime, **kw) -> Generated:
        g = incident(len(out), commune, local, rng=rng, **kw)
        out.append(g)
        return g

    for _ in range(45):
        # Before the reform: three communes of district 694, from November 2024 (inside 2025-6M) to June 2025.
        day = datetime(2024, 11, 1) + timedelta(days=rng.randrange(242), minutes=rng.randrange(24 * 60))
        add(rng.choice(OLD_COMMUNES), day)
    for _ in range(15):
        # After 1 July 2025 only 25349 exists (Minh Đức, province 75).
        add("25349", datetime(2025, 7, 1) + timedelta(days=rng.randrange(184), minutes=rng.randrange(24 * 60)))
    add("25339", datetime(2025, 6, 30, 23, 30))  # 16:30Z on 30 June: still June, still district 694
    add("25349", datetime(2025, 7, 1, 0, 30))  # 17:30Z on 30 June: July already, after the reform
    add("25349", datetime(2025, 4, 30, 23, 30), use_received=True)  # no occurred_at: April by received_at
    add("25348", datetime(2024, 10, 31, 23, 59))  # before every period asked about
    return out


def recount(world: list[Generated], windows: list[tuple[tuple[str, ...], date, date]]) -> dict:
    """The indicators a summary must show, counted directly from what was generated."""
    chosen = [g for g in world if any(g.commune in cs and a <= g.local_day <= b for cs, a, b in windows)]
    kids = [c for g in chosen for c in g.children]
    return {
        "incidents_total": len(chosen),
        "children_total": len(kids),
        "by_category": Counter(g.category for g in chosen),
        "by_urgency": Counter(g.urgency for g in chosen),
        "by_channel": Counter(g.channel for g in chosen),
        "by_hamlet": Counter(g.hamlet or "unknown" for g in chosen),
        "by_sex": Counter(c.sex.value for c in kids),
        "by_age_band": Counter(c.age_band.value for c in kids),
        "by_special_circumstance": Counter(s for c in kids for s in c.special_circumstances),
    }


def secrets(world: list[Generated]) -> set[str]:
    """Every personal value the cases carried: names, phones, birth dates, schools, descriptions, relations."""
    found = set()
    for g in world:
        case = g.envelope.payload["case"]
        found.add(case["description"])
        found |= {v for k, v in case["reporter"].items() if isinstance(v, str)}
        found |= {c[k] for c in case["children"] for k in ("full_name", "birth_date", "school")}
    return found


def assert_matches(indicators: dict, expected: dict) -> None:
    for key, value in expected.items():
        if isinstance(value, Counter):
            got = {code: n for code, n in indicators[key].items() if n}
            assert got == dict(value), key
        else:
            assert indicators[key] == value, key


# -- one incident's assignments, sent out of order ---------------------------------------------

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)


def at(envelope: Envelope, moment: datetime) -> Envelope:
    return envelope.model_copy(update={"emitted_at": moment})


def lifecycle(target: Generated) -> list[Envelope]:
    """Police acknowledges before the routing event arrives; health is late, overdue and escalated; the case closes."""
    iid, commune = target.envelope.correlation_id, target.commune
    ids = {unit: str(uuid.uuid4()) for unit in ("police", "health", "cp_officer")}
    due = {"police": T0 + timedelta(hours=1), "health": T0 + timedelta(hours=4), "cp_officer": T0 + timedelta(hours=24)}

    def common(unit: str, role: Role) -> dict:
        return dict(
            incident_id=iid,
            assignment_id=ids[unit],
            unit_id=f"{commune}.{unit}",
            unit_type=unit,
            role=role,
            commune_code=commune,
            by=f"{commune}.{unit}",
        )

    def ack(unit: str, role: Role, delay: timedelta) -> Envelope:
        event = AssignmentAcknowledged(**common(unit, role), at=T0 + delay, due_at=due[unit], assigned_at=T0)
        return at(event.envelope(correlation_id=iid, producer="routing"), T0 + delay)

    def status(unit: str, frm: str, to: str, delay: timedelta) -> Envelope:
        event = AssignmentStatusChanged(**common(unit, Role.support), at=T0 + delay, from_status=frm, to_status=to)
        return at(event.envelope(correlation_id=iid, producer="routing"), T0 + delay)

    routed = IncidentRouted(
        incident_id=iid,
        commune_code=commune,
        category=Category(target.category),
        urgency=Urgency(target.urgency),
        rules_version="test",
        assignments=tuple(
            RoutedAssignment(
                assignment_id=ids[u], unit_id=f"{commune}.{u}", unit_type=u, role=r, rule="t", reason="t", due_at=due[u]
            )
            for u, r in (("police", Role.lead), ("health", Role.support), ("cp_officer", Role.support))
        ),
    )
    overdue = AssignmentOverdue(**{**common("health", Role.support), "by": "routing"}, at=due["health"], due_at=due["health"])
    escalated = IncidentEscalated(
        incident_id=iid,
        commune_code=commune,
        overdue_assignment_id=ids["health"],
        escalated_to=(f"{commune}.cp_officer", f"{commune}.chairman"),
        at=due["health"],
    )
    closed = IncidentClosureRecorded(incident_id=iid, commune_code=commune, risk_level="low", at=T0 + timedelta(days=9))
    return [
        ack("police", Role.lead, timedelta(minutes=10)),  # before incident.routed
        at(routed.envelope(correlation_id=iid, producer="routing"), T0),
        ack("cp_officer", Role.support, timedelta(minutes=30)),
        status("cp_officer", "in_progress", "done", timedelta(hours=3)),  # newer status first...
        status("cp_officer", "acknowledged", "in_progress", timedelta(hours=2)),  # ...the older one must not win
        overdue.envelope(correlation_id=iid, producer="routing"),
        escalated.envelope(correlation_id=iid, producer="routing"),
        ack("health", Role.support, timedelta(hours=5)),
        closed.envelope(correlation_id=iid, producer="routing"),
    ]


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class World:
    client: httpx.AsyncClient
    runtime: object
    incidents: list[Generated]
    lifecycle_incident: Generated
    tokens: dict[str, str]
    database_url: str
    data_dir: Path

    async def get(self, path: str, who: str = "admin", **params) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return await self.client.get(path, params=params, headers=headers)

    async def summary(self, org_unit: str, period: str, who: str = "admin") -> dict:
        response = await self.get(f"/v1/summaries/{org_unit}", who, period=period)
        assert response.status_code == 200, response.text
        return response.json()


async def feed(runtime, envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        async with runtime.sessionmaker() as session, session.begin():
            assert await handle_event(session, parse_payload(envelope), envelope) == []


@pytest_asyncio.fixture
async def world(database_url: str, tmp_path: Path):
    common = CommonSettings(data_dir=tmp_path)
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    await asyncio.to_thread(upgrade, AUTH_MIGRATIONS, common.auth_url())
    runtime = create_runtime(ReportingSettings(database_url=database_url, common=common))
    subjects = {
        "admin": ("admin", "admin"),
        "district:694": ("district", "694"),
        "district:695": ("district", "695"),
        "25349.cp_officer": ("unit", "25349.cp_officer"),
        "25348.cp_officer": ("unit", "25348.cp_officer"),
        "25349.police": ("unit", "25349.police"),
    }
    async with make_sessionmaker(runtime.auth_engine)() as session, session.begin():
        tokens = {name: await issue_token(session, kind, subject, label="test") for name, (kind, subject) in subjects.items()}
    incidents = generate()
    target = next(g for g in incidents if g.commune == "25349" and date(2025, 3, 1) <= g.local_day < date(2025, 4, 1))
    # incident.reported delivered twice under different event ids (a producer retry) counts once.
    duplicate = incidents[0].envelope.model_copy(update={"event_id": uuid.uuid4()})
    await feed(runtime, [g.envelope for g in incidents] + [duplicate] + lifecycle(target))
    transport = httpx.ASGITransport(app=runtime.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
        yield World(client, runtime, incidents, target, tokens, database_url, tmp_path)
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


# -- tests ------------------------------------------------------------------------------------


class TestSummariesMatchAnIndependentRecount:
    @pytest.mark.parametrize(
        ("org_unit", "period", "windows"),
        [
            ("694", "2025", [(OLD_COMMUNES, date(2025, 1, 1), date(2025, 6, 30))]),
            ("70", "2025-6M", [(OLD_COMMUNES, date(2024, 11, 1), date(2025, 4, 30))]),
            ("25349", "2025", [(("25349",), date(2025, 1, 1), date(2025, 12, 31))]),
            ("75", "2025", [(("25349",), date(2025, 7, 1), date(2025, 12, 31))]),
            ("25349", "202504", [(("25349",), date(2025, 4, 1), date(2025, 4, 30))]),
            ("25339", "2025Q2", [(("25339",), date(2025, 4, 1), date(2025, 6, 30))]),
            ("25349", "2025-12M", [(("25349",), date(2024, 11, 1), date(2025, 10, 31))]),
        ],
    )
    async def test_counts_equal_the_recount(self, world: World, org_unit, period, windows):
        s = await world.summary(org_unit, period)
        assert_matches(s["indicators"], recount(world.incidents, windows))

    async def test_the_edge_incidents_fall_on_their_vietnam_dates(self, world: World):
        june = await world.summary("25339", "202506")
        assert june["indicators"]["incidents_total"] == recount(world.incidents, [(("25339",), date(2025, 6, 1), date(2025, 6, 30))])["incidents_total"]
        july_first = [g for g in world.incidents if g.commune == "25349" and g.local_day == date(2025, 7, 1)]
        assert july_first, "the 00:30 1 July incident is in the world"
        april = await world.summary("25349", "202504")
        assert any(g.local_day == date(2025, 4, 30) for g in world.incidents if g.commune == "25349")
        assert april["period"] == {"id": "202504", "kind": "month", "start": "2025-04-01", "end": "2025-04-30", "due": None}


class TestDistrictSummary:
    async def test_district_694_in_2025_covers_only_january_to_june(self, world: World):
        s = await world.summary("694", "2025", who="district:694")
        assert [(v["id"], v["start"], v["end"]) for v in s["hierarchy_version"]] == [("vn-admin-2008", "2025-01-01", "2025-06-30")]
        assert "2025-01-01..2025-06-30" in s["note"]
        after_reform = [g for g in world.incidents if g.local_day >= date(2025, 7, 1)]
        assert after_reform and s["indicators"]["incidents_total"] == recount(world.incidents, [(OLD_COMMUNES, date(2025, 1, 1), date(2025, 6, 30))])["incidents_total"]

    async def test_each_commune_row_matches_its_recount_and_the_rows_sum_to_the_total(self, world: World):
        s = await world.summary("694", "2025S1", who="district:694")
        assert [(r["code"], r["name"]) for r in s["communes"]] == [("25339", "An Phú"), ("25348", "Minh Đức"), ("25349", "Minh Tâm")]
        for row in s["communes"]:
            assert_matches(row["indicators"], recount(world.incidents, [((row["code"],), date(2025, 1, 1), date(2025, 6, 30))]))
        for key in ("incidents_total", "children_total", "cases_closed"):
            assert s["indicators"][key] == sum(r["indicators"][key] for r in s["communes"])
        assert s["completeness"]["communes_expected"] == list(OLD_COMMUNES)

    async def test_a_province_that_did_not_exist_yet_has_no_data_rather_than_zero(self, world: World):
        s = await world.summary("75", "2025S1")
        assert s["indicators"] is None and s["hierarchy_version"] == [] and "did not exist" in s["note"]


class TestAssignmentEventsInAnyOrder:
    async def test_response_indicators_follow_the_lifecycle(self, world: World):
        s = await world.summary("25349", "202503")
        response = s["indicators"]["response"]
        assert response["police"] == {
            "assignments": 1,
            "acknowledged": 1,
            "acknowledged_within_deadline": 1,
            "median_seconds_to_acknowledge": 600.0,
            "overdue": 0,
            "escalations": 0,
        }
        assert response["health"] == {
            "assignments": 1,
            "acknowledged": 1,
            "acknowledged_within_deadline": 0,
            "median_seconds_to_acknowledge": 18000.0,
            "overdue": 1,
            "escalations": 1,
        }
        assert response["cp_officer"]["median_seconds_to_acknowledge"] == 1800.0
        assert response["school"]["assignments"] == 0
        assert s["indicators"]["cases_closed"] == 1
        assert s["indicators"]["cases_open"] == s["indicators"]["incidents_total"] - 1

    async def test_the_newest_status_wins_whatever_the_arrival_order(self, world: World):
        async with world.runtime.sessionmaker() as session:
            rows = (await session.execute(select(AssignmentFact.unit_type, AssignmentFact.status, AssignmentFact.assigned_at))).all()
        assert {r.unit_type: r.status for r in rows} == {"police": "acknowledged", "health": "acknowledged", "cp_officer": "done"}
        assert {r.assigned_at for r in rows} == {T0}


class TestPreAggregatedCells:
    """Summaries read cached commune-month tallies; a late event must show at the next read, never a stale count."""

    async def uncached(self, world: World, org_unit: str, period: str) -> dict:
        """The same summary computed straight from the facts, bypassing the cells."""
        hierarchy = load_hierarchy()
        p = parse_period(period)
        coverages = hierarchy.coverage(org_unit, p.start, p.end)
        async with world.runtime.sessionmaker() as session:
            counted = await summaries.tallies(session, coverages)
            process = await summaries.process_tallies(session, coverages)  # never cached: read from the facts either way
        return aggregates.build_summary(hierarchy, org_unit, p, coverages, counted, datetime.now(UTC), process=process)

    async def test_a_cached_summary_equals_one_from_the_facts(self, world: World):
        for org_unit, period in (("70", "2025-6M"), ("694", "2025"), ("25349", "2025"), ("75", "2025S2")):
            first = await world.summary(org_unit, period)
            again = await world.summary(org_unit, period)
            assert first["indicators"] == again["indicators"]
            direct = await self.uncached(world, org_unit, period)
            assert again["indicators"] == json.loads(json.dumps(direct["indicators"], default=str))
            assert again["communes"] == json.loads(json.dumps(direct["communes"], default=str))
        async with world.runtime.sessionmaker() as session:
            cached = (await session.execute(text("SELECT count(*) FROM tally_cache"))).scalar_one()
        assert cached > 0

    async def test_late_events_in_a_cached_month_show_at_the_next_read(self, world: World):
        before = await world.summary("25349", "202503")
        police = before["indicators"]["response"]["police"]
        late = incident(9001, "25349", datetime(2025, 3, 15, 10, 0), rng=random.Random(7))
        events = lifecycle(late)
        # The police acknowledgement arrives first, before the incident itself: it counts nowhere yet...
        await feed(world.runtime, events[:1])
        assert (await world.summary("25349", "202503"))["indicators"] == before["indicators"]
        # ...then the incident: it shows with that acknowledgement...
        await feed(world.runtime, [late.envelope])
        middle = await world.summary("25349", "202503")
        assert middle["indicators"]["incidents_total"] == before["indicators"]["incidents_total"] + 1
        assert middle["indicators"]["response"]["police"]["acknowledged"] == police["acknowledged"] + 1
        # ...and each later event of its life shows at the next read.
        for event in events[1:]:
            await feed(world.runtime, [event])
            await world.summary("25349", "202503")
        after = await world.summary("25349", "202503")
        assert after["indicators"]["incidents_total"] == before["indicators"]["incidents_total"] + 1
        assert after["indicators"]["children_total"] == before["indicators"]["children_total"] + len(late.children)
        assert after["indicators"]["cases_closed"] == before["indicators"]["cases_closed"] + 1
        got = after["indicators"]["response"]["police"]
        assert (got["assignments"], got["acknowledged"]) == (police["assignments"] + 1, police["acknowledged"] + 1)
        assert after["indicators"]["response"]["health"]["escalations"] == before["indicators"]["response"]["health"]["escalations"] + 1
        assert after["indicators"] == json.loads(json.dumps((await self.uncached(world, "25349", "202503"))["indicators"], default=str))
        # The province's year, cached before the late incident for other months, agrees too.
        province = await world.summary("70", "2025")
        assert province["indicators"] == json.loads(json.dumps((await self.uncached(world, "70", "2025"))["indicators"], default=str))


    async def test_the_scheduler_warms_every_stale_cell_and_only_those(self, world: World):
        hierarchy = load_hierarchy()
        warmed = await scheduler.warm_cells(world.runtime.unit_of_work, hierarchy, chunk=2)
        async with world.runtime.sessionmaker() as session:
            cells_with_facts = (await session.execute(text("SELECT count(*) FROM tally_cell"))).scalar_one()
        assert warmed == cells_with_facts > 5
        assert await scheduler.warm_cells(world.runtime.unit_of_work, hierarchy) == 0  # nothing stale any more
        late = incident(9002, "25348", datetime(2025, 2, 10, 9, 0), rng=random.Random(9))
        await feed(world.runtime, [late.envelope])
        assert await scheduler.warm_cells(world.runtime.unit_of_work, hierarchy) == 1  # its cell only
        for org_unit, period in (("694", "2025"), ("70", "2025-6M"), ("25348", "202502")):
            summary = await world.summary(org_unit, period)
            direct = await self.uncached(world, org_unit, period)
            assert summary["indicators"] == json.loads(json.dumps(direct["indicators"], default=str))

    async def test_a_retried_report_in_a_batch_does_not_hide_the_facts_beside_it(self, world: World):
        """incident.reported again under a new event id (a producer's retry) and a new fact of that incident, in one batch."""
        target = world.lifecycle_incident
        before = await world.summary("25349", "202503")  # caches the month
        async with world.runtime.sessionmaker() as session:
            police = (
                await session.execute(
                    select(AssignmentFact.assignment_id).where(
                        AssignmentFact.incident_id == target.envelope.correlation_id, AssignmentFact.unit_type == "police"
                    )
                )
            ).scalar_one()
        retry = target.envelope.model_copy(update={"event_id": uuid.uuid4()})
        overdue = AssignmentOverdue(
            incident_id=target.envelope.correlation_id, assignment_id=police, unit_id="25349.police", unit_type="police",
            role=Role.lead, commune_code="25349", by="routing", at=T0 + timedelta(hours=1), due_at=T0 + timedelta(hours=1),
        ).envelope(correlation_id=target.envelope.correlation_id, producer="routing")
        batch = [(e, parse_payload(e)) for e in (retry, overdue)]
        await world.runtime._consume_batch(REPORTING_EVENTS, batch, handle_event, handle_events)
        after = await world.summary("25349", "202503")
        assert after["indicators"]["incidents_total"] == before["indicators"]["incidents_total"]
        assert after["indicators"]["response"]["police"]["overdue"] == before["indicators"]["response"]["police"]["overdue"] + 1


class TestBatchFold:
    """The consumer folds deliveries that arrive together in one transaction: the read model must not care."""

    async def test_shuffled_batches_give_the_same_read_model_as_one_event_at_a_time(self, tmp_path: Path):
        incidents = generate()
        lifecycles = [e for g in incidents if g.commune == "25349" for e in lifecycle(g)]
        duplicate = incidents[0].envelope.model_copy(update={"event_id": uuid.uuid4()})
        envelopes = [g.envelope for g in incidents] + [duplicate] + lifecycles
        # Redeliveries inside a batch and across batches: each event folds once.
        envelopes += random.Random(3).sample(envelopes, 25)
        runtimes = []
        for name in ("one", "batch"):
            common = CommonSettings(data_dir=tmp_path / name)
            url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
            await asyncio.to_thread(upgrade, MIGRATIONS, url)
            runtimes.append(create_runtime(ReportingSettings(database_url=url, common=common)))
        one, batch = runtimes
        spec = REPORTING_EVENTS
        for envelope in envelopes:
            await one._consume(spec, envelope, parse_payload(envelope), handle_event)
        shuffled = random.Random(5).sample(envelopes, len(envelopes))
        for i in range(0, len(shuffled), 37):
            chunk = [(e, parse_payload(e)) for e in shuffled[i : i + 37]]
            await batch._consume_batch(spec, chunk, handle_event, handle_events)
        dumps = []
        for runtime in runtimes:
            async with runtime.sessionmaker() as session:
                dump = {}
                for table in ("incident_fact", "child_fact", "assignment_fact", "escalation_fact", "incident_closure", "tally_cell"):
                    columns = [c.name for c in metadata.tables[table].c if c.name not in ("ingested_at", "version")]
                    rows = await session.execute(text(f"SELECT {', '.join(columns)} FROM {table}"))
                    dump[table] = sorted(map(tuple, rows))
                dump["inbox"] = (await session.execute(text("SELECT count(*) FROM inbox_message"))).scalar_one()
            dumps.append(dump)
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()
        assert dumps[0]["incident_fact"] and dumps[0]["assignment_fact"] and dumps[0]["incident_closure"]
        assert dumps[0] == dumps[1]
        assert dumps[1]["inbox"] == len({str(e.event_id) for e in envelopes})


class TestNoPersonalData:
    async def test_no_text_column_holds_a_name_phone_school_birth_date_or_description(self, world: World):
        markers = secrets(world.incidents)
        async with world.runtime.sessionmaker() as session:
            for table in metadata.sorted_tables:
                text_columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
                for row in (await session.execute(select(*text_columns))).all():
                    for value in row:
                        assert not any(marker in (value or "") for marker in markers), (table.name, value)

    async def test_nor_does_a_dump_of_the_whole_database(self, world: World):
        if world.database_url.startswith("sqlite"):
            await world.runtime.engine.dispose()  # closing the last connection checkpoints the WAL into the file
            path = Path(world.database_url.split("///", 1)[1])
            dump = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        else:
            async with world.runtime.sessionmaker() as session:
                # Every row of every table as text, whatever its column types.
                rows = [
                    value
                    for table in metadata.sorted_tables
                    for value in (await session.execute(text(f'SELECT CAST(t AS text) FROM "{table.name}" t'))).scalars()
                ]
            dump = "\n".join(rows).encode()
        assert b"incident_fact" in dump or b"25349" in dump, "the dump holds the read model"
        for marker in secrets(world.incidents):
            assert marker.encode() not in dump, marker


class TestAccess:
    async def test_who_may_read_what(self, world: World):
        expected = [
            ("admin", "694", 200),
            ("admin", "99999", 404),
            ("district:694", "694", 200),
            ("district:694", "25339", 200),
            ("district:694", "25349", 200),
            ("district:694", "70", 404),
            ("district:694", "75", 404),
            ("district:695", "694", 404),
            ("district:695", "25349", 404),
            ("25349.cp_officer", "25349", 200),
            ("25349.cp_officer", "25348", 404),
            ("25349.cp_officer", "694", 404),
            ("25348.cp_officer", "25348", 200),
            ("25349.police", "25349", 403),
            ("25349.police", "694", 403),
            (None, "25349", 401),
        ]
        got = [(who, unit, (await world.get(f"/v1/summaries/{unit}", who, period="2025")).status_code) for who, unit, _ in expected]
        assert got == expected

    async def test_a_district_may_not_read_a_commune_for_a_period_after_it_stopped_being_its_district(self, world: World):
        # 694 was abolished on 1 July 2025 (shared/reference/admin_units.yaml); 25349 went to province 75.
        for path in ("/v1/summaries/25349", "/v1/summaries/25349/export"):
            for period in ("2026", "2025S2", "202507"):
                response = await world.get(path, "district:694", period=period)
                assert response.status_code == 403, (path, period, response.text)
                detail = response.json()["detail"]
                assert "2025-06-30" in detail and period in detail, detail
        for path, params in (("/v1/reports/25349/2026-6M/latest", {}), ("/v1/reports/25349", {"period": "2026-6M"})):
            response = await world.get(path, "district:694", **params)
            assert response.status_code == 403, (path, response.text)

    async def test_a_period_straddling_the_change_is_cut_to_the_days_the_commune_was_the_districts(self, world: World):
        s = await world.summary("25349", "2025", who="district:694")
        assert [(v["start"], v["end"]) for v in s["hierarchy_version"]] == [("2025-01-01", "2025-06-30")]
        first_half = recount(world.incidents, [(("25349",), date(2025, 1, 1), date(2025, 6, 30))])
        whole_year = recount(world.incidents, [(("25349",), date(2025, 1, 1), date(2025, 12, 31))])
        assert first_half["incidents_total"] < whole_year["incidents_total"]  # the world has incidents after June
        assert_matches(s["indicators"], first_half)
        admin = await world.summary("25349", "2025")
        assert_matches(admin["indicators"], whole_year)  # the commune's own reading is the whole year

    async def test_a_bad_period_is_422_naming_the_period(self, world: World):
        response = await world.get("/v1/summaries/25349", period="2025Q7")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "period"]
        assert (await world.get("/v1/summaries/25349")).status_code == 422


class TestExport:
    async def test_csv_has_the_same_numbers_as_the_json(self, world: World):
        s = await world.summary("694", "2025S1")
        response = await world.get("/v1/summaries/694/export", period="2025S1", format="csv")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert 'filename="baove-694-2025S1.csv"' in response.headers["content-disposition"]
        heading, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert heading[:4] == ["Nhóm chỉ tiêu", "Mã", "Chỉ tiêu", "Tổng số"]
        by_code = {(r[0], r[1]): r[3:] for r in rows}
        total_row = by_code[("Tổng số vụ việc", "")]
        assert total_row == [str(s["indicators"]["incidents_total"])] + [str(c["indicators"]["incidents_total"]) for c in s["communes"]]
        for code, n in s["indicators"]["by_category"].items():
            assert by_code[("Vụ việc theo loại", code)][0] == str(n)

    async def test_xlsx_opens_with_the_same_total(self, world: World):
        s = await world.summary("25349", "2025")
        response = await world.get("/v1/summaries/25349/export", period="2025", format="xlsx")
        assert response.status_code == 200
        sheet = load_workbook(io.BytesIO(response.content)).active
        rows = list(sheet.iter_rows(values_only=True))
        assert next(r for r in rows if r[0] == "Tổng số vụ việc")[3] == s["indicators"]["incidents_total"]

    async def test_the_export_checks_access_like_the_summary(self, world: World):
        response = await world.get("/v1/summaries/25349/export", "25349.police", period="2025", format="csv")
        assert response.status_code == 403
