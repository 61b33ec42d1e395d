"""The cluster (three nodes and HAProxy, once per run of this folder) and, per scenario, two replicas of each service."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field

import httpx
import pytest

from tests.cluster.bed import Cluster, haproxy
from tests.conftest import unavailable
from tests.deploy import broker_node
from tests.harness import SERVICES, System

# Replica A and replica B of intake, routing and reporting.
PORTS = ({"intake": 18301, "routing": 18302, "reporting": 18303}, {"intake": 18311, "routing": 18312, "reporting": 18313})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = broker_node.available() or (None if haproxy() else "haproxy not found (apt-get install haproxy)")
    if why:
        unavailable("a RabbitMQ cluster", why)
    bed = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        started = time.monotonic()
        bed.start()
        print(f"\ncluster of 3 nodes formed, every quorum queue on 3, HAProxy in front: {time.monotonic() - started:.0f} s")
        assert bed.fully_replicated(), bed.queues()
        yield bed
    finally:
        bed.stop()


@dataclass
class Replicas:
    """Two replicas of each service on one set of PostgreSQL databases, reaching the cluster through HAProxy."""

    a: System
    b: System
    samples: list[tuple[float, dict[str, bool]]] = field(default_factory=list)
    why: Counter[str] = field(default_factory=Counter)  # each failed check of a not-ready answer, as `intake.b: broker`

    @property
    def both(self) -> tuple[System, System]:
        return self.a, self.b

    def intakes(self) -> list[str]:
        return [s.url("intake") for s in self.both]

    async def readiness(self) -> dict[str, bool]:
        """Each replica's /readyz, as `intake.a: True`, given 5 s as deploy/k8s's readinessProbe gives it."""
        async with httpx.AsyncClient(timeout=5) as http:

            async def ready(name: str, system: System, service: str) -> bool:
                if service not in system.processes:
                    return False
                try:
                    answer = await http.get(system.url(service) + "/readyz")
                except httpx.HTTPError as exc:
                    self.why[f"{name}: {type(exc).__name__}"] += 1
                    return False
                if answer.status_code != 200:
                    checks = (
                        answer.json().get("checks", {}) if answer.headers.get("content-type", "").startswith("application/json") else {}
                    )
                    self.why.update(f"{name}: {check} {state}" for check, state in checks.items() if state != "ok")
                return answer.status_code == 200

            names = [(f"{service}.{tag}", system, service) for tag, system in (("a", self.a), ("b", self.b)) for service in SERVICES]
            answers = await asyncio.gather(*(ready(*name) for name in names))
            return {name: ok for (name, _, _), ok in zip(names, answers)}

    async def watch(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """Sample every replica's readiness until `stop`."""
        while not stop.is_set():
            self.samples.append((time.monotonic(), await self.readiness()))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    def not_ready_after(self, since: float, until: float, only: set[str] | None = None) -> tuple[float, str]:
        """Seconds from `since` to the last sample before `until` in which a replica (of `only`) was not ready, and
        which replicas were not ready then; (0, "") if none ever was."""
        late = [
            (t, ready)
            for t, ready in self.samples
            if since <= t < until and not all(ok for n, ok in ready.items() if only is None or n in only)
        ]
        if not late:
            return 0.0, ""
        t, ready = late[-1]
        return t - since, " ".join(n for n, ok in ready.items() if not ok and (only is None or n in only))

    async def all_ready(self, timeout: float = 120) -> float:
        started = time.monotonic()
        while not all((await self.readiness()).values()):
            assert time.monotonic() - started < timeout, await self.readiness()
            await asyncio.sleep(0.2)
        return time.monotonic() - started


@pytest.fixture
def replicas(cluster, pg_database, tmp_path):
    """Replica A prepares the databases (migrate, demo, tokens); then both run. Stopped after, the queues emptied."""
    urls = {s: pg_database() for s in (*SERVICES, "auth")}
    env = {
        **{f"BAOVE_{s.upper()}_DATABASE_URL": urls[s] for s in SERVICES},
        "BAOVE_AUTH_DATABASE_URL": urls["auth"],
        **{f"BAOVE_{s.upper()}_AMQP_URL": cluster.url(s) for s in SERVICES},
        # Each service publishes as its own broker user, as deploy/k8s/configmap.yaml says.
        "BAOVE_BROKER_USERS": json.dumps({s: s for s in SERVICES}),
        # Each replica's deadline watcher and report scheduler run often, to race the other replica's.
        "BAOVE_ROUTING_WATCH_INTERVAL_SECONDS": "2",
        "BAOVE_REPORTING_SCHEDULE_INTERVAL_SECONDS": "5",
        # Routing's clock 1 h 2 min ahead: every emergency report (1 h to acknowledge) is overdue at once and escalates.
        "BAOVE_ROUTING_CLOCK_OFFSET_SECONDS": "3720",
    }
    cluster.purge()
    pair = Replicas(System(tmp_path / "a", cluster.url("ops"), PORTS[0], env), System(tmp_path / "b", cluster.url("ops"), PORTS[1], env))
    try:
        pair.a.prepare()
        pair.b.data_dir.mkdir(parents=True)
        pair.b.tokens = pair.a.tokens
        for system in pair.both:
            for service in SERVICES:
                system.start(service)
        for system in pair.both:
            for service in SERVICES:
                system.wait_ready(service, 120)
        yield pair
    finally:
        for system in pair.both:
            system.stop_all()
