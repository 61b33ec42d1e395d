"""The whole benchmark in one run: the broker floor, the pipeline, reporting at scale and the rebuild rate.

Run: .venv/bin/python -m bench [--n 2000] [--rate 100] [--latency-seconds 10] [--incidents 1000000]
         [--setups sqlite,pg,pg2] [--pg-url postgresql+asyncpg://baove:baove@127.0.0.1:5432/postgres]

Prints one JSON document, then the pipeline's set-ups (SQLite, PostgreSQL, PostgreSQL with two replicas of routing
and reporting) as one table; docs/performance.md records its figures and what limits them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench import pipeline, reporting_scale


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pipeline.add_arguments(parser)
    reporting_scale.add_arguments(parser)
    args = parser.parse_args()
    started = time.monotonic()
    results = {"pipeline": asyncio.run(pipeline.main(args)), "reporting_at_scale": asyncio.run(reporting_scale.run(args))}
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2, default=str))
    print(pipeline.table(results["pipeline"]))


if __name__ == "__main__":
    cli()
