"""Background work of ``payments``: process journaled bank events, issue receipts, sweep.

Each task reads its input from the database and is idempotent, so Celery's at-least-once
delivery (``acks_late``) and the sweep's re-dispatch can never double a payment or a receipt.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
from celery.signals import worker_process_init, worker_ready
from sqlalchemy import select, true
from sqlalchemy.orm import Session

from einvoice.delivery import send_due_emails
from einvoice.models import Receipt
from einvoice.pdf import receipt_pdf
from payments.callbacks import deliver_due
from payments.card_payments import apply_card_event, gateway_from_settings, may_have_card_payment
from payments.credits import process_events
from payments.expiry import expire_due
from payments.issuing import (
    OrdersIssued,
    OrdersPlanned,
    claim_unreceipted,
    issue_for_orders,
    plan_for_orders,
    receipt_error_text,
    sign_for_orders,
    store_for_orders,
)
from payments.models import Agency, BankEvent, PaymentOrder
from payments.states import OrderStatus
from settings.config import Profile, Settings, get_settings
from settings.db import session_factory, session_scope, utcnow
from settings.worker import celery_app, dispatch
from signing.keys import load_key_source

__all__ = [
    "deliver_callbacks",
    "drain_journal",
    "expire_orders",
    "issue_ready",
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
    """Wakes the batch issuer: this event, and whatever else is ready, in one transaction.

    Under a burst the first message claims up to :data:`MAX_BATCH` events and the messages
    behind it find their events done; when idle the batch is this one event, so the citizen
    at the counter waits no longer than before.
    """
    issue_ready()


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
    """Issues this paid order's receipt (and any other ready work) as one batch."""
    issue_ready(order_ids=(order_id,))


MAX_BATCH = 200
"""Items one batch claims at most: big enough that a burst costs one commit per few hundred
receipts, small enough that a batch holds its series' counter for well under a second."""
MAX_BATCH_SQLITE = 50
"""SQLite has one writer: a smaller batch keeps webhooks from waiting on it."""


def issue_ready(
    max_items: int | None = None,
    *,
    min_age_seconds: float = 0,
    order_ids: Sequence[str] = (),
) -> dict[str, int]:
    """One batch: journaled bank events matched (oldest first), then the paid orders without
    a receipt (those just matched, ``order_ids``, and any other ready one) issued with numbers
    reserved per series in one statement.

    Work is claimed with ``FOR UPDATE SKIP LOCKED`` so several workers share it without
    waiting on each other. An event that cannot be read is left for a person (logged); one
    order that cannot be issued says why on itself and takes no number.

    On PostgreSQL all of it is one transaction; the counter's row lock is held across the
    signatures (see :func:`einvoice.issuing.issue_receipts` for why). On SQLite a transaction
    locks the whole database, webhooks included, so the batch signs outside it: a short
    transaction matches and reads, the receipts are signed with no lock held, and a second
    short one stores them if no other issuer took a number meanwhile (else it issues under
    the lock, as on PostgreSQL).
    """
    settings = get_settings()
    planned: OrdersPlanned | None = None
    with session_scope() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        limit = max_items or (MAX_BATCH_SQLITE if sqlite else MAX_BATCH)
        processed, orders, leftover = _claim(session, limit, min_age_seconds, order_ids)
        if sqlite and orders:
            planned = plan_for_orders(session, orders, settings)
        else:
            outcome = _issue_locked(session, orders, settings)
    if planned is not None:
        signed = sign_for_orders(planned)
        with session_scope() as session:
            stored = store_for_orders(session, signed, settings)
        if stored is None:  # another issuer took numbers or orders meanwhile: under the lock
            log.info("signed ahead, but the counters or orders moved: issuing under the lock")
            with session_scope() as session:
                orders = claim_unreceipted(session, planned.order_ids + list(planned.failed))
                stored = _issue_locked(session, orders, settings)
        outcome = stored
    return {
        "events": processed,
        "issued": len(outcome.issued),
        "failed": len(outcome.failed),
        "leftover": len(leftover & outcome.issued.keys()),
    }


