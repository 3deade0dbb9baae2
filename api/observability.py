"""Request ids, security headers, readiness and Prometheus metrics.

Business metrics are read from the database at scrape time, so they are right however many
API processes and Celery workers run; per-process histograms cover request latency.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select, text

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


def install(app: FastAPI, engine: Engine) -> None:
    registry = CollectorRegistry()
    registry.register(_BusinessCollector(engine))
    latency = Histogram(
        "motcua_http_request_seconds",
        "HTTP request latency",
        ["method", "route", "status"],
        registry=registry,
    )
    app.state.metrics_registry = registry

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        latency.labels(request.method, path, str(response.status_code)).observe(
            time.perf_counter() - start
        )
        response.headers["X-Request-ID"] = request_id
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", HTML_CSP)
        return response


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
