"""What every service is made of: database, broker, outbox relay, token check, health and metrics.

Each service's `app.py` builds one `Runtime` and adds its own routes and subscribers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from faststream import AckPolicy
from faststream.exceptions import RejectMessage
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, Gauge
from pydantic import BaseModel, ValidationError
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from shared import audit, auth, errors, inbox, migrate, outbox
from shared import logging as baove_logging
from shared.db import make_engine, make_sessionmaker, ping, scrub
from shared.deadletters import dead_letter_counts, drop_dead_letters
from shared.events import Envelope, Event, IncidentErased, parse_payload
from shared.groupcommit import GroupCommit
from shared.loops import Backoff, repeat
from shared.metrics import ConsumerMetrics, HttpMetricsMiddleware, OutboxMetrics, metrics_response, new_registry
from shared.settings import ServiceSettings, amqp_user
from shared.topology import EVENTS, ConsumerQueue, declare, producer_of, queues_of
from shared.uow import UnitOfWork

log = logging.getLogger("baove.runtime")

Work = Callable[[AsyncSession, Event, Envelope], Awaitable[list[Envelope]]]


class DatabaseUnavailable(RuntimeError):
    """A consumer gave up waiting for its database; the message goes back to the broker."""

BatchWork = Callable[[AsyncSession, list[tuple[Event, Envelope]]], Awaitable[list[Envelope]]]


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over the limit before they are read into memory."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_json(send, 413, {"detail": f"request body is over {self.max_bytes} bytes"})
                return
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await _send_json(send, 413, {"detail": f"request body is over {self.max_bytes} bytes"})


async def _send_json(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Runtime:
    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        metadata: MetaData,
        migrations: Path,
        *,
        version: str = "1",
        description: str = "",
        max_body_bytes: int = 256 * 1024,
    ) -> None:
        self.name = name
        self.settings = settings
        self.common = settings.common
        self.migrations = migrations
        self.db_url = settings.db_url(name)
        self.engine = make_engine(self.db_url)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.auth_engine = make_engine(self.common.auth_url(), pool_size=2)
        self.auth_sessionmaker = make_sessionmaker(self.auth_engine)
        self.verifier = auth.TokenVerifier(self.auth_sessionmaker, idle_timeout=timedelta(minutes=self.common.session_idle_minutes))
        self.denials = audit.DenialLog()
        self.outbox_table = metadata.tables["outbox_message"]
        self.inbox_table = metadata.tables["inbox_message"]
        self.registry = new_registry()
        self.consumer_metrics = ConsumerMetrics.create(self.registry)
        self.broker = RabbitBroker(
            settings.broker_url(),
            default_channel=Channel(
                publisher_confirms=True, on_return_raises=True, prefetch_count=settings.prefetch_count
            ),
            graceful_timeout=settings.graceful_timeout,
            middlewares=[RabbitPrometheusMiddleware(registry=self.registry, app_name=name)],
            app_id=f"baove-{name}",
            logger=baove_logging.broker_logger(name),
            description=description,
        )
        self.relay = outbox.OutboxRelay(
            self.sessionmaker,
            self.outbox_table,
            self.broker,
            OutboxMetrics.create(self.registry),
            batch_size=settings.relay_batch_size,
            user_id=amqp_user(settings.broker_url()),
        )
        self.queues: tuple[ConsumerQueue, ...] = queues_of(name)
        self.dead_letters = Gauge(
            "baove_dead_letters", "Messages waiting in this service's dead-letter queues", ["queue"], registry=self.registry
        )
        self._watch_task: asyncio.Task | None = None
        # A service's own start-up work (after migrations, before consuming) and its loops
        # (started after the broker, cancelled before it stops).
        self.startup: list[Callable[[], Awaitable[None]]] = []
        self.background: dict[str, Callable[[], Awaitable[None]]] = {}
        self._background_tasks: list[asyncio.Task] = []
        # The tables where this service keeps personal data: vacuumed on PostgreSQL after an erasure.
        self.personal_tables: tuple[str, ...] = ()
        self._forgetting: set[asyncio.Task] = set()
        self._closing: set[asyncio.Task] = set()  # readiness probes' channels being closed
        self.run_migrations = True
        self.api = FastAPI(
            title=f"baove {name}",
            version=version,
            description=description,
            lifespan=self._lifespan,
        )
        self.api.state.runtime = self
        self.api.state.verifier = self.verifier
        self.api.add_middleware(HttpMetricsMiddleware, registry=self.registry)
        self.api.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
        self._install_handlers()
        self._install_probes()
        self.api.openapi = self._openapi

    def _openapi(self) -> dict:
        """The OpenAPI document, with the error answers every protected route can give."""
        if self.api.openapi_schema:
            return self.api.openapi_schema
        schema = get_openapi(
            title=self.api.title, version=self.api.version, description=self.api.description, routes=self.api.routes
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorDetail"] = ERROR_SCHEMA
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                common = {"413": "request body too large", "503": "database unavailable; retry after Retry-After seconds"}
                if path.startswith("/v1/"):
                    operation["security"] = [{"bearer": []}]
                    common |= {"401": "missing, unknown, expired or revoked token", "403": "outside the token's scope", "404": "not found for this principal"}
                for code, text in common.items():
                    responses.setdefault(code, {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}})
        self.api.openapi_schema = schema
        return schema

    # -- composition ---------------------------------------------------------------------

    def migrate(self) -> None:
        migrate.upgrade(self.migrations, self.db_url)
        migrate.upgrade(AUTH_MIGRATIONS, self.common.auth_admin_url())

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI):
        self.settings.check_secrets()
        self.settings.check_broker_user(self.name)
        if self.run_migrations:
            await asyncio.to_thread(self.migrate)
        for hook in self.startup:
            await hook()
        await self.broker.connect()
        # The whole topology, so an event is queued for its consumers even before they first start (a mandatory
        # publish with no queue bound would bounce): its own queues always, others' when missing and this user may.
        await declare(self.broker, own=self.queues)
        await self.broker.start()
        self.relay.start()
        self._watch_task = asyncio.create_task(self._watch_dead_letters(), name="dead-letter-watch")
        self._background_tasks = [asyncio.create_task(run(), name=name) for name, run in self.background.items()]
        log.info("service started", extra={"service_port": self.settings.port})
        try:
            yield
        finally:
            self._watch_task.cancel()
            for task in self._background_tasks:
                task.cancel()
            # A loop cancelled inside a transaction rolls it back; its committed events stay in the outbox.
            await asyncio.gather(*self._background_tasks, return_exceptions=True)
            await self.relay.stop()
            # Stops consuming first, then waits up to graceful_timeout for handlers in flight.
            await self.broker.stop()
            await self.engine.dispose()
            await self.auth_engine.dispose()

    def _install_handlers(self) -> None:
        errors.install_handlers(self.api)

        @self.api.exception_handler(errors.Unauthenticated)
        @self.api.exception_handler(errors.Forbidden)
        async def _denied(request: Request, exc: errors.DomainError) -> JSONResponse:
            await self._audit_denial(request, exc)
            return errors.answer(exc)

        @self.api.exception_handler(RequestValidationError)
        async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
            return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)

        @self.api.exception_handler(OperationalError)
        @self.api.exception_handler(DBAPIError)
        @self.api.exception_handler(ConnectionError)
        @self.api.exception_handler(OSError)
        async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
            log.error("database unavailable", extra={"error": type(exc).__name__})
            return JSONResponse(
                {"detail": "the database is unavailable; nothing was stored, try again"},
                status_code=503,
                headers={"Retry-After": "5"},
            )

    async def _audit_denial(self, request: Request, exc: errors.DomainError) -> None:
        """A 401 or 403 on a protected endpoint goes to the audit (throttled: audit.DenialLog); sign-in audits its own."""
        route = request.scope.get("route")
        endpoint = f"{request.method} {getattr(route, 'path', request.url.path[:150])}"
        if not request.url.path.startswith("/v1/") or endpoint in SELF_AUDITED:
            return
        principal = getattr(request.state, "principal", None)
        token_id = None
        if principal is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                try:
                    token_id = await self.verifier.token_id(token.strip())
                except (DBAPIError, OSError) as exc:  # the refusal is answered all the same; record_denial logs its own failure
                    log.warning("refused token not looked up", extra={"error": type(exc).__name__})
        await audit.record_denial(
            self.auth_sessionmaker, self.denials, self.name, endpoint, exc.status, str(exc)[:200],
            principal=principal, token_id=token_id, address=request.client.host if request.client else None,
        )

    def _install_probes(self) -> None:
        @self.api.get("/healthz", include_in_schema=True, tags=["operations"])
        async def healthz() -> dict[str, str]:
            """The process is up."""
            return {"status": "ok", "service": self.name}

        @self.api.get(
            "/readyz",
            tags=["operations"],
            response_model=Readiness,
            responses={503: {"model": Readiness, "description": "not ready: a check failed"}},
        )
        async def readyz() -> JSONResponse:
            """Broker and database reachable, and every queue of this service has a consumer."""
            checks = await self.readiness()
            ok = all(value == "ok" for value in checks.values())
            return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

        @self.api.get(
            "/metrics",
            tags=["operations"],
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}, "description": "Prometheus text format"}},
        )
        async def metrics():
            """Prometheus text format."""
            return metrics_response(self.registry)

    async def readiness(self) -> dict[str, str]:
        """Every check bounded, the database's beside the broker's: /readyz answers within about 4 s (the Kubernetes
        probe gives it 5) with what failed, rather than leaving the probe to time out and learn nothing."""

        async def database() -> str:
            try:
                await asyncio.wait_for(ping(self.engine), 3)
                return "ok"
            except Exception as exc:
                return f"unreachable: {type(exc).__name__}"

        async def broker() -> dict[str, str]:
            if not await self.broker.ping(timeout=2):
                return {"broker": "unreachable"}
            states = await asyncio.gather(*(self._consumer_state(spec.name) for spec in self.queues))
            return {"broker": "ok", **{f"consumer:{spec.name}": state for spec, state in zip(self.queues, states)}}

        database_state, broker_states = await asyncio.gather(database(), broker())
        return {"database": database_state, **broker_states}

    async def _watch_dead_letters(self, interval: float = 15.0) -> None:
        """Keep the dead-letter gauge fresh; an alert fires on any message there."""

        async def count() -> None:
            channel = await self.broker._connection.channel()  # noqa: SLF001 - passive declares only
            try:
                for queue, n in (await dead_letter_counts(channel, self.queues)).items():
                    self.dead_letters.labels(queue).set(n)
            finally:
                await channel.close()

        def failed(exc: Exception) -> None:  # broker away: readiness reports it; try again later
            log.debug("dead-letter count unavailable", extra={"error": type(exc).__name__})

        await repeat(count, pause=interval, failed=failed)

    async def _consumer_state(self, queue_name: str, timeout: float = 2.0) -> str:
        """The queue's state: ok when it has a consumer (this replica's or another's). Bounded: right after a reconnection
        the connection may still be restoring its channels, or the queue electing a leader, and a passive declare waits."""
        channel = None
        try:
            async with asyncio.timeout(timeout):
                channel = await self.broker._connection.channel()  # noqa: SLF001 - a throwaway channel for a passive declare
                queue = await channel.declare_queue(queue_name, passive=True)
                count = queue.declaration_result.consumer_count
        except Exception as exc:
            return f"unknown: {type(exc).__name__}"
        finally:
            if channel is not None and not channel.is_closed:
                self._close_later(channel)
        return "ok" if count > 0 else "no consumer"

    def _close_later(self, channel) -> None:
        """Close a probe's channel without making the probe wait (a close can hang as long as the declare did)."""
        task = asyncio.create_task(channel.close(), name="close-probe-channel")
        self._closing.add(task)
        task.add_done_callback(lambda done: (self._closing.discard(done), done.cancelled() or done.exception()))

    # -- consumers -----------------------------------------------------------------------

    def subscriber(self, spec: ConsumerQueue, work: Work, batch_work: BatchWork | None = None):
        """Register `work` on a queue: inbox dedupe, the work and its events in one transaction, then ack.

        Deliveries that arrive together share a transaction (group commit); `batch_work`, when given,
        folds such a batch in fewer statements than `work` one event at a time.
        """

        async def run_batch(items: list[tuple[Envelope, Event]]) -> None:
            await self._while_database_away(lambda: self._consume_batch(spec, items, work, batch_work))

        async def run_one(item: tuple[Envelope, Event]) -> None:
            envelope, event = item
            token = baove_logging.correlation_id.set(envelope.correlation_id)
            try:
                await self._consume(spec, envelope, event, work)
            finally:
                baove_logging.correlation_id.reset(token)

        group = GroupCommit(
            spec.name,
            run_batch,
            run_one,
            max_batch=max(1, self.settings.prefetch_count),
            shared_failure=lambda exc: isinstance(exc, DatabaseUnavailable),
        )

        async def handle(message: RabbitMessage) -> None:
            try:
                envelope = Envelope.model_validate_json(message.body)
                event = parse_payload(envelope)
            except (ValidationError, KeyError, ValueError) as exc:
                # It can never succeed: dead-letter it now rather than after the delivery limit.
                log.error("malformed event dead-lettered", extra={"queue": spec.name, "error": type(exc).__name__})
                raise RejectMessage() from exc
            forgery = self.forgery(message, envelope)
            if forgery:
                # Not believed, not retried: dead-lettered for the operator, named by type and claimed producer only.
                self.consumer_metrics.forged.labels(spec.name, envelope.event_type).inc()
                log.error(
                    "forged event dead-lettered",
                    extra={"queue": spec.name, "event_type": envelope.event_type, "claimed_producer": forgery, "event_id": str(envelope.event_id)},
                )
                raise RejectMessage()
            await group.submit((envelope, event))

        handle.__name__ = f"handle_{spec.purpose}"
        handle.__doc__ = spec.description
        return self.broker.subscriber(
            spec.queue(),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            description=spec.description,
            title=spec.name,
        )(handle)

    def forgery(self, message: RabbitMessage, envelope: Envelope) -> str | None:
        """None when the event comes from its producer; else who sent it (the AMQP user_id, which the broker vouches for).

        Its producer is PRODUCERS' service for its type, whose broker user must be the message's user_id; a message
        through baove.events must also carry its type as routing key (topic permissions check the key, not the body)."""
        raw = message.raw_message
        sender = raw.user_id or "none"
        producer = producer_of(envelope.event_type)
        if producer is None or envelope.producer != producer:
            return f"{sender} (as {envelope.producer})"
        if raw.exchange == EVENTS.name and raw.routing_key != envelope.event_type:
            return f"{sender} (with routing key {raw.routing_key})"
        expected = self.common.broker_user(producer)
        return None if expected is not None and raw.user_id == expected else sender

    async def _consume(self, spec: ConsumerQueue, envelope: Envelope, event: Event, work: Work) -> None:
        async def once() -> None:
            async with self.unit_of_work() as uow:
                if not await inbox.claim(uow.session, self.inbox_table, spec.name, str(envelope.event_id)):
                    self.consumer_metrics.duplicates.labels(spec.name).inc()
                    return
                await uow.stage(*await work(uow.session, event, envelope))

        await self._while_database_away(once)
        self._after_erasures([event])

    async def _while_database_away(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Run a consumer transaction; while the database is away, wait and try again (about 40 s) rather than
        burn the delivery limit on healthy messages, then give up: the broker redelivers."""
        backoff = Backoff(0.5, 8.0)
        for n in range(8):
            try:
                return await attempt()
            except (OperationalError, ConnectionError, OSError) as exc:
                log.warning("database unavailable, retrying", extra={"attempt": n, "error": type(exc).__name__})
                await asyncio.sleep(backoff.delay())
        raise DatabaseUnavailable("database unavailable after retries; the broker will redeliver")

    async def _consume_batch(
        self, spec: ConsumerQueue, items: list[tuple[Envelope, Event]], work: Work, batch_work: BatchWork | None
    ) -> None:
        """Several events in one transaction: claim them in one statement, fold the new ones, stage what they produce."""
        async with self.unit_of_work() as uow:
            session = uow.session
            fresh = await inbox.claim_many(session, self.inbox_table, spec.name, [str(e.event_id) for e, _ in items])
            todo: list[tuple[Envelope, Event]] = []
            for envelope, event in items:
                event_id = str(envelope.event_id)
                if event_id in fresh:
                    fresh.discard(event_id)  # a copy later in the same batch is a duplicate too
                    todo.append((envelope, event))
                else:
                    self.consumer_metrics.duplicates.labels(spec.name).inc()
            produced: list[Envelope] = []
            if batch_work is not None:
                produced = await batch_work(session, [(event, envelope) for envelope, event in todo])
            else:
                for envelope, event in todo:
                    token = baove_logging.correlation_id.set(envelope.correlation_id)
                    try:
                        produced.extend(await work(session, event, envelope))
                    finally:
                        baove_logging.correlation_id.reset(token)
            await uow.stage(*produced)
        self._after_erasures([event for _, event in items])

    def _after_erasures(self, events: list[Event]) -> None:
        """Once an erasure is committed: its bytes out of the database files and its dead letters out of the queues."""
        erased = {event.incident_id for event in events if isinstance(event, IncidentErased)}
        if erased:
            self.forget_later(erased)

    def forget_later(self, incident_ids: set[str]) -> None:
        """`forget` in the background (the consumer acks without waiting for a checkpoint)."""
        task = asyncio.create_task(self.forget(incident_ids), name="forget")
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def forget(self, incident_ids: set[str]) -> None:
        """After erased incidents' rows were blanked: scrub the database files, drop their dead letters from this
        service's dead-letter queues. A failure is logged; the next erasure (or the retention job) scrubs again."""
        try:
            await scrub(self.engine, self.personal_tables)
        except Exception as exc:
            log.warning("database not scrubbed after an erasure", extra={"error": type(exc).__name__})
        if not self.queues or not self.broker._connection:  # noqa: SLF001 - not connected (the CLI): nothing to drop
            return
        try:
            channel = await self.broker._connection.channel()  # noqa: SLF001 - a channel of its own for basic.get
            try:
                dropped = await drop_dead_letters(channel, self.queues, incident_ids)
            finally:
                await channel.close()
        except Exception as exc:
            log.warning("dead letters of an erased incident not dropped", extra={"error": type(exc).__name__})
            return
        if any(dropped.values()):
            log.info("dead letters of erased incidents dropped", extra={"dropped": dropped, "incidents": len(incident_ids)})

    def unit_of_work(self) -> UnitOfWork:
        """A transaction on this service's database whose staged events the relay publishes after commit."""
        return UnitOfWork(self.sessionmaker, self.outbox_table, self.relay.notify)

    async def audit_reads(self, principal: auth.Principal, endpoint: str, incident_ids) -> None:
        """Record that `principal` read these incidents' details (domain.md 7: every read is logged)."""
        await audit.record_reads(self.auth_sessionmaker, self.name, principal, endpoint, incident_ids)


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


ERROR_SCHEMA = {
    "title": "ErrorDetail",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"description": "what is wrong: a sentence, or a list naming each bad field"}},
}


# A quoted value in a validator's message: ours quote what they refuse with !r (pydantic's own messages quote
# only the allowed values, so they are left alone).
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's error list without the submitted values (they may hold a child's data).

    Only loc, msg and type are kept (input and ctx carry the value); a validator's message that quotes the
    submitted text, or a part of it, gets '…' in its place.
    """
    cleaned = []
    for error in errors:
        kept = {k: v for k, v in error.items() if k in ("loc", "msg", "type")}
        submitted = error.get("input")
        if error.get("type") == "value_error" and isinstance(submitted, str) and submitted:
            kept["msg"] = QUOTED.sub(lambda m, text=submitted: "'…'" if m.group()[1:-1] and m.group()[1:-1] in text else m.group(), kept["msg"])
        cleaned.append(kept)
    return cleaned


AUTH_MIGRATIONS = Path(__file__).parent / "auth_migrations"
# Refusals audited by the use case itself (a failed sign-in is `sign_in_failed`), not again as `denied`.
SELF_AUDITED = {"POST /v1/sessions"}
