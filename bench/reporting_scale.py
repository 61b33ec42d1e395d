"""Reporting at scale: a read model of N incidents over C communes and Y years, and what a summary costs on it.

Run: .venv/bin/python -m bench.reporting_scale [--incidents 1000000] [--communes 100] [--years 10]
     [--database-url postgresql+asyncpg://...]   (default: SQLite in a temporary folder)

The store is written with reporting's own migrations, then filled in bulk with rows shaped as
reporting's handlers write them: assignments from the real routing table (`services/routing/rules.yaml`
decides which units each category and urgency reaches), acknowledgements, declines, overdue flags,
escalations and closures. A synthetic hierarchy holds the communes: 10 per district, districts
under one province, four hamlets each. Then the summary of one commune, one district and the
province for one year is computed the way `GET /v1/summaries/...` computes it, cold and warm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from shared.db import make_engine, make_sessionmaker
from shared.enums import AgeBand, Category, Channel, Sex, SpecialCircumstance, UnitType, Urgency
from shared.migrate import upgrade
from shared.reference import Hierarchy, HierarchyVersion, OrgUnit

ROOT = Path(__file__).resolve().parents[1]
VN = timezone(timedelta(hours=7))
PROVINCE = "99"
CATEGORY_WEIGHTS = {c: w for c, w in zip(Category, (6, 14, 8, 3, 1, 3, 10, 5, 14, 6, 8, 3, 2, 6, 8, 3))}
URGENCY_WEIGHTS = {Urgency.emergency: 10, Urgency.high: 25, Urgency.medium: 40, Urgency.low: 25}


# -- the hierarchy ---------------------------------------------------------------------------------


def synthetic_hierarchy(communes: int, per_district: int = 10) -> Hierarchy:
    units = {PROVINCE: OrgUnit(PROVINCE, "province", "Tỉnh thử", None)}
    hamlets = {}
    for i in range(communes):
        district = f"9{i // per_district:02d}"
        units.setdefault(district, OrgUnit(district, "district", f"Huyện thử {district}", PROVINCE))
        code = f"9{i:04d}"
        units[code] = OrgUnit(code, "commune", f"Xã thử {code}", district)
        hamlets[code] = tuple((f"ap-{h}", f"Ấp {h}") for h in range(1, 5))
    version = HierarchyVersion("bench", "bench", date(2000, 1, 1), None, units)
    return Hierarchy(("commune", "district", "province"), (version,), hamlets)


# -- the rows --------------------------------------------------------------------------------------


def _routes() -> tuple[dict, dict]:
    """(unit_type, role) of each assignment routing makes, per category, urgency and whether a school is named."""
    from services.routing.rules import RoutingInput, decide, load_rules

    table = load_rules()
    units = {f"90000.{u.value}" for u in UnitType if u not in (UnitType.school, UnitType.hamlet)}
    units |= {"90000.hamlet.ap-1", "90000.school.a"}
    out = {}
    for category in Category:
        for urgency in Urgency:
            for school in (False, True):
                incident = RoutingInput("90000", "90000.hamlet.ap-1", category, urgency, datetime(2025, 1, 1, tzinfo=UTC),
                                        ("90000.school.a",) if school else ())
                decision = decide(incident, units, table)
                out[(category, urgency, school)] = [(a.unit_type.value, a.role.value) for a in decision.assignments]
    deadlines = {u: table.ack_deadlines[u] for u in Urgency}
    return out, deadlines


def generate_rows(n: int, communes: int, years: int, first_year: int, seed: int):
    """Yield (table, row) batches; rows are tuples in the column order of COLUMNS."""
    rng = random.Random(seed)
    routes, deadlines = _routes()
    categories, cat_w = list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values())
    urgencies, urg_w = list(URGENCY_WEIGHTS), list(URGENCY_WEIGHTS.values())
    channels = list(Channel)
    sexes, bands, circumstances = list(Sex), list(AgeBand), list(SpecialCircumstance)
    start = datetime(first_year, 1, 1, tzinfo=VN).astimezone(UTC)
    span = (datetime(first_year + years, 1, 1, tzinfo=VN).astimezone(UTC) - start).total_seconds()
    incidents, children, assignments, escalations, closures = [], [], [], [], []
    for k in range(n):
        commune = f"9{rng.randrange(communes):04d}"
        received = start + timedelta(seconds=rng.random() * span)
        occurred = received - timedelta(hours=rng.random() * 6) if rng.random() < 0.8 else None
        effective = occurred or received
        day = effective.astimezone(VN).date()
        category = rng.choices(categories, cat_w)[0]
        urgency = rng.choices(urgencies, urg_w)[0]
        hamlet = f"{commune}.hamlet.ap-{rng.randint(1, 4)}" if rng.random() < 0.8 else None
        incident_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        ingested = received + timedelta(seconds=1)
        incidents.append((incident_id, commune, hamlet, category.value, urgency.value, rng.choice(channels).value,
                          occurred, received, effective, day, ingested))
        kids = 1 if rng.random() < 0.75 else (2 if rng.random() < 0.8 else 3)
        for ordinal in range(kids):
            special = rng.choice(circumstances).value if rng.random() < 0.12 else ""
            children.append((incident_id, ordinal, commune, day, category.value, rng.choice(sexes).value, rng.choice(bands).value, special))
        assigned = received + timedelta(seconds=1 + rng.random())
        due = received + deadlines[urgency]
        for unit_type, role in routes[(category, urgency, rng.random() < 0.5)]:
            assignment_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            acked = assigned + timedelta(seconds=rng.expovariate(1 / (deadlines[urgency].total_seconds() / 3))) if rng.random() < 0.85 else None
            status = "pending"
            if acked is not None:
                status = rng.choices(("acknowledged", "in_progress", "done", "declined"), (2, 3, 10, 1))[0]
            overdue = acked is None or acked > due
            assignments.append((assignment_id, incident_id, unit_type, role, assigned, due, acked, status, acked or assigned, overdue, ingested))
            if overdue and role == "lead":
                escalations.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), incident_id, assignment_id, due + timedelta(seconds=30), ingested))
        if rng.random() < 0.6:
            closures.append((incident_id, received + timedelta(days=rng.randint(1, 60)), None, ingested))
        if len(incidents) >= 20_000 or k == n - 1:
            yield {"incident_fact": incidents, "child_fact": children, "assignment_fact": assignments,
                   "escalation_fact": escalations, "incident_closure": closures}
            incidents, children, assignments, escalations, closures = [], [], [], [], []


COLUMNS = {
    "incident_fact": ("incident_id", "commune_code", "hamlet", "category", "urgency", "channel", "occurred_at", "received_at",
                      "effective_at", "local_date", "ingested_at"),
    "child_fact": ("incident_id", "ordinal", "commune_code", "local_date", "category", "sex", "age_band", "special_circumstances"),
    "assignment_fact": ("assignment_id", "incident_id", "unit_type", "role", "assigned_at", "due_at", "acknowledged_at", "status",
                        "status_at", "overdue", "ingested_at"),
    "escalation_fact": ("event_id", "incident_id", "assignment_id", "escalated_at", "ingested_at"),
    "incident_closure": ("incident_id", "closed_at", "reopened_at", "ingested_at"),
}


def _sqlite_value(v):
    """As SQLAlchemy's SQLite dialect stores them (UtcDateTime: naive UTC with microseconds)."""
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


