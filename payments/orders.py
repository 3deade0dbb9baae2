"""Creating, reading and moving payment orders.

Amounts always come from the published catalogue on the agency's local business date; the
client only says which fee items and how many. Lines are frozen on the order, so a later price
change never alters what a citizen was asked to pay.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

import payments.reference as transfer_reference
from payments.catalog import fee_item_on, procedure_by_code
from payments.errors import NotFound
from payments.models import Agency, OrderLine, PaymentOrder
from payments.notify import notify_order
from payments.order_draft import (
    AgencyTerms,
    FeeRequest,
    FeeSpec,
    OrderRequest,
    ProcedureSpec,
    check_fee_requests,
    draft_order,
    local_day,
)
from payments.states import OrderStatus
from settings.db import utcnow

__all__ = [
    "FeeRequest",
    "OrderRequest",
    "cancel_order",
    "create_order",
    "get_order",
    "list_orders",
    "mark_succeeded",
]


def local_date(agency: Agency, moment: datetime) -> date:
    return local_day(agency.time_zone, moment)


def create_order(
    session: Session,
    agency: Agency,
    request: OrderRequest,
    *,
    client_id: str | None,
    ttl: timedelta,
    max_amount: int,
    now: datetime | None = None,
) -> PaymentOrder:
    """The ORM writer of :func:`payments.order_draft.draft_order`'s draft."""
    now = now or utcnow()
    check_fee_requests(request.fees)
    procedure = procedure_by_code(session, agency.id, request.procedure_code)
    day = local_date(agency, now)

    def fee_on_day(code: str) -> FeeSpec | None:
        item = fee_item_on(session, procedure, code, day)
        return FeeSpec.of(item) if item is not None else None

    draft = draft_order(
        AgencyTerms.of(agency),
        ProcedureSpec(procedure.id, procedure.code, procedure.name),
        fee_on_day,
        request,
        reference=_unique_reference(session),
        now=now,
        ttl=ttl,
        max_amount=max_amount,
    )
    order = PaymentOrder(
        id=draft.id,
        agency_id=agency.id,
        client_id=client_id,
        dossier_code=draft.dossier_code,
        procedure_code=draft.procedure_code,
        procedure_name=draft.procedure_name,
        reference=draft.reference,
        status=draft.status,
        amount=draft.amount,
        payer=draft.payer,
        callback_url=draft.callback_url,
        vietqr_payload=draft.vietqr_payload,
        created_at=draft.created_at,
        expires_at=draft.expires_at,
    )
    order.lines = [
        OrderLine(
            id=line.id,
            position=line.position,
            fee_item_id=line.fee_item_id,
            fee_code=line.fee_code,
            fee_name=line.fee_name,
            kind=line.kind,
            unit=line.unit,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
            retention_percent=line.retention_percent,
            legal_basis=line.legal_basis,
            exemption_category=line.exemption_category,
            exemption_legal_basis=line.exemption_legal_basis,
            pricing=line.pricing,
        )
        for line in draft.lines
    ]
    session.add(order)
    session.flush()
    if draft.nothing_to_collect:
        # Every line exempt: nothing to collect, but the receipt still records the exemption.
        mark_succeeded(order, method="exempt", at=now)
    return order


def _unique_reference(session: Session) -> str:
    for _ in range(5):
        ref = transfer_reference.generate()
        if session.scalar(select(PaymentOrder.id).where(PaymentOrder.reference == ref)) is None:
            return ref
    raise RuntimeError("could not draw a free transfer reference in 5 tries")  # ~2^-200


def mark_succeeded(order: PaymentOrder, *, method: str, at: datetime) -> None:
    order.move_to(OrderStatus.SUCCEEDED)
    order.payment_method = method
    order.paid_at = at
    notify_order(order, "payment_order.succeeded")


def get_order(
    session: Session, order_id: str, *, agency_id: str | None = None, lock: bool = False
) -> PaymentOrder:
    """``lock`` takes the row lock (PostgreSQL) so a payment and a cancel cannot interleave."""
    order = session.get(
        PaymentOrder, order_id, with_for_update={"of": PaymentOrder} if lock else None
    )
    if order is None or (agency_id is not None and order.agency_id != agency_id):
        raise NotFound(f"no payment order {order_id!r}", code="order_not_found")
    return order


def list_orders(
    session: Session, agency_id: str, *, dossier_code: str | None, limit: int = 100
) -> list[PaymentOrder]:
    query = select(PaymentOrder).where(PaymentOrder.agency_id == agency_id)
    if dossier_code is not None:
        query = query.where(PaymentOrder.dossier_code == dossier_code)
    query = query.order_by(PaymentOrder.created_at.desc()).limit(limit)
    return list(session.scalars(query))


def cancel_order(session: Session, order: PaymentOrder) -> PaymentOrder:
    if order.status == OrderStatus.CANCELLED.value:
        return order  # cancelling twice is a no-op, not an error
    order.move_to(OrderStatus.CANCELLED)
    notify_order(order, "payment_order.cancelled")
    return order
