"""A failing handler, on a real RabbitMQ, is logged without the child's name or birth date."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel
from sqlalchemy import text

from shared import topology
from shared.db import make_engine
from shared.logging import JsonFormatter
from tests.routing_support import reported, routing_runtime

CHILD = "Nguyễn Thị Bí Mật"
BORN = "2013-05-01"


@pytest.fixture
async def routing(tmp_path, amqp_url):
    runtime = await routing_runtime(tmp_path, amqp_url=amqp_url)
    yield runtime
    await runtime.broker.stop()
    await runtime.engine.dispose()
    await runtime.auth_engine.dispose()


async def deliver_and_watch(runtime, caplog, queue: str, error: str) -> str:
    """Publish a reported incident naming CHILD to `queue`; wait for the handler's failure in the logs; all logged text."""
    event = reported()
    child = event.case.children[0].model_copy(update={"full_name": CHILD, "birth_date": BORN})
    event = event.model_copy(update={"case": event.case.model_copy(update={"children": (child,)})})
    envelope = event.envelope(correlation_id=event.incident_id, producer="intake")
    caplog.set_level(logging.INFO)
    await runtime.broker.start()
    await runtime.broker.publish(envelope.model_dump_json().encode(), queue=queue, message_id=str(envelope.event_id))
    formatter = JsonFormatter("test")
    for _ in range(100):
        logged = "\n".join(f"{r.getMessage()}\n{formatter.format(r)}" for r in caplog.records)
        if error in logged:
            return logged
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {error} logged")


async def test_an_insert_the_database_refuses_is_logged_without_the_child(routing, caplog):
    async with routing.engine.begin() as conn:  # the database refuses the incident: a real IntegrityError
        await conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON routed_incident BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    logged = await deliver_and_watch(routing, caplog, topology.ROUTING_INCIDENTS.name, "IntegrityError")
    assert CHILD not in logged and BORN not in logged


async def test_an_error_quoting_the_event_is_logged_by_its_type_only(routing, caplog):
    class Child(BaseModel):
        age: int

    @routing.broker.subscriber("test.private.failing")
    async def failing(body: dict) -> None:
        child = body["payload"]["case"]["children"][0]
        Child.model_validate({"age": f"{child['full_name']}, born {child['birth_date']}"})  # its text quotes the input

    logged = await deliver_and_watch(routing, caplog, "test.private.failing", "ValidationError")
    assert CHILD not in logged and BORN not in logged


async def test_a_failing_insert_s_error_does_not_carry_the_child_on_either_database(database_url):
    """The engines hide a statement's parameters: PostgreSQL's error, like SQLite's, names no child."""
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE child (full_name TEXT UNIQUE, birth_date TEXT)"))
            await conn.execute(text("INSERT INTO child VALUES (:n, :b)"), {"n": CHILD, "b": BORN})
        with pytest.raises(Exception) as failure:  # noqa: PT011 - the driver's own, wrapped by SQLAlchemy
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO child VALUES (:n, :b)"), {"n": CHILD, "b": BORN})
    finally:
        await engine.dispose()
    assert type(failure.value).__name__ == "IntegrityError"
    assert CHILD not in str(failure.value) and BORN not in str(failure.value)