def fill_sqlite(path: Path, batches) -> dict[str, int]:
    counts = dict.fromkeys(COLUMNS, 0)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    for batch in batches:
        for table, rows in batch.items():
            cols = COLUMNS[table]
            con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [tuple(_sqlite_value(v) for v in row) for row in rows])
            counts[table] += len(rows)
        con.commit()
    # As reporting's handlers leave it: a version for every commune-month with facts, nothing cached yet.
    con.execute("INSERT INTO tally_cell SELECT DISTINCT commune_code, substr(local_date, 1, 8) || '01', 1 FROM incident_fact")
    con.commit()
    con.execute("ANALYZE")
    con.commit()
    con.close()
    return counts


async def fill_postgres(url: str, batches) -> dict[str, int]:
    import asyncpg

    counts = dict.fromkeys(COLUMNS, 0)
    con = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for batch in batches:
            for table, rows in batch.items():
                await con.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
                counts[table] += len(rows)
        await con.execute(
            "INSERT INTO tally_cell SELECT DISTINCT commune_code, date_trunc('month', local_date)::date, 1 FROM incident_fact"
        )
        await con.execute("ANALYZE")
    finally:
        await con.close()
    return counts


# -- timing ----------------------------------------------------------------------------------------


async def time_summaries(url: str, hierarchy: Hierarchy, year: int, repeat: int, tmp: Path) -> dict:
    """A year's summary per level: in process (compute_summary) and as a client sees it (GET over reporting's API)."""
    import httpx

    from services.reporting.app import create_runtime
    from services.reporting.periods import parse_period
    from services.reporting.summaries import compute_summary, one_snapshot
    from shared.auth import issue_token
    from shared.runtime import AUTH_MIGRATIONS
    from shared.settings import CommonSettings, ReportingSettings

    common = CommonSettings(data_dir=tmp)
    await asyncio.to_thread(upgrade, AUTH_MIGRATIONS, common.auth_url())
    runtime = create_runtime(ReportingSettings(database_url=url, common=common))
    runtime.api.state.hierarchy = hierarchy
    async with make_sessionmaker(runtime.auth_engine)() as session, session.begin():
        token = await issue_token(session, "admin", "admin", label="bench")
    period = parse_period(str(year))
    targets = {"commune": "90000", "district": "900", "province": PROVINCE}
    out = {}
    transport = httpx.ASGITransport(app=runtime.api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting", timeout=600) as client:
            for level, code in targets.items():
                runs, http_runs = [], []
                for _ in range(repeat):
                    async with runtime.sessionmaker() as session:
                        t0 = time.perf_counter()
                        await one_snapshot(session)
                        summary = await compute_summary(session, hierarchy, code, period, datetime.now(UTC))
                        runs.append((time.perf_counter() - t0) * 1000)
                        await session.commit()
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    answer = await client.get(f"/v1/summaries/{code}", params={"period": str(year)},
                                              headers={"Authorization": f"Bearer {token}"})
                    http_runs.append((time.perf_counter() - t0) * 1000)
                    assert answer.status_code == 200, answer.text[:300]
                    assert answer.json()["indicators"]["incidents_total"] == summary["indicators"]["incidents_total"]
                out[level] = {
                    "org_unit": code,
                    "incidents": summary["indicators"]["incidents_total"],
                    "first_ms": round(runs[0], 1),
                    "median_ms": round(statistics.median(runs[1:] or runs), 1),
                    "http_median_ms": round(statistics.median(http_runs), 1),
                    "http_bytes": len(answer.content),
                }
    finally:
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
    return out


def replay_events(n: int, seed: int = 7) -> list:
    """The events of n incidents as reporting receives them: recorded, routed (with its assignments), the lead acknowledged."""
    from shared.events import (
        AssignmentAcknowledged,
        ChildFacts,
        IncidentFacts,
        IncidentRecorded,
        IncidentRouted,
        RoutedAssignment,
    )

    rng = random.Random(seed)
    routes, deadlines = _routes()
    out = []
    start = datetime(2025, 1, 1, tzinfo=VN)
    for _ in range(n):
        category, urgency = rng.choice(list(Category)), rng.choice(list(Urgency))
        received = start + timedelta(seconds=rng.random() * 365 * 86400)
        incident_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        child = ChildFacts(sex=rng.choice(list(Sex)), age_band=rng.choice(list(AgeBand)))
        facts = IncidentFacts(commune_code="25349", hamlet="25349.hamlet.ap-2", category=category, urgency=urgency,
                              channel=rng.choice(list(Channel)), occurred_at=received, received_at=received, children=(child,))
        reported = IncidentRecorded(incident_id=incident_id, facts=facts)  # what reporting's queue receives
        due = received + deadlines[urgency]
        assignments = tuple(
            RoutedAssignment(assignment_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), unit_id=f"25349.{unit}",
                             unit_type=unit, role=role, rule="bench", reason="bench", due_at=due)
            for unit, role in routes[(category, urgency, False)]
        )
        routed = IncidentRouted(incident_id=incident_id, commune_code="25349", category=category, urgency=urgency,
                                rules_version="bench", assignments=assignments)
        lead = assignments[0]
        ack = AssignmentAcknowledged(incident_id=incident_id, assignment_id=lead.assignment_id, unit_id=lead.unit_id,
                                     unit_type=lead.unit_type, role=lead.role, commune_code="25349", by=lead.unit_id,
                                     at=received + timedelta(minutes=20), due_at=due, assigned_at=received)
        for event, producer in ((reported, "intake"), (routed, "routing"), (ack, "routing")):
            out.append(event.envelope(correlation_id=incident_id, producer=producer))
    return out


