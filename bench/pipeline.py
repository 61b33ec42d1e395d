"""The pipeline benchmark: incidents over HTTP until routed and counted, beside the broker floor.

Run: .venv/bin/python -m bench.pipeline [--n 2000] [--concurrency 32] [--rate 100] [--latency-seconds 10]
         [--setups sqlite,pg,pg2] [--pg-url postgresql+asyncpg://baove:baove@127.0.0.1:5432/postgres]

Each set-up runs on a vhost of its own: SQLite files; PostgreSQL (fresh databases, created and dropped); PostgreSQL
with two processes of routing and of reporting (same databases and queues; one RabbitMQ node). Prints the JSON and
one table: incidents/s end to end, latency at a fixed rate, CPU per incident per process, database bytes per incident.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.floor import run_floor
from tests.harness import System, broker_pid, paced, process_cpu_seconds, vhost

PORTS = {"intake": 18101, "routing": 18102, "reporting": 18103}
CATEGORIES = ["violence", "injury", "drowning", "neglect", "sexual_abuse", "online_abuse", "school_violence", "malnutrition"]


def payloads(n: int) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            {
                "report_id": str(uuid.uuid4()),
                "commune_code": "25349",
                "hamlet": "25349.hamlet.ap-2",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "urgency": ("emergency", "high", "medium", "low")[i % 4],
                "channel": "hotline_111",
                "occurred_at": "2025-03-02T08:00:00+07:00",
                "description": "benchmark report",
                "children": [{"sex": "female", "age_years": 9, "school": "25349.school.th-minh-tam-a"}],
            }
        )
    return out


async def count(db_url: str, sql: str) -> int:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


async def wait_drained(system: System, n: int, timeout: float) -> float:
    """Seconds until routing has routed and reporting has counted `n` incidents (one connection each, polled)."""
    deadline = time.monotonic() + timeout
    routing, reporting = create_async_engine(system.db("routing")), create_async_engine(system.db("reporting"))
    try:
        async with routing.connect() as r, reporting.connect() as c:
            while time.monotonic() < deadline:
                routed = (await r.execute(text("SELECT count(*) FROM routed_incident"))).scalar_one()
                counted = (await c.execute(text("SELECT count(*) FROM incident_fact"))).scalar_one()
                await r.rollback()
                await c.rollback()
                if routed >= n and counted >= n:
                    return time.monotonic()
                await asyncio.sleep(0.1)
    finally:
        await routing.dispose()
        await reporting.dispose()
    raise RuntimeError(f"not drained in {timeout}s: routed {routed}, counted {counted} of {n}")


async def latencies(system: System, answered: list[tuple[str | None, float, int]]) -> list[float]:
    """Accept (the 202's arrival at the client) to the assignment stored in routing, in ms."""
    engine = create_async_engine(system.db("routing"))
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT incident_id, min(assigned_at) FROM assignment GROUP BY incident_id"))).all()
    await engine.dispose()
    stored = {incident_id: datetime.fromisoformat(str(at)).replace(tzinfo=None) for incident_id, at in rows}
    out = []
    for incident_id, answered_at, _ in answered:
        at = stored[incident_id]
        out.append((at.timestamp() - _naive_utc_ts(answered_at)) * 1000)
    return out


def _naive_utc_ts(epoch: float) -> float:
    return datetime.utcfromtimestamp(epoch).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def post_incidents_raw(
    system: System, payloads: list[dict], *, concurrency: int = 32, unit: str = "25349.police", rate: float | None = None
) -> list[tuple[str | None, float, int]]:
    """`post_incidents` with a bare keep-alive HTTP/1.1 client: the same requests and retries, a fraction of httpx's CPU.

    The benchmark shares the machine with the system it measures, so its own client must cost little.
    """
    host, port = "127.0.0.1", system.ports["intake"]
    head = (
        f"POST /v1/incidents HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {system.tokens[unit]}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    requests = [head + str(len(b)).encode() + b"\r\n\r\n" + b for b in (json.dumps(p).encode() for p in payloads)]
    results: list[tuple[str | None, float, int]] = [(None, 0.0, 0)] * len(payloads)
    take = await paced(len(payloads), rate)

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, dict, bytes]:
        writer.write(request)
        header = await reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def worker() -> None:
        connection = None
        while (i := await take()) is not None:
            while True:
                try:
                    if connection is None:
                        connection = await asyncio.open_connection(host, port)
                    status, headers, body = await exchange(*connection, requests[i])
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    connection = None
                    await asyncio.sleep(0.2)
                    continue
                if status == 503:
                    await asyncio.sleep(float(headers.get("retry-after", "1")) / 5)
                    continue
                break
            incident_id = json.loads(body).get("incident_id") if status == 202 else None
            results[i] = (incident_id, time.time(), status)
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def postgres_cpu_seconds() -> float:
    """CPU time of the PostgreSQL server so far: every live `postgres` process, plus what the postmaster's exited
    children (closed connections' backends) used. The server is shared: other work on it shows here too."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        comm, rest = raw[raw.index("(") + 1 : raw.rindex(")")], raw.rsplit(")", 1)[1].split()
        if comm != "postgres":
            continue
        total += int(rest[11]) + int(rest[12])
        with suppress(OSError):
            if Path(f"/proc/{rest[1]}/comm").read_text().strip() != "postgres":
                total += int(rest[13]) + int(rest[14])  # the postmaster: its reaped backends' time
    return total / tick


async def database_bytes(url: str) -> int:
    """Bytes the database takes: PostgreSQL's pg_database_size, or the SQLite file with its WAL."""
    if url.startswith("postgresql"):
        return await count(url, "SELECT pg_database_size(current_database())")
    path = Path(url.split(":///", 1)[1])
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


async def table_rows(url: str) -> dict[str, int]:
    """Rows in each of the database's tables (the migrations' own bookkeeping left out)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            if url.startswith("postgresql"):
                listing = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            else:
                listing = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            names = [name for (name,) in (await conn.execute(text(listing))).all() if name != "alembic_version"]
            return {name: (await conn.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar_one() for name in names}
    finally:
        await engine.dispose()


async def _pg_execute(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://")), 5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_databases(pg_url: str, names: tuple[str, ...]) -> AsyncIterator[dict[str, str]]:
    """A new, empty PostgreSQL database per name (as the tests make them); dropped on leaving."""
    made = {name: f"baove_bench_{name}_{uuid.uuid4().hex[:8]}" for name in names}
    for database in made.values():
        await _pg_execute(pg_url, f'CREATE DATABASE "{database}"')
    try:
        yield {name: pg_url.rsplit("/", 1)[0] + "/" + database for name, database in made.items()}
    finally:
        for database in made.values():
            await _pg_execute(pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def run_setup(args, label: str, workdir: Path, databases: dict[str, str] | None, replicas: int) -> dict:
    """One set-up (SQLite, or PostgreSQL with `replicas` processes of routing and of reporting) on a vhost of its own:
    `args.n` incidents as fast as intake takes them, then `args.rate` per second for the latency."""
    env = {}
    if databases:
        env = {f"BAOVE_{s.upper()}_DATABASE_URL": databases[s] for s in ("intake", "routing", "reporting")}
        env["BAOVE_AUTH_DATABASE_URL"] = databases["auth"]
    result: dict = {"setup": label, "database": "postgresql" if databases else "sqlite", "replicas": replicas}
    with vhost() as amqp_url:
        system = System(workdir / "a", amqp_url, PORTS, env)
        system.prepare()
        # Further replicas of routing and reporting: the same databases and queues, HTTP (and /metrics) ports of their own.
        others = [
            System(workdir / f"r{k}", amqp_url, {"intake": PORTS["intake"], **{s: PORTS[s] + 10 * k for s in ("routing", "reporting")}}, env)
            for k in range(1, replicas)
        ]
        processes: dict[str, list[System]] = {"intake": [system], "routing": [system, *others], "reporting": [system, *others]}
        try:
            system.start_all()
            for other in others:
                other.data_dir.mkdir(parents=True, exist_ok=True)
                for service in ("routing", "reporting"):
                    other.start(service)
                for service in ("routing", "reporting"):
                    other.wait_ready(service)
            size_before = {s: await database_bytes(system.db(s)) for s in ("intake", "routing", "reporting")}
            rows_before = {s: sum((await table_rows(system.db(s))).values()) for s in ("intake", "routing", "reporting")}

            def cpu() -> dict[str, float]:
                out = {s: sum(r.cpu_seconds(s) for r in rs) for s, rs in processes.items()}
                if broker := broker_pid():
                    out["rabbitmq"] = process_cpu_seconds(broker)
                if databases:
                    out["postgresql"] = postgres_cpu_seconds()
                out["client"] = time.process_time()
                return out

            cpu_before = cpu()
            start = time.monotonic()
            answered = await post_incidents_raw(system, payloads(args.n), concurrency=args.concurrency)
            posted = time.monotonic()
            assert all(status == 202 for _, _, status in answered), {s for _, _, s in answered}
            drained = await wait_drained(system, args.n, timeout=600)
            cpu_after = cpu()
            used = {k: cpu_after[k] - v for k, v in cpu_before.items()}
            result["incidents_per_s"] = round(args.n / (drained - start), 1)
            result["intake_accept_per_s"] = round(args.n / (posted - start), 1)
            result["cpu_ms_per_incident"] = {k: round(v * 1000 / args.n, 2) for k, v in used.items()}
            result["cpu_ms_per_incident_total"] = round(sum(used.values()) * 1000 / args.n, 2)
            result["cpu_cores_busy"] = round(sum(used.values()) / (drained - start), 2)

            m = int(args.rate * args.latency_seconds)
            answered = await post_incidents_raw(system, payloads(m), concurrency=args.concurrency, rate=args.rate)
            await wait_drained(system, args.n + m, timeout=600)
            lat = await latencies(system, answered)
            result["latency_ms_at_rate"] = {
                "offered_per_s": args.rate,
                "incidents": m,
                "p50": round(pct(lat, 0.50), 1),
                "p95": round(pct(lat, 0.95), 1),
                "p99": round(pct(lat, 0.99), 1),
                "max": round(max(lat), 1),
                "mean": round(statistics.fmean(lat), 1),
            }
            for service, rs in processes.items():
                for r in rs:
                    if r.processes[service].poll() is not None:
                        raise RuntimeError(f"{service} of {r.data_dir.name} exited during the run: {r.log(service)[-3000:]}")
            result["peak_rss_mb"] = {s: round(max(r.peak_rss_mb(s) for r in rs), 1) for s, rs in processes.items()}
            await asyncio.sleep(2)  # intake's timeline takes the routed events after routing has stored them
            size_after = {s: await database_bytes(system.db(s)) for s in ("intake", "routing", "reporting")}
            result["db_bytes_per_incident"] = {s: round((size_after[s] - size_before[s]) / (args.n + m)) for s in size_after}
            rows_after = {s: await table_rows(system.db(s)) for s in ("intake", "routing", "reporting")}
            result["db_rows_per_incident"] = {
                s: round((sum(rows.values()) - rows_before[s]) / (args.n + m), 2) for s, rows in rows_after.items()
            }
            result["db_rows"] = rows_after
        finally:
            for r in (*others, system):
                r.stop_all()
    return result


SETUPS = {"sqlite": ("SQLite", False, 1), "pg": ("PostgreSQL", True, 1), "pg2": ("PostgreSQL, 2 x routing, 2 x reporting", True, 2)}


async def main(args) -> dict:
    results: dict = {"machine": f"{os.cpu_count()} cores (shared with other work), {platform.python_implementation()} {platform.python_version()}"}
    with vhost() as amqp_url:
        results["floor_msgs_per_s"] = round(await run_floor(amqp_url, args.n), 1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.setups.split(","):
            label, on_pg, replicas = SETUPS[key]
            workdir = Path(tmp) / key
            if on_pg:
                async with scratch_databases(args.pg_url, ("intake", "routing", "reporting", "auth")) as databases:
                    runs.append(await run_setup(args, label, workdir, databases, replicas))
            else:
                runs.append(await run_setup(args, label, workdir, None, replicas))
    for run in runs:
        run["over_floor"] = round(run["incidents_per_s"] / results["floor_msgs_per_s"], 3)
    results["runs"] = runs
    results["n"] = args.n
    results["concurrency"] = args.concurrency
    return results


def table(results: dict) -> str:
    """The runs side by side, as docs/performance.md records them."""
    services = ("intake", "routing", "reporting", "rabbitmq", "postgresql", "client")
    lines = [
        f"{results['machine']}; broker floor {results['floor_msgs_per_s']} msgs/s; {results['n']} incidents per run",
        "| set-up | incidents/s | p50 / p99 at {:g}/s | CPU ms per incident: {} | total | cores busy "
        "| DB bytes (rows) per incident: intake / routing / reporting |".format(
            results["runs"][0]["latency_ms_at_rate"]["offered_per_s"] if results["runs"] else 0, " / ".join(services)
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        cpu = run["cpu_ms_per_incident"]
        lat = run["latency_ms_at_rate"]
        size, rows = run["db_bytes_per_incident"], run["db_rows_per_incident"]
        lines.append(
            f"| {run['setup']} | {run['incidents_per_s']} | {lat['p50']:.0f} ms / {lat['p99']:.0f} ms | "
            + " / ".join(f"{cpu[s]:.2f}" if s in cpu else "-" for s in services)
            + f" | {run['cpu_ms_per_incident_total']:.1f} | {run['cpu_cores_busy']} | "
            + " / ".join(f"{size[s]} ({rows[s]})" for s in ("intake", "routing", "reporting"))
            + " |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=2000, help="incidents for throughput (and messages for the floor)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=100.0, help="offered load for the latency run (incidents/s)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--setups", default="sqlite,pg,pg2",
        help="comma-separated: sqlite, pg (PostgreSQL), pg2 (PostgreSQL with two replicas of routing and of reporting)",
    )
    parser.add_argument(
        "--pg-url", default=os.environ.get("BAOVE_BENCH_PG_URL", "postgresql+asyncpg://baove:baove@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where the benchmark may create and drop its databases (BAOVE_BENCH_PG_URL)",
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    args = parser.parse_args()
    results = asyncio.run(main(args))
    print(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    cli()
