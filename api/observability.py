"""Request ids, security headers, readiness and Prometheus metrics.

Business metrics are read from the database at scrape time, so they are right however many
API processes and Celery workers run; per-process histograms cover request latency.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem
from settings.logging import request_id_var

__all__ = ["install", "router"]

router = APIRouter(tags=["operations"])
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HTML_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class _BusinessCollector(Collector):
    """Counts from the ledgers themselves (cheap aggregate queries)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from payments.models import BankCredit, BankEvent, PaymentException, PaymentOrder

        with self.engine.connect() as conn:
            orders = GaugeMetricFamily(
                "motcua_orders", "Payment orders by status", labels=["status"]
            )
            for status, n in conn.execute(
                select(PaymentOrder.status, func.count()).group_by(PaymentOrder.status)
            ):
                orders.add_metric([str(status)], float(n))
            yield orders
            credits = GaugeMetricFamily(
                "motcua_bank_credits", "Bank credits by match", labels=["match"]
            )
            for status, n in conn.execute(
                select(BankCredit.match_status, func.count()).group_by(BankCredit.match_status)
            ):
                credits.add_metric([str(status)], float(n))
            yield credits
            exc = GaugeMetricFamily(
                "motcua_exceptions", "Exceptions by kind and state", labels=["kind", "state"]
            )
            for kind, state, n in conn.execute(
                select(PaymentException.kind, PaymentException.state, func.count()).group_by(
                    PaymentException.kind, PaymentException.state
                )
            ):
                exc.add_metric([str(kind), str(state)], float(n))
            yield exc
            receipts = conn.execute(text("SELECT count(*) FROM receipts")).scalar_one()
            yield GaugeMetricFamily("motcua_receipts", "Receipts issued", value=float(receipts))
            queue = GaugeMetricFamily("motcua_queue_depth", "Work waiting", labels=["queue"])
            queue.add_metric(
                ["bank_events"],
                float(
                    conn.execute(
                        select(func.count())
                        .select_from(BankEvent)
                        .where(BankEvent.processed_at.is_(None))
                    ).scalar_one()
                ),
            )
            queue.add_metric(
                ["receipts_to_issue"],
                float(
                    conn.execute(
                        select(func.count())
                        .select_from(PaymentOrder)
                        .where(
                            PaymentOrder.status == "succeeded", PaymentOrder.receipt_id.is_(None)
                        )
                    ).scalar_one()
                ),
            )
            queue.add_metric(
                ["callbacks"],
                float(
                    conn.execute(
                        text("SELECT count(*) FROM callback_events WHERE state = 'pending'")
                    ).scalar_one()
                ),
            )
            yield queue
            close = GaugeMetricFamily(
                "motcua_close_breaks_open", "Open breaks of the latest closes"
            )
            close.add_metric(
                [],
                float(
                    conn.execute(
                        text("SELECT count(*) FROM recon_breaks WHERE state = 'open'")
                    ).scalar_one()
                ),
            )
            yield close


_RAW_SECURITY_HEADERS = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]
_RAW_CSP = (b"content-security-policy", HTML_CSP.encode("latin-1"))


def _with_headers(message: Message, request_id: str) -> list[tuple[bytes, bytes]]:
    """The response's raw headers plus ours: ``X-Request-ID`` (replacing any), each security
    header the route did not set itself, and the CSP on HTML. Works on the raw list (ASGI
    names are lower-case bytes) rather than ``MutableHeaders``, which rescans it per call."""
    given = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers") or ()]
    names = {name for name, _ in given}
    headers = [h for h in given if h[0] != b"x-request-id"]
    headers.append((b"x-request-id", request_id.encode("latin-1")))
    headers.extend(h for h in _RAW_SECURITY_HEADERS if h[0] not in names)
    if b"content-security-policy" not in names and any(
        name == b"content-type" and value.startswith(b"text/html") for name, value in given
    ):
        headers.append(_RAW_CSP)
    return headers


class ObserveMiddleware:
    """Request id, latency histogram and security headers, as plain ASGI middleware.

    Not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware wraps every request in
    task groups and memory streams, which cost more CPU than a whole order on the fast path.
    Here the request id is set in the same task as the endpoint, so logs carry it.
    """

    def __init__(self, app: ASGIApp, latency: Histogram) -> None:
        self.app = app
        self.latency = latency
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(16)
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": _with_headers(message, request_id)}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(token)
            route = scope.get("route")
            key = (scope["method"], getattr(route, "path", "unmatched"), status)
            child = self._children.get(key)
            if child is None:  # ``labels()`` validates and locks: ~5 µs a request, once is enough
                child = self._children[key] = self.latency.labels(key[0], key[1], str(status))
            child.observe(time.perf_counter() - start)


def install(app: FastAPI, engine: Engine) -> None:
    registry = CollectorRegistry()
    registry.register(_BusinessCollector(engine))
    from api.ops_metrics import OpsCollector

    registry.register(OpsCollector(engine))
    latency = Histogram(
        "motcua_http_request_seconds",
        "HTTP request latency",
        ["method", "route", "status"],
        registry=registry,
    )
    app.state.metrics_registry = registry

    app.add_middleware(ObserveMiddleware, latency=latency)


@router.get("/readyz", summary="Readiness: the database (and in production the broker) answer")
def readyz(request: Request) -> Any:
    engine: Engine = request.app.state.engine
    settings = request.app.state.settings
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    if settings.effective_broker_url.startswith("redis"):
        import redis

        try:
            redis.Redis.from_url(settings.effective_broker_url, socket_timeout=1).ping()
        except Exception as exc:
            problems.append(f"broker: {type(exc).__name__}")
    if problems:
        return problem(
            503, "not_ready", "Dịch vụ chưa sẵn sàng", "; ".join(problems), title_en="Not ready"
        )
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST
    )
