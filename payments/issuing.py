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
from einvoice.issuing import issue_receipts
from einvoice.models import Receipt
from payments.models import PaymentOrder
from payments.notify import notify_receipt
from payments.order_draft import line_breakdown
from payments.orders import get_order
from payments.signer import NoSigningKey, collector_of, signer_of
from payments.states import OrderStatus
from settings.config import Settings
from settings.errors import ProblemError

__all__ = [
    "NoSigningKey",
    "OrdersIssued",
    "claim_unreceipted",
    "issue_for_order",
    "issue_for_orders",
    "receipt_request_for",
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
    by_agency: dict[str, list[PaymentOrder]] = {}
    for order in orders:
        if order.receipt_id is not None:
            existing = session.get(Receipt, order.receipt_id)
            if existing is not None:
                issued[order.id] = existing
                continue
        by_agency.setdefault(order.agency_id, []).append(order)
    for group in by_agency.values():
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
    for order_id, error in failed.items():
        log.error("receipt not issued for order %s: %s (%s)", order_id, error.detail, error.code)
    session.flush()
    if issued:
        log.info("receipts issued", extra={"count": len(issued)})
    return OrdersIssued(issued, failed)