def _claim(
    session: Session, limit: int, min_age_seconds: float, order_ids: Sequence[str]
) -> tuple[int, list[PaymentOrder], set[str]]:
    """Matches up to ``limit`` journaled events and claims the paid orders to issue: (events
    processed, orders locked, ids of those found ready without a message of their own)."""
    # Without a minimum age nothing is filtered by time: a bank's booking time may run
    # ahead of ours, and the message that woke us is for work that is ready now.
    cutoff = utcnow() - timedelta(seconds=min_age_seconds) if min_age_seconds else None
    events = list(
        session.scalars(
            select(BankEvent.id)
            .where(
                BankEvent.processed_at.is_(None),
                BankEvent.source != "card",
                BankEvent.received_at <= cutoff if cutoff is not None else true(),
            )
            .order_by(BankEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    results = process_events(session, events) if events else {}
    matched = [r.order_to_issue for r in results.values() if r.order_to_issue]
    room = max(limit - len(matched) - len(order_ids), 0)
    ready = (
        list(
            session.scalars(
                select(PaymentOrder.id)
                .where(
                    PaymentOrder.status == OrderStatus.SUCCEEDED.value,
                    PaymentOrder.receipt_id.is_(None),
                    PaymentOrder.paid_at <= cutoff if cutoff is not None else true(),
                )
                .order_by(PaymentOrder.paid_at)
                .limit(room)
                # Several issuers run this at once: without the lock each would pick the
                # same oldest orders and all but one would find them taken by the claim.
                .with_for_update(of=PaymentOrder, skip_locked=True)
            )
        )
        if room
        else []
    )
    # The orders matched just now are already locked by this transaction and loaded:
    # claim only the others instead of reading every order of the batch twice.
    held = [r.paid_order for r in results.values() if r.paid_order is not None]
    mine = set(matched)
    others = [oid for oid in dict.fromkeys([*order_ids, *ready]) if oid not in mine]
    orders = held + claim_unreceipted(session, others)
    return len(results), orders, set(ready) - mine - set(order_ids)


def _issue_locked(
    session: Session, orders: Sequence[PaymentOrder], settings: Settings
) -> OrdersIssued:
    outcome = issue_for_orders(session, orders, settings)
    for order in orders:
        error = outcome.failed.get(order.id)
        if error is not None:
            order.receipt_error = receipt_error_text(error)
    return outcome


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
    done = {"events": 0, "orders": 0}
    events, _orders = _pending(min_age_seconds, limit)
    for event_id, source in events:
        if source != "card":
            continue  # bank events go through the batch below
        try:
            process_card_event(event_id)
            done["events"] += 1
        except Exception:
            log.warning(
                "journal poller: card event %s failed; tried again later", event_id, exc_info=True
            )
    for _round in range(max(1, limit // MAX_BATCH_SQLITE)):
        try:
            batch = issue_ready(min_age_seconds=min_age_seconds)
        except Exception:
            log.warning("journal poller: a batch failed; tried again later", exc_info=True)
            break
        done["events"] += batch["events"]
        done["orders"] += batch["leftover"]
        if not batch["events"] and not batch["issued"]:
            break
    if done["events"] or done["orders"]:
        log.info("journal poller processed events=%d orders=%d", done["events"], done["orders"])
    return done


JOURNAL_POLL_SECONDS = 5.0
_poller_started = threading.Event()


def _poll_forever() -> None:
    while True:
        time.sleep(JOURNAL_POLL_SECONDS + random.uniform(0, 1))  # noqa: S311 - jitter only
        try:
            # 5 s + a 5–6 s period keeps any event within ~11 s of a broker's return (issue 16:
            # ≤ 15 s); younger events still have their own message in flight.
            drain_journal(min_age_seconds=5)
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