async def rebuild_rate(n: int) -> dict:
    """Events/s at which reporting folds replayed events: queued first with reporting stopped, then drained."""
    import aio_pika
    from sqlalchemy import text

    from tests.harness import System, vhost

    envelopes = replay_events(n)
    with vhost() as amqp_url, tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp) / "rebuild", amqp_url, {"intake": 18201, "routing": 18202, "reporting": 18203})
        system.prepare()
        system.start("reporting")  # declares the topology
        system.wait_ready("reporting")
        system.stop("reporting")
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("baove.events")
            for i in range(0, len(envelopes), 500):
                await asyncio.gather(*(
                    exchange.publish(
                        aio_pika.Message(e.model_dump_json().encode(), message_id=str(e.event_id), content_type="application/json",
                                         type=e.event_type, correlation_id=e.correlation_id,
                                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id="guest"),
                        routing_key=e.event_type,
                    )
                    for e in envelopes[i : i + 500]
                ))
        engine = make_engine(system.db("reporting"))
        try:
            started = time.monotonic()
            system.start("reporting")
            first: tuple[float, int] | None = None  # the first fold seen: start-up is not rebuilding
            while True:
                async with engine.connect() as conn:
                    done = (await conn.execute(text("SELECT count(*) FROM inbox_message"))).scalar_one()
                if done and first is None:
                    first = (time.monotonic(), done)
                if done >= len(envelopes):
                    break
                if time.monotonic() - started > 1800:
                    raise RuntimeError(f"rebuild not done in 30 min: {done} of {len(envelopes)}")
                await asyncio.sleep(0.2)
            finished = time.monotonic()
            elapsed = finished - started
            folding = (len(envelopes) - first[1]) / max(finished - first[0], 1e-9)
            rss = system.peak_rss_mb("reporting")
        finally:
            await engine.dispose()
            system.stop_all()
    return {"events": len(envelopes), "seconds_with_start_up": round(elapsed, 1), "events_per_s": round(folding, 1),
            "peak_rss_mb": round(rss, 1)}


