"""Chaos scenarios: the three services as processes, attacked while incidents pour in."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.harness import System, rabbitmqctl, vhost
from tests.support import eventually

PORTS = {"intake": 18201, "routing": 18202, "reporting": 18203}
N = 2000


def payloads(n: int, tag: str) -> list[dict]:
    categories = ("violence", "injury", "drowning", "neglect", "sexual_abuse", "online_abuse", "school_violence", "other")
    return [
        {
            "report_id": str(uuid.uuid4()),
            "commune_code": "25349",
            "hamlet": "25349.hamlet.ap-1",
            "category": categories[i % len(categories)],
            "urgency": ("emergency", "high", "medium", "low")[i % 4],
            "channel": "phone",
            "occurred_at": "2025-03-02T08:00:00+07:00",
            "description": f"chaos {tag} {i}",
            "children": [{"sex": ("female", "male")[i % 2], "age_years": 3 + i % 12}],
        }
        for i in range(n)
    ]


@dataclass
class Outcome:
    submitted: int
    accepted: int
    routed: int
    duplicates: int
    lost: int
    counted: int

    def line(self, name: str) -> str:
        return (
            f"{name}: submitted {self.submitted} / accepted {self.accepted} / routed {self.routed} / "
            f"duplicates {self.duplicates} / lost {self.lost} (reporting counted {self.counted})"
        )


async def scalar_rows(url: str, sql: str) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


async def settle(system: System, accepted: set[str], db: dict[str, str], timeout: float = 120) -> Outcome:
    """Wait for the pipeline to drain, then count what reached routing and reporting."""

    async def drained() -> bool:
        routed_ids = {r[0] for r in await scalar_rows(db["routing"], "SELECT incident_id FROM routed_incident")}
        counted_ids = {r[0] for r in await scalar_rows(db["reporting"], "SELECT incident_id FROM incident_fact")}
        return accepted <= routed_ids and accepted <= counted_ids

    with contextlib.suppress(AssertionError):  # what has not arrived by then is counted as lost below
        await eventually(drained, timeout=timeout, interval=0.5, what="the pipeline drained")
    await asyncio.sleep(1.0)  # anything still in flight would show up as a duplicate now
    intake_rows = await scalar_rows(db["intake"], "SELECT report_id, count(*) FROM incident GROUP BY report_id")
    doubled_reports = sum(n - 1 for _, n in intake_rows)
    doubled_assignments = await scalar_rows(
        db["routing"],
        "SELECT incident_id, unit_id, count(*) FROM assignment WHERE origin = 'routing' GROUP BY incident_id, unit_id HAVING count(*) > 1",
    )
    routed_ids = {r[0] for r in await scalar_rows(db["routing"], "SELECT incident_id FROM routed_incident")}
    counted_ids = {r[0] for r in await scalar_rows(db["reporting"], "SELECT incident_id FROM incident_fact")}
    stray = routed_ids - accepted  # routed but never accepted: a phantom case
    return Outcome(
        submitted=0,
        accepted=len(accepted),
        routed=len(accepted & routed_ids),
        duplicates=doubled_reports + len(doubled_assignments) + len(stray),
        lost=len(accepted - (routed_ids & counted_ids)),
        counted=len(accepted & counted_ids),
    )


def check(outcome: Outcome, name: str) -> None:
    print("\n" + outcome.line(name))
    assert outcome.accepted == outcome.submitted
    assert (outcome.lost, outcome.duplicates) == (0, 0)
    assert outcome.routed == outcome.counted == outcome.accepted


def db_urls(system: System) -> dict[str, str]:
    return {s: system.db(s) for s in ("intake", "routing", "reporting")}


async def summary_total(system: System) -> int:
    """Incidents of commune 25349 in 2025 as reporting's summary counts them."""
    async with httpx.AsyncClient(base_url=system.url("reporting"), timeout=10) as http:
        answer = await http.get(
            "/v1/summaries/25349", params={"period": "2025"}, headers={"Authorization": f"Bearer {system.tokens['25349.cp_officer']}"}
        )
    answer.raise_for_status()
    return answer.json()["indicators"]["incidents_total"]


def ensure_rabbitmq() -> None:
    if rabbitmqctl("-q", "status", check=False).returncode != 0:
        subprocess.run([shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server", "-detached"], check=True)
        rabbitmqctl("-q", "await_startup")


def pg_cluster() -> tuple[str, str]:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    return version, "main"


def pg_ctl(action: str) -> None:
    version, cluster = pg_cluster()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action, *(["-m", "fast"] if action == "stop" else [])], check=True, capture_output=True, timeout=120)


def pg_ready() -> bool:
    version, cluster = pg_cluster()
    return "online" in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout


@pytest.fixture
def chaos_system(amqp_url, tmp_path):
    """A fresh system on a vhost of its own; stopped (and the broker and database restored) after."""
    systems: list[System] = []
    base = amqp_url.rsplit("/", 1)[0] + "/"
    scope = vhost(base)
    own_url = scope.__enter__()

    def make(extra_env: dict[str, str] | None = None) -> System:
        system = System(tmp_path / f"s{len(systems)}", own_url, PORTS, extra_env)
        system.prepare()
        system.start_all()
        systems.append(system)
        return system

    yield make
    ensure_rabbitmq()
    if not pg_ready():
        pg_ctl("start")
    for system in systems:
        system.stop_all()
    scope.__exit__(None, None, None)
