"""A province's set-up on one machine: a 3-node RabbitMQ cluster behind HAProxy, two replicas of each service on
PostgreSQL, 2,000 reports per scenario from clients that retry with the same report_id. Each scenario prints
submitted / accepted / routed / counted / duplicates / lost, the escalations and generated reports of the racing
replicas, and how long until every replica was ready again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass

from tests.chaos.conftest import N, Outcome, check, payloads, scalar_rows, settle, summary_total
from tests.harness import SERVICES, post_incidents
from tests.support import eventually

QUEUE = "routing.incidents"  # whose leader the first scenario stops


@dataclass
class Racing:
    emergencies: int
    escalated: int
    escalated_twice: int
    escalation_facts_doubled: int
    reports: int
    reports_twice: int

    def line(self) -> str:
        return (
            f"escalated {self.escalated} of {self.emergencies} emergencies (twice: {self.escalated_twice}; "
            f"counted twice in reporting: {self.escalation_facts_doubled}); reports generated {self.reports} (twice: {self.reports_twice})"
        )


def dbs(replicas) -> dict[str, str]:
    return {s: replicas.a.env[f"BAOVE_{s.upper()}_DATABASE_URL"] for s in SERVICES}


async def racing(replicas, accepted: set[str], emergencies: set[str]) -> Racing:
    """What the two deadline watchers and the two report schedulers did, on the same databases."""
    db = dbs(replicas)
    escalation = "SELECT incident_id, count(DISTINCT origin) FROM assignment WHERE origin LIKE 'escalation:%' GROUP BY incident_id"

    async def escalated() -> bool:
        return emergencies <= {r[0] for r in await scalar_rows(db["routing"], escalation)}

    await eventually(escalated, timeout=120, interval=1, what="every emergency escalated")
    await asyncio.sleep(3)  # a second escalation by the other replica would show now
    rows = await scalar_rows(db["routing"], escalation)
    facts = await scalar_rows(db["reporting"], "SELECT incident_id, count(*) FROM escalation_fact GROUP BY incident_id")
    reports = await scalar_rows(db["reporting"], "SELECT org_unit, period, summary FROM generated_report")
    same = Counter(
        (org, period, json.dumps(summary, sort_keys=True) if not isinstance(summary, str) else summary) for org, period, summary in reports
    )
    return Racing(
        emergencies=len(emergencies),
        escalated=len({r[0] for r in rows} & accepted),
        escalated_twice=sum(1 for _, n in rows if n > 1),
        escalation_facts_doubled=sum(1 for _, n in facts if n > 1),
        reports=len(reports),
        reports_twice=sum(n - 1 for n in same.values() if n > 1),
    )


async def under_load(replicas, attack, tag: str, seconds: float) -> tuple[Outcome, Racing, dict]:
    """Post N reports over about `seconds` to both intakes while `attack` runs and every replica's readiness is sampled."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(replicas.watch(stop))
    sent = payloads(N, tag)
    started = time.monotonic()
    answered, figures = await asyncio.gather(
        post_incidents(replicas.a, sent, concurrency=16, rate=N / seconds, intakes=replicas.intakes()), attack()
    )
    figures["posting"] = time.monotonic() - started
    stop.set()
    await watcher
    if replicas.why:
        figures["why replicas were not ready (samples)"] = ", ".join(f"{why} ×{n}" for why, n in replicas.why.most_common(6))
    accepted = {incident_id for incident_id, _, status in answered if status == 202}
    emergencies = {incident_id for (incident_id, _, status), p in zip(answered, sent) if status == 202 and p["urgency"] == "emergency"}
    outcome = await settle(replicas.a, accepted, dbs(replicas), timeout=240)
    outcome.submitted = N
    race = await racing(replicas, accepted, emergencies)
    return outcome, race, figures


def shown(value: float | tuple[float, str] | str) -> str:
    """A duration, with the replicas it was about when there were any."""
    if isinstance(value, str):
        return value
    seconds, who = value if isinstance(value, tuple) else (value, "")
    return f"{seconds:.1f} s" + (f" ({who})" if who else "")


def report(name: str, outcome: Outcome, race: Racing, figures: dict) -> None:
    check(outcome, name)
    print(f"{name}: {race.line()}; " + ", ".join(f"{k} {shown(v)}" for k, v in figures.items()))
    assert race.escalated == race.emergencies
    assert (race.escalated_twice, race.escalation_facts_doubled, race.reports_twice) == (0, 0, 0)


