"""Turning a succeeded order into a receipt request for ``einvoice``.

The succeeded-order-without-receipt row is itself the durable to-do: if issuing fails (no key,
expired certificate, crash), the order keeps its payment and the sweeper retries later.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from einvoice.delivery import enqueue_email
from einvoice.document import FeeKind, Payer, ReceiptLine, ReceiptRequest
from einvoice.issuing import issue_receipt
from einvoice.models import Receipt
from payments.models import PaymentOrder
from payments.notify import notify_receipt
from payments.orders import get_order
from payments.signer import NoSigningKey, collector_of, signer_of
from payments.states import OrderStatus
from settings.config import Settings

__all__ = ["NoSigningKey", "issue_for_order", "receipt_request_for"]

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
    signer = signer_of(order.agency, settings)
    receipt = issue_receipt(
        session,
        receipt_request_for(order),
        signer.key,
        verify_url_base=signer.verify_url_base,
        allow_development_certificate=signer.allow_development_certificate,
    )
    order.receipt_id = receipt.id
    order.receipt_error = None
    notify_receipt(order, receipt)
    if settings.smtp_host:
        enqueue_email(session, receipt, order.payer.get("email"))
    session.flush()
    log.info(
        "receipt issued",
        extra={"order_id": order.id, "receipt_id": receipt.id, "number": receipt.number},
    )
    return receipt
