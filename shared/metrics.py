"""Prometheus: one registry per service, HTTP RED metrics, and the shared infrastructure metrics.

Labels are low-cardinality codes only: never ids, names or anything of a child.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send


def new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class OutboxMetrics:
    published: Counter
    backlog: Gauge
    oldest_age: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> OutboxMetrics:
        return cls(
            published=Counter("baove_outbox_published", "Events confirmed by the broker from the outbox", registry=registry),
            backlog=Gauge("baove_outbox_backlog", "Events in the outbox not yet confirmed by the broker", registry=registry),
            oldest_age=Gauge(
                "baove_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event", registry=registry
            ),
        )


@dataclass
class ConsumerMetrics:
    duplicates: Counter
    forged: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsumerMetrics:
        return cls(
            duplicates=Counter(
                "baove_events_duplicate", "Redelivered events skipped by the inbox", ["queue"], registry=registry
            ),
            forged=Counter(
                "baove_events_forged",
                "Events dead-lettered because their AMQP user_id is not their producer's broker user",
                ["queue", "event_type"],
                registry=registry,
            ),
        )


@dataclass
class IntakeMetrics:
    reported: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IntakeMetrics:
        return cls(
            reported=Counter(
                "baove_incidents_reported", "Incidents accepted by intake", ["category", "urgency", "channel"], registry=registry
            )
        )


# Fitted to the acknowledgement deadlines (1 h, 4 h, 24 h, 72 h) so each deadline is a bucket edge.
ACK_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200, 604800)


@dataclass
class RoutingMetrics:
    assignments: Counter
    ack_seconds: Histogram
    overdue: Gauge
    escalations: Counter
    decision_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RoutingMetrics:
        return cls(
            assignments=Counter("baove_assignments_created", "Assignments made", ["unit_type", "role"], registry=registry),
            ack_seconds=Histogram(
                "baove_assignment_ack_seconds", "Time from assignment to acknowledgement", ["unit_type"],
                buckets=ACK_BUCKETS, registry=registry,
            ),
            overdue=Gauge("baove_assignments_overdue", "Pending assignments past their deadline", ["unit_type"], registry=registry),
            escalations=Counter("baove_escalations", "Incidents escalated for an overdue assignment", registry=registry),
            decision_seconds=Histogram(
                "baove_routing_decision_seconds", "Time to decide and store the routing of one incident",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=registry,
            ),
        )


@dataclass
class NotifyMetrics:
    """Routing's notifier: what it delivered, what failed, and how long the oldest pending delivery has waited."""

    delivered: Counter
    failed_attempts: Counter
    given_up: Counter
    pending: Gauge
    oldest_pending_age: Gauge
    oldest_pending_emergency_age: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifyMetrics:
        return cls(
            delivered=Counter("baove_notifications_delivered", "Notifications a receiver accepted", ["channel"], registry=registry),
            failed_attempts=Counter(
                "baove_notification_attempts_failed", "Delivery attempts that failed (retried later)", ["channel"], registry=registry
            ),
            given_up=Counter(
                "baove_notifications_failed", "Notifications given up: out of attempts, or the endpoint gone", ["channel"], registry=registry
            ),
            pending=Gauge("baove_notifications_pending", "Notifications waiting to be delivered", registry=registry),
            oldest_pending_age=Gauge(
                "baove_notifications_oldest_pending_age_seconds", "Age of the oldest notification not yet delivered", registry=registry
            ),
            # Emergencies skip quiet hours and are sent at once: one pending for minutes is a unit not told.
            oldest_pending_emergency_age=Gauge(
                "baove_notifications_oldest_pending_emergency_age_seconds",
                "Age of the oldest notification of an emergency not yet delivered",
                registry=registry,
            ),
        )


@dataclass
class ReportingMetrics:
    generation_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ReportingMetrics:
        return cls(
            generation_seconds=Histogram(
                "baove_report_generation_seconds", "Time to compute a summary or generate a report", ["level"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0), registry=registry,
            )
        )


class HttpMetricsMiddleware:
    """Requests, errors and duration per route template (never the raw path: it holds ids)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "baove_http_requests", "HTTP requests by route and status class", ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "baove_http_request_duration_seconds", "HTTP request duration", ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method, route = scope["method"], route_template(scope)
            self.duration.labels(method, route).observe(time.perf_counter() - start)
            self.requests.labels(method, route, f"{status['code'] // 100}xx").inc()


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/v1/agencies/{unit_id}/assignments`), once the router has run.

    The router records the route it matched in the scope; included routers' routes are matched there
    and nowhere else, so the app's own route list cannot tell them apart.
    """
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


