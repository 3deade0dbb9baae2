"""Background work of ``payments``: process journaled bank events, issue receipts, sweep.

Each task reads its input from the database and is idempotent, so Celery's at-least-once
delivery (``acks_late``) and the sweep's re-dispatch can never double a payment or a receipt.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
from celery.signals import worker_process_init, worker_ready
from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.delivery import send_due_emails
from einvoice.models import Receipt
from einvoice.pdf import receipt_pdf
from payments.callbacks import deliver_due
from payments.card_payments import apply_card_event, gateway_from_settings, may_have_card_payment
from payments.credits import process_event
from payments.expiry import expire_due
from payments.issuing import issue_for_order
from payments.models import Agency, BankEvent, PaymentOrder
from payments.states import OrderStatus
from settings.config import Profile, get_settings
from settings.db import session_factory, session_scope, utcnow
from settings.errors import ProblemError
from settings.worker import celery_app, dispatch
from signing.keys import load_key_source

__all__ = [
    "deliver_callbacks",
    "drain_journal",
    "expire_orders",
    "issue_receipt",
    "process_bank_event",
    "process_card_event",
    "send_receipt_emails",
    "start_journal_poller",
    "sweep",
]

log = logging.getLogger(__name__)


@celery_app.task(name="payments.process_bank_event")  # type: ignore[untyped-decorator]
def process_bank_event(event_id: int) -> None:
    with session_scope() as session:
        result = process_event(session, event_id)
    if result.order_to_issue:
        # Issue right here rather than queueing behind every other notification: the receipt
        # is what the citizen is waiting for. A failure leaves the order for the sweep.
        issue_receipt(result.order_to_issue)


@celery_app.task(name="payments.process_card_event")  # type: ignore[untyped-decorator]
def process_card_event(event_id: int) -> None:
    gateway = gateway_from_settings(get_settings())
    with session_scope() as session:
        outcome = apply_card_event(session, event_id, gateway)
    log.info("card event %s: %s", event_id, outcome.note)
    if outcome.paid and outcome.order_id:
        dispatch(issue_receipt, outcome.order_id)


@celery_app.task(name="payments.issue_receipt")  # type: ignore[untyped-decorator]
def issue_receipt(order_id: str) -> None:
    settings = get_settings()
    try:
        with session_scope() as session:
            issue_for_order(session, order_id, settings)
    except ProblemError as exc:
        # The payment stays recorded; say why on the order and let the sweep retry.
        log.error("receipt not issued for order %s: %s (%s)", order_id, exc.detail, exc.code)
        with session_scope() as session:
            order = session.get(PaymentOrder, order_id)
            if order is not None:
                order.receipt_error = f"{exc.code}: {exc.detail}"[:500]


def _pending(min_age_seconds: int, limit: int) -> tuple[list[tuple[int, str]], list[str]]:
    """What the database says is still to do: journaled events not processed, paid orders
    without a receipt, older than ``min_age_seconds`` (younger ones have their message)."""
    cutoff = utcnow() - timedelta(seconds=min_age_seconds)
    with session_scope() as session:
        events = [
            (int(event_id), str(source))
            for event_id, source in session.execute(
                select(BankEvent.id, BankEvent.source)
                .where(BankEvent.processed_at.is_(None), BankEvent.received_at <= cutoff)
                .order_by(BankEvent.id)
                .limit(limit)
            )
        ]
        orders = list(
            session.scalars(
                select(PaymentOrder.id)
                .where(
                    PaymentOrder.status == OrderStatus.SUCCEEDED.value,
                    PaymentOrder.receipt_id.is_(None),
                    PaymentOrder.paid_at <= cutoff,
                )
                .limit(limit)
            )
        )
    return events, orders


@celery_app.task(name="payments.sweep")  # type: ignore[untyped-decorator]
def sweep(min_age_seconds: int = 10) -> dict[str, int]:
    """Re-dispatches work whose message was lost: unprocessed events, unreceipted paid orders."""
    events, orders = _pending(min_age_seconds, 1000)
    for event_id, source in events:
        task = process_card_event if source == "card" else process_bank_event
        dispatch(task, event_id, sweeping=True)
    for order_id in orders:
        dispatch(issue_receipt, order_id, sweeping=True)
    return {"events": len(events), "orders": len(orders)}


def drain_journal(min_age_seconds: int = 10, limit: int = 200) -> dict[str, int]:
    """Does, in this process, the work the database says is left over, without the broker.

    The sweep only re-sends messages, so it cannot help when the worker itself no longer
    receives any: after a Redis restart a worker could stay connected yet never consume
    again, and 31 webhooks answered 200 were never processed (the fault suite, issue 16).
    The journal and the paid-without-receipt orders are the queue; the broker is a wake-up.
    Every step is idempotent under its row lock, so racing a delivered message is harmless.
    """
    events, orders = _pending(min_age_seconds, limit)
    done = {"events": 0, "orders": 0}
    for event_id, source in events:
        try:
            (process_card_event if source == "card" else process_bank_event)(event_id)
            done["events"] += 1
        except Exception:
            log.warning("journal poller: event %s failed; tried again later", event_id,
                        exc_info=True)
    for order_id in orders:
        try:
            issue_receipt(order_id)
            done["orders"] += 1
        except Exception:
            log.warning("journal poller: order %s failed; tried again later", order_id,
                        exc_info=True)
    if events or orders:
        log.info("journal poller processed events=%d orders=%d", done["events"], done["orders"])
    return done


JOURNAL_POLL_SECONDS = 5.0
_poller_started = threading.Event()


def _poll_forever() -> None:
    while True:
        time.sleep(JOURNAL_POLL_SECONDS + random.uniform(0, 1))  # noqa: S311 - jitter only
        try:
            drain_journal()
        except Exception:  # the database away: the next round tries again
            log.warning("journal poller round failed", exc_info=True)


def start_journal_poller() -> None:
    """Once per process that executes tasks (a prefork child, or a solo worker)."""
    if _poller_started.is_set() or celery_app.conf.task_always_eager:
        return
    _poller_started.set()
    threading.Thread(target=_poll_forever, name="journal-poller", daemon=True).start()
    log.info("journal poller started (every %.0f s)", JOURNAL_POLL_SECONDS)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _poll_in_pool_child(**_: object) -> None:
    start_journal_poller()


@worker_ready.connect  # type: ignore[untyped-decorator]
def _poll_in_solo_worker(sender: object = None, **_: object) -> None:
    # A prefork parent never touches the database (its children would inherit connections);
    # a solo or threads worker executes tasks itself, so it polls itself.
    pool = getattr(sender, "pool", None)
    if pool is not None and type(pool).__module__.endswith((".solo", ".threads")):
        start_journal_poller()


@celery_app.task(name="payments.expire_orders")  # type: ignore[untyped-decorator]
def expire_orders() -> dict[str, int]:
    """Expires overdue orders, after asking the bank journal (and card gateway) for money."""
    settings = get_settings()
    lookup = None
    if settings.card_api_base:
        gateway = gateway_from_settings(settings)

        def lookup(order: PaymentOrder) -> bool:
            return may_have_card_payment(gateway, order)

    with session_scope() as session:
        expired, kept = expire_due(session, now=utcnow(), card_lookup=lookup)
    if expired:
        log.info("expired %d orders (%d kept: money may be waiting)", len(expired), len(kept))
    return {"expired": len(expired), "kept": len(kept)}


@celery_app.task(name="payments.deliver_callbacks")  # type: ignore[untyped-decorator]
def deliver_callbacks() -> dict[str, int]:
    """Sends due callbacks (the outbox); safe to run on several workers at once."""
    settings = get_settings()
    with httpx.Client(follow_redirects=False) as http:
        report = deliver_due(
            session_factory(),
            now=utcnow(),
            http=http,
            allow_loopback=settings.profile is Profile.EMBEDDED,
            budget_seconds=50,
        )
    return {"attempted": report.attempted, "delivered": report.delivered}


def _receipt_pdf(session: Session, receipt: Receipt) -> bytes | None:
    agency = session.get(Agency, receipt.agency_id)
    if agency is None or not agency.signing_key_ref:
        return None
    return receipt_pdf(
        session,
        receipt,
        load_key_source(agency.signing_key_ref),
        base_url=get_settings().public_base_url,
        zone=ZoneInfo(agency.time_zone),
    )


@celery_app.task(name="payments.send_receipt_emails")  # type: ignore[untyped-decorator]
def send_receipt_emails() -> dict[str, int]:
    """E-mails issued receipts (XML + signed PDF) to payers who gave an address."""
    sent, failed = send_due_emails(session_factory(), get_settings(), pdf_for=_receipt_pdf)
    return {"sent": sent, "failed": failed}
