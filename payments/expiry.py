"""Expiring orders, but never one that may have been paid.

Before an order is expired we ask every place money could be waiting: bank events journaled
but not yet processed for its agency, and the card gateway (when one is configured). If any
might hold a payment, the order is left pending for the next round ("ask before you expire").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from payments.models import BankEvent, PaymentOrder
from payments.notify import notify_order
from payments.states import OrderStatus

__all__ = ["CardLookup", "expire_due"]

CardLookup = Callable[[PaymentOrder], bool]
"""Returns True when the card gateway holds (or may hold) a payment for the order."""


def expire_due(
    session: Session,
    *,
    now: datetime,
    card_lookup: CardLookup | None = None,
    limit: int = 500,
) -> tuple[list[str], list[str]]:
    """Expires due pending orders; returns (expired ids, ids kept because money may exist)."""
    due = list(
        session.scalars(
            select(PaymentOrder)
            .where(
                PaymentOrder.status == OrderStatus.PENDING.value,
                PaymentOrder.expires_at <= now,
            )
            .order_by(PaymentOrder.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=PaymentOrder)
        )
    )
    expired: list[str] = []
    kept: list[str] = []
    unprocessed: dict[str, bool] = {}
    for order in due:
        if order.agency_id not in unprocessed:
            unprocessed[order.agency_id] = bool(
                session.scalar(
                    select(
                        exists().where(
                            BankEvent.agency_id == order.agency_id,
                            BankEvent.processed_at.is_(None),
                        )
                    )
                )
            )
        if unprocessed[order.agency_id] or (card_lookup is not None and card_lookup(order)):
            kept.append(order.id)
            continue
        order.move_to(OrderStatus.EXPIRED)
        notify_order(order, "payment_order.expired")
        expired.append(order.id)
    session.flush()
    return expired, kept
