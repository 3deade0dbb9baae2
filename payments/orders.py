"""Creating, reading and moving payment orders.

Amounts always come from the published catalogue on the agency's local business date; the
client only says which fee items and how many. Lines are frozen on the order, so a later price
change never alters what a citizen was asked to pay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

import payments.reference as transfer_reference
from payments import vietqr
from payments.catalog import fee_item_on, price_line, procedure_by_code
from payments.errors import AmountTooLarge, InvalidInput, NotFound
from payments.models import Agency, OrderLine, PaymentOrder
from payments.notify import notify_order
from payments.states import OrderStatus, check_transition
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


@dataclass(frozen=True)
class FeeRequest:
    fee_code: str
    quantity: int = 1
    exemption: tuple[str, str] | None = None


@dataclass(frozen=True)
class OrderRequest:
    dossier_code: str
    procedure_code: str
    payer: dict[str, Any]
    fees: tuple[FeeRequest, ...]
    callback_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def local_date(agency: Agency, moment: datetime) -> Any:
    return moment.astimezone(ZoneInfo(agency.time_zone)).date()


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
    now = now or utcnow()
    if not request.fees:
        raise InvalidInput("at least one fee line is required")
    codes = [f.fee_code for f in request.fees]
    if len(set(codes)) != len(codes):
        raise InvalidInput("each fee_code may appear once per order; use quantity")
    procedure = procedure_by_code(session, agency.id, request.procedure_code)
    day = local_date(agency, now)
    priced = []
    for fee in request.fees:
        item = fee_item_on(session, procedure, fee.fee_code, day)
        assert item is not None
        priced.append(price_line(item, fee.quantity, fee.exemption))
    total = sum(p.amount for p in priced)
    if total > max_amount:
        raise AmountTooLarge(f"order total {total} VND exceeds the maximum {max_amount} VND")
    ref = _unique_reference(session)
    order = PaymentOrder(
        agency_id=agency.id,
        client_id=client_id,
        dossier_code=request.dossier_code,
        procedure_code=procedure.code,
        procedure_name=procedure.name,
        reference=ref,
        status=OrderStatus.PENDING.value,
        amount=total,
        payer=request.payer,
        callback_url=request.callback_url,
        vietqr_payload=(
            vietqr.build_payload(
                bank_bin=agency.bank_bin, account=agency.bank_account, amount=total, purpose=ref
            )
            if total > 0
            else ""
        ),
        created_at=now,
        expires_at=now + ttl,
    )
    order.lines = [
        OrderLine(
            position=i,
            fee_item_id=p.item.id,
            fee_code=p.item.code,
            fee_name=p.item.name,
            kind=p.item.kind,
            unit=p.item.unit,
            quantity=p.quantity,
            unit_price=p.unit_price,
            amount=p.amount,
            retention_percent=p.item.retention_percent,
            legal_basis=p.item.legal_basis,
            exemption_category=p.exemption_category,
            exemption_legal_basis=p.exemption_legal_basis,
        )
        for i, p in enumerate(priced, start=1)
    ]
    session.add(order)
    session.flush()
    if total == 0:
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
    check_transition(order.status, OrderStatus.SUCCEEDED)
    order.status = OrderStatus.SUCCEEDED.value
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
    check_transition(order.status, OrderStatus.CANCELLED)
    order.status = OrderStatus.CANCELLED.value
    notify_order(order, "payment_order.cancelled")
    return order
