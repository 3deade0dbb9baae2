"""Operations metrics added in issue 7: close status per agency, receipt issue latency, and
the audit chain's progress. Read from the database at scrape time, like the business counts in
:mod:`api.observability`, so they are right however many processes do the work.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

__all__ = ["ISSUE_BUCKETS", "OpsCollector"]

ISSUE_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""Seconds from payment recognised to signed receipt stored (the signing path end to end)."""
ISSUE_WINDOW_ROWS = 10_000


class OpsCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        with self.engine.connect() as conn:
            yield from _close_status(conn)
            yield _issue_latency(conn)
            yield _audit_chain(conn)


def _close_status(conn: Any) -> Iterator[GaugeMetricFamily]:
    """Latest close per agency: its business day, its status (as a label) and open breaks."""
    from payments.models import Agency
    from reconciliation.models import DailyClose

    latest = (
        select(DailyClose.agency_id, func.max(DailyClose.started_at).label("started_at"))
        .group_by(DailyClose.agency_id)
        .subquery()
    )
    rows = conn.execute(
        select(Agency.code, DailyClose.business_day, DailyClose.status, DailyClose.breaks_open)
        .join(
            latest,
            (latest.c.agency_id == DailyClose.agency_id)
            & (latest.c.started_at == DailyClose.started_at),
        )
        .join(Agency, Agency.id == DailyClose.agency_id)
    ).all()
    day = GaugeMetricFamily(
        "motcua_close_last_day",
        "Business day of each agency's latest close (Unix time of that day's 00:00 UTC)",
        labels=["agency", "status"],
    )
    breaks = GaugeMetricFamily(
        "motcua_close_last_breaks", "Open breaks in each agency's latest close", labels=["agency"]
    )
    for code, business_day, status, open_breaks in rows:
        day.add_metric([str(code), str(status)], float(calendar.timegm(business_day.timetuple())))
        breaks.add_metric([str(code)], float(open_breaks or 0))
    yield day
    yield breaks


def _issue_latency(conn: Any) -> HistogramMetricFamily:
    """Histogram over the newest receipts, computed from the ledgers at scrape time.

    Receipts are signed in the Celery worker, a process Prometheus does not scrape; the times
    in the database are the same for every process.
    """
    from einvoice.models import Receipt
    from payments.models import PaymentOrder

    rows = conn.execute(
        select(PaymentOrder.paid_at, Receipt.created_at)
        .join(Receipt, Receipt.id == PaymentOrder.receipt_id)
        .where(PaymentOrder.paid_at.is_not(None))
        .order_by(Receipt.created_at.desc())
        .limit(ISSUE_WINDOW_ROWS)
    ).all()
    counts = [0] * len(ISSUE_BUCKETS)
    total = 0.0
    for paid_at, created_at in rows:
        seconds = max(0.0, (created_at - paid_at).total_seconds())
        total += seconds
        for i, bound in enumerate(ISSUE_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
    buckets = [(str(b), float(c)) for b, c in zip(ISSUE_BUCKETS, counts, strict=True)]
    buckets.append(("+Inf", float(len(rows))))
    family = HistogramMetricFamily(
        "motcua_receipt_issue_seconds",
        f"Payment recognised to signed receipt stored, newest {ISSUE_WINDOW_ROWS} receipts",
    )
    family.add_metric([], buckets, sum_value=total)
    return family


def _audit_chain(conn: Any) -> GaugeMetricFamily:
    """How much of the audit trail is chained (see settings.audit_chain)."""
    from settings.audit_chain import AuditSeal

    sealed = conn.execute(select(func.count()).select_from(AuditSeal)).scalar_one()
    return GaugeMetricFamily(
        "motcua_audit_sealed_records", "Audit records chained so far", value=float(sealed)
    )
