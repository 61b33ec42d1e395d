"""Prometheus: one registry per service, HTTP RED metrics, and the shared infrastructure metrics.

Labels are low-cardinality codes only: never ids, names or anything of a child.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send


def new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class OutboxMetrics:
    published: Counter
    backlog: Gauge
    oldest_age: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> "OutboxMetrics":
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

    @classmethod
    def create(cls, registry: CollectorRegistry) -> "ConsumerMetrics":
        return cls(
            duplicates=Counter(
                "baove_events_duplicate", "Redelivered events skipped by the inbox", ["queue"], registry=registry
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
        route = _route_template(scope)
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope["method"]
            self.duration.labels(method, route).observe(time.perf_counter() - start)
            self.requests.labels(method, route, f"{status['code'] // 100}xx").inc()


def _route_template(scope: Scope) -> str:
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", "other")
    return "unmatched"


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


__all__ = ["ConsumerMetrics", "HttpMetricsMiddleware", "OutboxMetrics", "Request", "metrics_response", "new_registry"]
