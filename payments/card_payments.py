"""Card payments for orders: start a PaymentIntent, apply the gateway's verdict, refund.

The webhook is only a hint: the PaymentIntent is fetched back from the gateway and its amount,
currency and order are checked before an order is marked paid, so a forged or stale event can
do nothing. Raw webhook bodies are journaled like bank events (source ``card``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payments.card import (
    CardGateway,
    CardLookupIncomplete,
    PaymentIntent,
    Refund,
    StripeGateway,
)
from payments.errors import InvalidInput, PaymentsError
from payments.models import BankEvent, PaymentOrder
from payments.orders import get_order, mark_succeeded
from payments.states import OrderStatus
from settings.config import Settings
from settings.db import utcnow

__all__ = [
    "CardNotConfigured",
    "CardOutcome",
    "apply_card_event",
    "gateway_from_settings",
    "journal_card_event",
    "may_have_card_payment",
    "refund_card_payment",
    "start_card_payment",
]

log = logging.getLogger(__name__)


class CardNotConfigured(PaymentsError):
    code = "card_not_configured"
    status = 404
    title_vi = "Đơn vị chưa hỗ trợ thanh toán bằng thẻ"
    title_en = "Card payments are not configured"


def gateway_from_settings(settings: Settings) -> CardGateway:
    if not settings.card_api_base or settings.card_secret_key is None:
        raise CardNotConfigured("set MOTCUA_CARD_API_BASE and MOTCUA_CARD_SECRET_KEY")
    return StripeGateway(
        settings.card_api_base,
        settings.card_secret_key.get_secret_value(),
        dialect="localstripe" if settings.card_dialect == "localstripe" else "stripe",
    )


def start_card_payment(gateway: CardGateway, order: PaymentOrder) -> PaymentIntent:
    """One PaymentIntent per order: the order id is the idempotency key, so retries reuse it."""
    if order.status != OrderStatus.PENDING.value or order.amount <= 0:
        raise InvalidInput(f"order {order.id} is {order.status}; nothing to pay by card")
    return gateway.create_payment_intent(
        order.amount,
        order_id=order.id,
        reference=order.reference,
        idempotency_key=f"order-{order.id}-card",
        description=f"{order.procedure_name} - {order.dossier_code}"[:400],
    )


def journal_card_event(session: Session, raw: bytes, event: dict[str, object]) -> BankEvent | None:
    """Journals a verified gateway event under its order's agency; None when not ours."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    order_id = metadata.get("order_id") if isinstance(metadata, dict) else None
    order = session.get(PaymentOrder, order_id) if isinstance(order_id, str) else None
    if order is None:
        return None
    row = BankEvent(
        agency_id=order.agency_id, source="card", dedup_key=str(event.get("id"))[:128], raw=raw
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None  # the gateway re-sent an event we already hold
    return row


@dataclass(frozen=True)
class CardOutcome:
    order_id: str | None
    paid: bool
    note: str


def apply_card_event(
    session: Session, event_id: int, gateway: CardGateway, *, now: datetime | None = None
) -> CardOutcome:
    event = session.get(BankEvent, event_id, with_for_update=True)
    if event is None or event.processed_at is not None:
        return CardOutcome(None, False, "already processed")
    event.processed_at = utcnow()
    body = json.loads(event.raw)
    obj = body.get("data", {}).get("object", {})
    if body.get("type") != "payment_intent.succeeded" or not isinstance(obj, dict):
        return CardOutcome(None, False, f"ignored {body.get('type')}")
    intent = gateway.retrieve_payment_intent(str(obj.get("id")))  # trust the gateway, not the body
    order_id = intent.order_id
    if order_id is None or not intent.succeeded:
        return CardOutcome(order_id, False, f"intent {intent.id} is {intent.status}")
    order = get_order(session, order_id, lock=True)
    if intent.currency != "vnd" or intent.amount != order.amount:
        log.error(
            "card amount %s %s differs from order %s", intent.amount, intent.currency, order.id
        )
        return CardOutcome(order.id, False, "amount_mismatch: refund needed")
    if order.status == OrderStatus.SUCCEEDED.value and order.payment_method == "card":
        return CardOutcome(order.id, False, "already paid by this card payment")
    if order.status != OrderStatus.PENDING.value:
        log.error(
            "card payment %s for %s order %s: refund needed", intent.id, order.status, order.id
        )
        return CardOutcome(order.id, False, f"order {order.status}: refund needed")
    mark_succeeded(order, method="card", at=now or utcnow())
    session.flush()
    return CardOutcome(order.id, True, f"paid by {intent.id}")


def may_have_card_payment(gateway: CardGateway, order: PaymentOrder) -> bool:
    """For expiry: True unless the gateway positively says no payment exists for the order."""
    try:
        return gateway.find_payment_for_order(order.id) is not None
    except (CardLookupIncomplete, PaymentsError):
        return True


def refund_card_payment(
    gateway: CardGateway, order: PaymentOrder, *, amount: int | None, reason: str
) -> Refund:
    found = gateway.find_payment_for_order(order.id)
    if found is None or not found.succeeded:
        raise InvalidInput(
            f"order {order.id} has no card payment to refund", code="no_card_payment"
        )
    return gateway.create_refund(
        found.id,
        amount,
        idempotency_key=f"refund-{order.id}-{amount or 'full'}",
        # Stripe takes a reason from a fixed list; the staff's own words live in our audit log.
        reason="requested_by_customer",
    )
