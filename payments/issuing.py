"""Turning a succeeded order into a receipt request for ``einvoice``.

The succeeded-order-without-receipt row is itself the durable to-do: if issuing fails (no key,
expired certificate, crash), the order keeps its payment and the sweeper retries later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.delivery import enqueue_email
from einvoice.document import FeeKind, Payer, ReceiptLine, ReceiptRequest
from einvoice.issuing import (
    BatchIssued,
    IssuePlan,
    SeriesKey,
    SignedAhead,
    issue_receipts,
    plan_receipts,
    read_counters,
    sign_ahead,
    store_signed,
)
from einvoice.models import Receipt
from payments.models import PaymentOrder
from payments.notify import notify_receipt
from payments.order_draft import line_breakdown
from payments.orders import get_order
from payments.signer import AgencySigner, NoSigningKey, collector_of, signer_of
from payments.states import OrderStatus
from settings.config import Settings
from settings.errors import ProblemError

__all__ = [
    "NoSigningKey",
    "OrdersIssued",
    "OrdersPlanned",
    "OrdersSigned",
    "claim_unreceipted",
    "issue_for_order",
    "issue_for_orders",
    "plan_for_orders",
    "receipt_error_text",
    "receipt_request_for",
    "sign_for_orders",
    "store_for_orders",
]

log = logging.getLogger(__name__)


def receipt_request_for(order: PaymentOrder) -> ReceiptRequest:
    agency = order.agency
    payer = order.payer
    return ReceiptRequest(
        agency_id=agency.id,
        source_key=f"order:{order.id}",
        collector=collector_of(agency),
        template=agency.receipt_template,
        series=agency.receipt_series,
        payer=Payer(
            name=str(payer.get("name") or ""),
            address=payer.get("address"),
            id_number=payer.get("id_number"),
            email=payer.get("email"),
            phone=payer.get("phone"),
        ),
        lines=tuple(
            ReceiptLine(
                fee_code=line.fee_code,
                name=line.fee_name,
                kind=FeeKind(line.kind),
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                unit=line.unit,
                exemption=(
                    f"{line.exemption_category} ({line.exemption_legal_basis})"
                    if line.exemption_category
                    else None
                ),
                breakdown=line_breakdown(line.pricing, exempt=bool(line.exemption_category)),
            )
            for line in order.lines
        ),
        payment_method=order.payment_method or "transfer",
        payment_reference=order.reference,
        procedure_code=order.procedure_code,
        procedure_name=order.procedure_name,
        dossier_code=order.dossier_code,
    )


def issue_for_order(session: Session, order_id: str, settings: Settings) -> Receipt | None:
    """Issues the order's receipt if it is paid and has none; returns it (or ``None`` if unpaid)."""
    order = get_order(session, order_id, lock=True)
    if order.status != OrderStatus.SUCCEEDED.value:
        return None
    if order.receipt_id is not None:
        receipt = session.get(Receipt, order.receipt_id)
        if receipt is not None:
            return receipt
    outcome = issue_for_orders(session, [order], settings)
    if order.id in outcome.failed:
        raise outcome.failed[order.id]
    return outcome.issued[order.id]


@dataclass(frozen=True)
class OrdersIssued:
    issued: dict[str, Receipt]
    """Receipt by order id."""
    failed: dict[str, ProblemError]
    """Why, by order id: the order keeps its payment and says why (``receipt_error``)."""


def claim_unreceipted(session: Session, order_ids: Sequence[str]) -> list[PaymentOrder]:
    """Locks the paid orders without a receipt among ``order_ids``, skipping any another
    worker holds (``FOR UPDATE SKIP LOCKED``): several workers share the work, none waits."""
    if not order_ids:
        return []
    return list(
        session.scalars(
            select(PaymentOrder)
            .where(
                PaymentOrder.id.in_(list(order_ids)),
                PaymentOrder.status == OrderStatus.SUCCEEDED.value,
                PaymentOrder.receipt_id.is_(None),
            )
            .order_by(PaymentOrder.paid_at, PaymentOrder.id)
            .with_for_update(of=PaymentOrder, skip_locked=True)
        )
    )


def issue_for_orders(
    session: Session, orders: Sequence[PaymentOrder], settings: Settings
) -> OrdersIssued:
    """Issues the receipts of locked, paid ``orders`` as one batch per agency, in the caller's
    transaction: numbers reserved per series in one statement, receipts, order links, callbacks
    and e-mails written together. An order that cannot be issued (no key, a refused
    certificate, a document the schema refuses) is set aside with its reason, taking no number;
    the others go out. A batch of one is the counter's, a card's or an exempt order's path."""
    issued: dict[str, Receipt] = {}
    failed: dict[str, ProblemError] = {}
    for group in _by_agency(session, orders, issued).values():
        try:
            signer = signer_of(group[0].agency, settings)
            outcome = issue_receipts(
                session,
                [receipt_request_for(order) for order in group],
                signer.key,
                verify_url_base=signer.verify_url_base,
                allow_development_certificate=signer.allow_development_certificate,
            )
        except ProblemError as exc:  # no key or a certificate it may not sign with: all wait
            failed.update({order.id: exc for order in group})
            continue
        _link(session, group, outcome, settings, issued, failed)
    return _finish(session, issued, failed)


