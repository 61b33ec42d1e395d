"""The notification benchmark: time from `incident.routed` to the webhook's arrival at a unit's receiver.

Run: .venv/bin/python -m bench.notify [--rate 10] [--seconds 60] [--interval SECONDS]

The three services run as processes; 25349.cp_officer (assigned in every incident of the commune) subscribes a
local receiver to `assignment.created`, and incidents are posted at `--rate` per second (open loop). For each
notification the latency is its first arrival at the receiver (the receiver's clock) minus its `occurred_at`:
the `incident.routed` envelope's `emitted_at`, routing's clock when it stored the routing decision. Both clocks
are this machine's. `--interval` sets BAOVE_NOTIFY_INTERVAL_SECONDS (the delivery loop's pause; default the
service's own, 1 s), which bounds the wait of a notification recorded just after a tick.
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
from datetime import datetime
from pathlib import Path

import httpx

from bench.pipeline import payloads, pct, post_incidents_raw
from tests.harness import Receiver, System, vhost

PORTS = {"intake": 18111, "routing": 18112, "reporting": 18113}
UNIT = "25349.cp_officer"


def summary(values_ms: list[float]) -> dict:
    return {
        "p50": round(pct(values_ms, 0.50), 1),
        "p95": round(pct(values_ms, 0.95), 1),
        "p99": round(pct(values_ms, 0.99), 1),
        "max": round(max(values_ms), 1),
        "mean": round(statistics.fmean(values_ms), 1),
    }


async def main(args) -> dict:
    n = int(args.rate * args.seconds)
    env = {"BAOVE_NOTIFY_ALLOW_PRIVATE": "true"}  # the receiver listens on 127.0.0.1
    if args.interval:
        env["BAOVE_NOTIFY_INTERVAL_SECONDS"] = str(args.interval)
    results: dict = {"machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"}
    with vhost() as amqp_url, tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp) / "notify", amqp_url, PORTS, env)
        system.prepare()
        system.start_all()
        try:
            async with Receiver() as receiver:
                async with httpx.AsyncClient(base_url=system.url("routing"), timeout=10) as http:
                    answer = await http.post(
                        "/v1/subscriptions",
                        json={"unit_id": UNIT, "channel": "webhook", "target": receiver.url, "events": ["assignment.created"]},
                        headers={"Authorization": f"Bearer {system.tokens[UNIT]}"},
                    )
                answer.raise_for_status()
                answered = await post_incidents_raw(system, payloads(n), concurrency=args.concurrency, rate=args.rate)
                assert all(status == 202 for _, _, status in answered), {s for _, _, s in answered}
                deadline = time.monotonic() + 300
                while len({h["webhook-id"] for h, _ in receiver.requests}) < n:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{len(receiver.requests)} of {n} notifications arrived in 300 s")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1)
                requests, arrived = list(receiver.requests), list(receiver.arrived)
        finally:
            system.stop_all()
    first: dict[str, tuple[dict, float]] = {}
    for (headers, body), at in zip(requests, arrived, strict=True):
        first.setdefault(headers["webhook-id"], (json.loads(body), at))
    accepted = {incident_id: at for incident_id, at, _ in answered}
    routed_ms = [(at - datetime.fromisoformat(m["occurred_at"]).timestamp()) * 1000 for m, at in first.values()]
    accept_ms = [(at - accepted[m["incident_id"]]) * 1000 for m, at in first.values()]
    results |= {
        "offered_per_s": args.rate,
        "incidents": n,
        "notifications": len(first),
        "requests": len(requests),  # more than notifications only if a send was retried
        "notify_interval_s": args.interval or "service default (1.0)",
        "routed_to_webhook_ms": summary(routed_ms),
        "accept_to_webhook_ms": summary(accept_ms),
    }
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=10.0, help="incidents per second (open loop)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--interval", type=float, default=None, help="BAOVE_NOTIFY_INTERVAL_SECONDS for routing")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    print(json.dumps(asyncio.run(main(args=parser.parse_args())), indent=2))


if __name__ == "__main__":
    cli()
