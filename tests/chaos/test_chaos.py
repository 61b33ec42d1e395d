"""Nothing lost, nothing doubled: 2,000 incidents through crashes, broker and database outages and poison."""

from __future__ import annotations

import asyncio
import time

import aio_pika

from tests.chaos.conftest import N, Outcome, check, db_urls, ensure_rabbitmq, payloads, pg_ctl, settle, summary_total
from tests.harness import post_incidents, rabbitmqctl


async def run_with(system, attack, tag: str, db: dict[str, str] | None = None) -> tuple[Outcome, list]:
    """Post N incidents while `attack` runs beside them; settle and count."""
    answered, _ = await asyncio.gather(post_incidents(system, payloads(N, tag), concurrency=16), attack())
    accepted = {incident_id for incident_id, _, status in answered if status == 202}
    outcome = await settle(system, accepted, db or db_urls(system))
    outcome.submitted = N
    return outcome, answered


class TestRoutingKilled:
    async def test_routing_killed_twice_under_load_loses_and_doubles_nothing(self, chaos_system):
        system = chaos_system()

        async def attack():
            for _ in range(2):
                await asyncio.sleep(4)
                system.kill("routing")
                await asyncio.sleep(1)
                system.start("routing")
                await asyncio.to_thread(system.wait_ready, "routing")

        outcome, _ = await run_with(system, attack, "kill")
        check(outcome, "routing SIGKILL x2")
        assert await summary_total(system) == outcome.accepted


class TestBrokerRestarted:
    async def test_rabbitmq_stopped_and_started_under_load_loses_and_doubles_nothing(self, chaos_system):
        system = chaos_system()

        async def attack():
            await asyncio.sleep(3)
            await asyncio.to_thread(rabbitmqctl, "stop_app")
            await asyncio.sleep(5)
            await asyncio.to_thread(rabbitmqctl, "start_app")
            await asyncio.to_thread(ensure_rabbitmq)

        outcome, _ = await run_with(system, attack, "broker")
        check(outcome, "RabbitMQ stopped and started")
        # Every consumer came back by itself: each service says it is ready again.
        for service in ("intake", "routing", "reporting"):
            await asyncio.to_thread(system.wait_ready, service, 60)
        assert await summary_total(system) == outcome.accepted


class TestPoisonMessage:
    async def test_a_poison_message_is_dead_lettered_and_the_pipeline_goes_on(self, chaos_system):
        system = chaos_system()
        amqp_url = system.env["BAOVE_AMQP_URL"]
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("baove.events")
        # One poison for routing's queue, one for reporting's (which is bound to incident.recorded, not incident.reported).
        for n, key in enumerate(("incident.reported", "incident.recorded"), 1):
            await exchange.publish(
                aio_pika.Message(f'{{"event_type": "{key}", "payload": "poison"}}'.encode(), delivery_mode=2, message_id=f"poison-{n}"),
                routing_key=key,
            )

        async def nothing():
            return None

        outcome, _ = await run_with(system, nothing, "poison")
        check(outcome, "poison message")
        for queue in ("routing.incidents.dlq", "reporting.events.dlq"):
            dlq = await channel.declare_queue(queue, passive=True)
            assert dlq.declaration_result.message_count == 1, queue
        await connection.close()


class TestDatabaseDown:
    async def test_postgresql_down_for_ten_seconds_answers_503_and_loses_nothing(self, chaos_system, pg_database):
        urls = {s: await asyncio.to_thread(pg_database) for s in ("intake", "routing", "reporting", "auth")}
        env = {f"BAOVE_{s.upper()}_DATABASE_URL": url for s, url in urls.items() if s != "auth"}
        env["BAOVE_AUTH_DATABASE_URL"] = urls["auth"]
        system = await asyncio.to_thread(chaos_system, env)
        outage: dict[str, float] = {}

        async def attack():
            await asyncio.sleep(3)
            outage["start"] = time.time()
            await asyncio.to_thread(pg_ctl, "stop")
            await asyncio.sleep(10)
            await asyncio.to_thread(pg_ctl, "start")
            outage["end"] = time.time()

        db = {s: url for s, url in urls.items() if s != "auth"}
        refusals: list[float] = []
        # The client retries each 503 with the same report_id, as the contract asks.
        answered, _ = await asyncio.gather(
            post_incidents(system, payloads(N, "pg"), concurrency=16, refusals=refusals), attack()
        )
        accepted = {incident_id for incident_id, _, status in answered if status == 202}
        outcome = await settle(system, accepted, db)
        outcome.submitted = N
        print(f"\n503 answers during the outage: {len(refusals)}")
        assert refusals and all(outage["start"] - 1 <= t <= outage["end"] + 15 for t in refusals)
        check(outcome, "PostgreSQL down 10 s")
        assert await summary_total(system) == outcome.accepted