def _by_agency(
    session: Session, orders: Sequence[PaymentOrder], issued: dict[str, Receipt]
) -> dict[str, list[PaymentOrder]]:
    """The orders still without a receipt, by agency (one collector, one key per batch);
    an order whose receipt exists is reported as issued."""
    by_agency: dict[str, list[PaymentOrder]] = {}
    for order in orders:
        if order.receipt_id is not None:
            existing = session.get(Receipt, order.receipt_id)
            if existing is not None:
                issued[order.id] = existing
                continue
        by_agency.setdefault(order.agency_id, []).append(order)
    return by_agency


def _link(
    session: Session,
    group: Sequence[PaymentOrder],
    outcome: BatchIssued,
    settings: Settings,
    issued: dict[str, Receipt],
    failed: dict[str, ProblemError],
) -> None:
    """Each order gets its receipt (and its callback and e-mail), or the reason it has none."""
    for order in group:
        key = f"order:{order.id}"
        error = outcome.failed.get(key)
        if error is not None:
            failed[order.id] = (
                error
                if isinstance(error, ProblemError)
                else ProblemError(str(error), code="receipt_not_issued", status=500)
            )
            continue
        receipt = outcome.receipts[key]
        order.receipt_id = receipt.id
        order.receipt_error = None
        notify_receipt(order, receipt)
        if settings.smtp_host:
            enqueue_email(session, receipt, order.payer.get("email"))
        issued[order.id] = receipt


def _finish(
    session: Session, issued: dict[str, Receipt], failed: dict[str, ProblemError]
) -> OrdersIssued:
    for order_id, error in failed.items():
        log.error("receipt not issued for order %s: %s (%s)", order_id, error.detail, error.code)
    session.flush()
    if issued:
        log.info("receipts issued", extra={"count": len(issued)})
    return OrdersIssued(issued, failed)


@dataclass(frozen=True)
class _AgencyPlan:
    order_ids: list[str]
    plan: IssuePlan
    counters: dict[SeriesKey, int]
    signer: AgencySigner


@dataclass(frozen=True)
class OrdersPlanned:
    """Step 1 of issuing without holding the write lock across signatures (SQLite): what to
    issue, read in a short transaction. ``failed``: orders that cannot be issued at all now."""

    plans: list[_AgencyPlan]
    failed: dict[str, ProblemError]
    issued: dict[str, Receipt]

    @property
    def order_ids(self) -> list[str]:
        return [oid for p in self.plans for oid in p.order_ids]


@dataclass(frozen=True)
class OrdersSigned:
    """Step 2: the receipts built and signed, outside any transaction."""

    signed: list[tuple[list[str], SignedAhead]]
    failed: dict[str, ProblemError]
    issued: dict[str, Receipt]


def plan_for_orders(
    session: Session, orders: Sequence[PaymentOrder], settings: Settings
) -> OrdersPlanned:
    """Reads what :func:`sign_for_orders` needs: requests, counters, the agency's signer."""
    issued: dict[str, Receipt] = {}
    failed: dict[str, ProblemError] = {}
    plans: list[_AgencyPlan] = []
    for group in _by_agency(session, orders, issued).values():
        try:
            signer = signer_of(group[0].agency, settings)
            plan = plan_receipts(
                session,
                [receipt_request_for(order) for order in group],
                signer.key,
                allow_development_certificate=signer.allow_development_certificate,
            )
        except ProblemError as exc:
            failed.update({order.id: exc for order in group})
            continue
        counters = read_counters(session, plan)
        plans.append(_AgencyPlan([o.id for o in group], plan, counters, signer))
    return OrdersPlanned(plans, failed, issued)


def sign_for_orders(planned: OrdersPlanned) -> OrdersSigned:
    """Builds and signs every planned receipt; needs no session and holds no lock."""
    return OrdersSigned(
        [
            (
                p.order_ids,
                sign_ahead(
                    p.plan, p.counters, p.signer.key, verify_url_base=p.signer.verify_url_base
                ),
            )
            for p in planned.plans
        ],
        dict(planned.failed),
        dict(planned.issued),
    )


def store_for_orders(
    session: Session, signed: OrdersSigned, settings: Settings
) -> OrdersIssued | None:
    """Step 3, in a write transaction: stores the signed receipts and links their orders if
    nothing moved since step 1 (each order still paid without a receipt, each counter where it
    was read); otherwise ``None``, nothing is written, and the caller issues under the lock.
    Orders that failed are loaded too, so they can say why (``receipt_error``)."""
    wanted = [oid for ids, _ in signed.signed for oid in ids]
    orders = {o.id: o for o in claim_unreceipted(session, [*wanted, *signed.failed])}
    if not set(wanted) <= orders.keys():
        return None  # another issuer got there first
    issued = dict(signed.issued)
    failed = dict(signed.failed)
    for ids, batch in signed.signed:
        outcome = store_signed(session, batch)
        if outcome is None:
            return None
        _link(session, [orders[oid] for oid in ids], outcome, settings, issued, failed)
    for order_id, error in failed.items():
        if order_id in orders:
            orders[order_id].receipt_error = receipt_error_text(error)
    return _finish(session, issued, failed)


def receipt_error_text(error: ProblemError) -> str:
    """What an order without its receipt says about why (shown to staff, retried later)."""
    return f"{error.code}: {error.detail}"[:500]
