"""The pipeline benchmark: incidents over HTTP until routed and counted, beside the broker floor.

Run: .venv/bin/python -m bench.pipeline [--n 2000] [--concurrency 32] [--rate 100] [--latency-seconds 10]
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
    """Seconds until routing has routed and reporting has counted `n` incidents."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routed = await count(system.db("routing"), "SELECT count(*) FROM routed_incident")
        counted = await count(system.db("reporting"), "SELECT count(*) FROM incident_fact")
        if routed >= n and counted >= n:
            return time.monotonic()
        await asyncio.sleep(0.1)
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


async def main(args) -> dict:
    results: dict = {"machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"}
    with vhost() as amqp_url, tempfile.TemporaryDirectory() as tmp:
        results["floor_msgs_per_s"] = round(await run_floor(amqp_url, args.n), 1)

        system = System(Path(tmp) / "throughput", amqp_url, PORTS)
        system.prepare()
        system.start_all()
        try:
            broker = broker_pid()
            cpu_before = {s: system.cpu_seconds(s) for s in system.processes}
            if broker:
                cpu_before["rabbitmq"] = process_cpu_seconds(broker)
            cpu_before["benchmark client"] = time.process_time()
            start = time.monotonic()
            answered = await post_incidents_raw(system, payloads(args.n), concurrency=args.concurrency)
            posted = time.monotonic()
            assert all(status == 202 for _, _, status in answered), {s for _, _, s in answered}
            drained = await wait_drained(system, args.n, timeout=600)
            cpu_after = {s: system.cpu_seconds(s) for s in system.processes}
            if broker:
                cpu_after["rabbitmq"] = process_cpu_seconds(broker)
            cpu_after["benchmark client"] = time.process_time()
            results["pipeline_incidents_per_s"] = round(args.n / (drained - start), 1)
            results["intake_accept_per_s"] = round(args.n / (posted - start), 1)
            results["cpu_ms_per_incident"] = {k: round((cpu_after[k] - v) * 1000 / args.n, 2) for k, v in cpu_before.items()}
            results["cpu_cores_busy"] = round(sum(cpu_after[k] - v for k, v in cpu_before.items()) / (drained - start), 2)

            base = args.n
            m = int(args.rate * args.latency_seconds)
            answered = await post_incidents_raw(system, payloads(m), concurrency=args.concurrency, rate=args.rate)
            await wait_drained(system, base + m, timeout=600)
            lat = await latencies(system, answered)
            results["latency_ms_at_rate"] = {
                "offered_per_s": args.rate,
                "incidents": m,
                "p50": round(pct(lat, 0.50), 1),
                "p95": round(pct(lat, 0.95), 1),
                "p99": round(pct(lat, 0.99), 1),
                "max": round(max(lat), 1),
                "mean": round(statistics.fmean(lat), 1),
            }
            results["peak_rss_mb"] = {s: round(system.peak_rss_mb(s), 1) for s in system.processes}
        finally:
            system.stop_all()
    results["pipeline_over_floor"] = round(results["pipeline_incidents_per_s"] / results["floor_msgs_per_s"], 3)
    results["n"] = args.n
    results["concurrency"] = args.concurrency
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=2000, help="incidents for throughput (and messages for the floor)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=100.0, help="offered load for the latency run (incidents/s)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args)), indent=2))


if __name__ == "__main__":
    cli()