async def run(args) -> dict:
    hierarchy = synthetic_hierarchy(args.communes)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{args.keep or tmp + '/reporting.db'}"
        counts, generated_s = {}, 0.0
        if not (args.keep and Path(args.keep).exists()):
            await asyncio.to_thread(upgrade, ROOT / "services/reporting/migrations", url)
            t0 = time.perf_counter()
            batches = generate_rows(args.incidents, args.communes, args.years, args.first_year, args.seed)
            if url.startswith("sqlite"):
                counts = await asyncio.to_thread(fill_sqlite, Path(url.split(":///", 1)[1]), batches)
            else:
                counts = await fill_postgres(url, batches)
            generated_s = time.perf_counter() - t0
        year = args.first_year + args.years - 2
        timings = await time_summaries(url, hierarchy, year, args.repeat, Path(tmp))
    rebuild = await rebuild_rate(args.rebuild_incidents) if args.rebuild_incidents else None
    return {
        "rebuild": rebuild,
        "database": url.split(":", 1)[0],
        "rows": counts,
        "communes": args.communes,
        "years": f"{args.first_year}..{args.first_year + args.years - 1}",
        "generate_and_load_s": round(generated_s, 1),
        "summary_year": year,
        "summary_ms": timings,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--communes", type=int, default=100)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--first-year", type=int, default=2016)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild-incidents", type=int, default=5000, help="incidents (3 events each) replayed into reporting; 0: skip")
    parser.add_argument("--keep", default=None, help="SQLite file to keep the store in (reused if it exists)")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: SQLite in a temporary folder)")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2, default=str))


if __name__ == "__main__":
    cli()
