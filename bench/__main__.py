"""The whole benchmark in one run: the broker floor, the pipeline, reporting at scale and the rebuild rate.

Run: .venv/bin/python -m bench [--n 2000] [--rate 100] [--latency-seconds 10] [--incidents 1000000]

Prints one JSON document; docs/performance.md records its figures and what limits them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench import pipeline, reporting_scale


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="incidents for the throughput run (and messages for the floor)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=100.0, help="offered load for the latency run (incidents/s)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--incidents", type=int, default=1_000_000, help="incidents in the reporting store")
    parser.add_argument("--communes", type=int, default=100)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--first-year", type=int, default=2016)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild-incidents", type=int, default=5000)
    parser.add_argument("--keep", default=None, help="SQLite file for the reporting store (reused if it exists)")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database for the reporting store")
    args = parser.parse_args()
    started = time.monotonic()
    results = {"pipeline": asyncio.run(pipeline.main(args)), "reporting_at_scale": asyncio.run(reporting_scale.run(args))}
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    cli()
