"""Prometheus metrics of the facade: requests, latency, queries by outcome, budget refusals.

Each app has its own registry, so several apps in one process (tests) never share counters.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dpkube.models.conditions import Reason
from dpkube.models.dpquery import Mode
from dpkube.models.payloads import Library

log = logging.getLogger("dpkube.api.access")

BUDGET_REFUSALS = frozenset({Reason.INSUFFICIENT_BUDGET, Reason.NO_BUDGET_GRANT, Reason.USER_NOT_ALLOWED,
                             Reason.NOT_EXPRESSIBLE_IN_ZCDP})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ApiMetrics:
    """The facade's collectors in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dpkube_api_requests_total", "HTTP requests by route and status code.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("dpkube_api_request_seconds", "HTTP request latency by route.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queries = Counter("dpkube_api_queries_total", "Queries submitted through the API, by final phase.",
                               ["library", "mode", "phase"], registry=self.registry)
        self.budget_refusals = Counter("dpkube_api_budget_refusals_total",
                                       "Queries refused for budget reasons, by reason.",
                                       ["reason"], registry=self.registry)

    def query_ended(self, library: Library, mode: Mode, phase: str, reason: str) -> None:
        self.queries.labels(library.value, mode.value, phase).inc()
        if reason in BUDGET_REFUSALS:
            self.budget_refusals.labels(reason).inc()

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts, times and logs every HTTP request under its route template (never the raw path, body or headers)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = Request(scope).method
            self.metrics.requests.labels(method, template, str(status["code"])).inc()
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(method, template).observe(elapsed)
            log.info("request", extra={"method": method, "route": template, "status": status["code"],
                                       "seconds": round(elapsed, 6)})
