"""The delivery loop: sends the due deliveries on their channel and records each attempt.

A delivery is leased (its next attempt moved past the send's timeout) in one transaction, sent, then its
outcome recorded in another. A notifier killed in between sends it again after the lease, with the same
webhook-id: at least once, and receivers dedupe by that id. Nothing is kept in memory between ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update

from shared.clock import Clock
from shared.db import on_postgresql
from shared.enums import Urgency
from shared.loops import Backoff, repeat
from shared.metrics import NotifyMetrics
from shared.runtime import Runtime
from shared.settings import NotifySettings

from .channels import AmqpChannel, Channel, EmailChannel, Outcome, WebhookChannel
from .models import Delivery, Subscription
from .notify import retry_delay

log = logging.getLogger("baove.routing.notify")


class Notifier:
    def __init__(
        self,
        runtime: Runtime,
        settings: NotifySettings,
        metrics: NotifyMetrics,
        clock: Clock,
        channels: dict[str, Channel] | None = None,
        batch_size: int = 50,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.channels = channels or {
            "webhook": WebhookChannel(settings),
            "email": EmailChannel(settings),
            "amqp": AmqpChannel(runtime.broker),
        }
        self.batch_size = batch_size
        self.lease = timedelta(seconds=settings.timeout_seconds + 30)
        self._wake = asyncio.Event()
        self._measured_at = float("-inf")

    def wake(self) -> None:
        """New deliveries were committed: send them now rather than at the next tick."""
        self._wake.set()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.settings.interval_seconds)
        self._wake.clear()

    async def run(self) -> None:
        def failed(exc: Exception) -> None:
            log.warning("notification tick failed", extra={"error": type(exc).__name__})

        await repeat(self.tick, pause=self._pause, failed=failed, backoff=Backoff(0.5, 10.0))

    async def tick(self) -> int:
        """Send what is due now; the number of deliveries attempted."""
        leased = await self._lease(self.clock())
        if leased:
            outcomes = await asyncio.gather(*(self._send(s, d) for d, s in leased))
            await self._record([(d, s, o) for (d, s), o in zip(leased, outcomes, strict=True)])
        await self._measure()
        return len(leased)

    async def _lease(self, now: datetime) -> list[tuple[Delivery, Subscription]]:
        async with self.runtime.unit_of_work() as uow:
            session = uow.session
            due = (
                select(Delivery, Subscription)
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at)
                .limit(self.batch_size)
            )
            if on_postgresql(session):
                due = due.with_for_update(skip_locked=True, of=Delivery)
            rows = [(d, s) for d, s in (await session.execute(due)).all()]
            for d, _ in rows:
                d.next_attempt_at = now + self.lease
            await session.flush()
            session.expunge_all()
        return rows

    async def _send(self, subscription: Subscription, delivery: Delivery) -> Outcome:
        if not subscription.active:
            return Outcome(False, gone=True, error="the subscription is disabled")
        channel = self.channels.get(subscription.channel)
        if channel is None:
            return Outcome(False, error=f"no channel {subscription.channel}")
        try:
            return await channel.send(subscription, delivery)
        except Exception as exc:  # a channel's bug must not stop the others' deliveries
            log.error("notification channel failed", extra={"channel": subscription.channel, "error": type(exc).__name__})
            return Outcome(False, error=f"channel error ({type(exc).__name__})")

    async def _record(self, results: list[tuple[Delivery, Subscription, Outcome]]) -> None:
        now = self.clock()
        async with self.runtime.unit_of_work() as uow:
            session = uow.session
            for delivery, subscription, outcome in results:
                attempts = delivery.attempts + 1
                values: dict = {"attempts": attempts, "last_error": outcome.error}
                if outcome.delivered:
                    values |= {"status": "delivered", "delivered_at": now}
                    self.metrics.delivered.labels(subscription.channel).inc()
                elif outcome.gone:
                    values |= {"status": "dropped"}
                    self.metrics.given_up.labels(subscription.channel).inc()
                else:
                    self.metrics.failed_attempts.labels(subscription.channel).inc()
                    delay = retry_delay(self.settings, attempts)
                    if delay is None:
                        values |= {"status": "failed"}
                        self.metrics.given_up.labels(subscription.channel).inc()
                    else:
                        values |= {"next_attempt_at": now + timedelta(seconds=delay)}
                # Only a delivery still pending is moved: a second notifier's record never undoes this one's.
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery.id, Delivery.status == "pending")
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if outcome.gone:
                    await self._disable(session, subscription.id, outcome.error or "gone")

    async def _disable(self, session, subscription_id: str, reason: str) -> None:
        """A 410 (or a disabled subscription): no more attempts for any of its pending deliveries."""
        await session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id)
            .values(active=False, disabled_reason=reason[:200])
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.subscription_id == subscription_id, Delivery.status == "pending")
            .values(status="dropped", last_error=reason[:200])
            .execution_options(synchronize_session=False)
        )

    async def _measure(self) -> None:
        """The pending gauges, at most every `measure_seconds`: a tick runs on every commit's wake, and the count and
        minimums scan the pending rows (the alerts they feed wait minutes, not milliseconds)."""
        if time.monotonic() - self._measured_at < self.settings.measure_seconds:
            return
        self._measured_at = time.monotonic()
        emergency = case((Delivery.urgency == Urgency.emergency.value, Delivery.created_at))
        async with self.runtime.sessionmaker() as session:
            count, oldest, oldest_emergency = (
                await session.execute(
                    select(func.count(), func.min(Delivery.created_at), func.min(emergency)).where(Delivery.status == "pending")
                )
            ).one()
        now = self.clock()
        self.metrics.pending.set(count)
        self.metrics.oldest_pending_age.set((now - oldest).total_seconds() if oldest else 0)
        self.metrics.oldest_pending_emergency_age.set((now - oldest_emergency).total_seconds() if oldest_emergency else 0)