class TestQuorumLeaderLost:
    async def test_the_node_leading_the_quorum_queues_stopped_then_started(self, cluster, replicas):
        figures: dict[str, float | tuple[float, str]] = {}

        async def attack() -> dict:
            await asyncio.sleep(5)
            leader = await asyncio.to_thread(cluster.leader_of, QUEUE)
            stopped = time.monotonic()
            await asyncio.to_thread(leader.stop)
            figures["node stop took"] = time.monotonic() - stopped
            await asyncio.to_thread(
                eventually,
                lambda: cluster.queues().get(QUEUE, {}).get("leader") not in (None, "", leader.name),
                timeout=90,
                interval=1,
                what=f"a new leader of {QUEUE}",
            )
            await asyncio.sleep(10)
            figures["node away"] = time.monotonic() - stopped
            back = time.monotonic()
            await asyncio.to_thread(leader.start, 300)
            figures["node restarted"] = time.monotonic() - back
            figures["replicas not ready after the stop"] = replicas.not_ready_after(stopped, back)
            figures["all replicas ready after the restart"] = await replicas.all_ready()
            return figures

        outcome, race, figures = await under_load(replicas, attack, "leader", 40)
        report("quorum leader node stopped and started", outcome, race, figures)
        assert await summary_total(replicas.b) == outcome.accepted
        assert await asyncio.to_thread(cluster.fully_replicated), cluster.queues()


class TestPartition:
    async def test_one_node_cut_off_from_the_other_two_for_30_s_then_healed(self, cluster, replicas):
        """The node leading routing's queue is partitioned from the other two: pause_minority must pause it (its
        clients move to the majority through HAProxy), and after the heal it must rejoin with no partition left."""
        figures: dict[str, float | tuple[float, str]] = {}

        async def attack() -> dict:
            await asyncio.sleep(5)
            node = await asyncio.to_thread(cluster.leader_of, QUEUE)
            asked = time.monotonic()
            await asyncio.to_thread(cluster.cut_off, node)
            # The eval runs at the end of the command (most of it is the command-line tool's own start): the
            # partition is counted from its return.
            cut = time.monotonic()
            figures["rabbitmqctl eval cutting it off took"] = cut - asked
            await asyncio.to_thread(
                eventually,
                lambda: not cluster.rabbit_running(node),
                timeout=30,
                interval=0.5,
                what="the cut-off node paused (pause_minority)",
            )
            figures["minority node paused after"] = time.monotonic() - cut
            await asyncio.to_thread(
                eventually,
                lambda: cluster.queues().get(QUEUE, {}).get("leader") not in (None, "", node.name),
                timeout=60,
                interval=0.5,
                what=f"a new leader of {QUEUE} on the majority",
            )
            figures["new leader on the majority after"] = time.monotonic() - cut
            await asyncio.sleep(max(0.0, cut + 30 - time.monotonic()))
            healed = time.monotonic()
            figures["replicas not ready during the partition"] = replicas.not_ready_after(cut, healed)
            await asyncio.to_thread(cluster.heal, node)
            await asyncio.to_thread(
                eventually,
                lambda: cluster.rabbit_running(node),
                timeout=120,
                interval=0.5,
                what="the minority node running again after the heal",
            )
            figures["minority node running after the heal"] = time.monotonic() - healed
            figures["all replicas ready after the heal"] = await replicas.all_ready()
            return figures

        outcome, race, figures = await under_load(replicas, attack, "partition", 40)
        report("one node partitioned for 30 s, then healed", outcome, race, figures)
        assert await asyncio.to_thread(cluster.partitions) == {}
        assert await asyncio.to_thread(cluster.fully_replicated), cluster.queues()


class TestOneReplicaKilled:
    async def test_one_replica_of_each_service_sigkilled_while_the_other_keeps_working(self, cluster, replicas):
        figures: dict[str, float | tuple[float, str]] = {}

        async def attack() -> dict:
            await asyncio.sleep(5)
            killed = time.monotonic()
            for service in SERVICES:
                os.kill(replicas.b.processes[service].pid, signal.SIGKILL)
            for service in SERVICES:
                replicas.b.processes.pop(service).wait(10)
            await asyncio.sleep(10)
            back = time.monotonic()
            figures["survivors not ready while the others were dead"] = replicas.not_ready_after(killed, back, {f"{s}.a" for s in SERVICES})
            for service in SERVICES:
                replicas.b.start(service)
            figures["killed replicas ready after their restart"] = await replicas.all_ready()
            return figures

        outcome, race, figures = await under_load(replicas, attack, "replica", 40)
        report("one replica of each service SIGKILLed", outcome, race, figures)
        assert figures["survivors not ready while the others were dead"] == (0.0, "")


class TestRollingRestart:
    async def test_the_three_nodes_restarted_one_at_a_time_as_the_pre_stop_hook_does(self, cluster, replicas):
        figures: dict[str, float | tuple[float, str]] = {}

        async def attack() -> dict:
            await asyncio.sleep(3)
            for i, node in enumerate(cluster.nodes, 1):
                began = time.monotonic()
                figures[f"node {i} away"] = await asyncio.to_thread(cluster.restart_node, node, drain=True)
                figures[f"node {i} replicas not ready"] = replicas.not_ready_after(began, time.monotonic())
            figures["all replicas ready after the last"] = await replicas.all_ready()
            return figures

        outcome, race, figures = await under_load(replicas, attack, "rolling", 90)
        report("rolling restart of the three nodes", outcome, race, figures)
        assert await asyncio.to_thread(cluster.fully_replicated), cluster.queues()
