"""Cash taken at the counter: the clerk records it and the receipt is issued at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from payments.errors import InvalidInput
from payments.models import PaymentOrder
from payments.orders import get_order, mark_succeeded
from settings.db import utcnow

__all__ = ["record_cash"]


def record_cash(
    session: Session,
    order_id: str,
    *,
    agency_id: str,
    amount: int,
    clerk: str,
    now: datetime | None = None,
) -> PaymentOrder:
    """The amount handed over must equal the order's: change is the clerk's business, not ours.

    Recording twice for a paid order is refused by the state table (409), so a double click at
    a busy counter cannot record the same cash twice.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidInput("amount must be a positive whole number of VND")
    clerk = clerk.strip()
    if not clerk:
        raise InvalidInput("the clerk who took the cash must be named")
    order = get_order(session, order_id, agency_id=agency_id, lock=True)
    if amount != order.amount:
        raise InvalidInput(
            f"cash {amount} VND does not equal the order's {order.amount} VND",
            code="amount_mismatch",
        )
    mark_succeeded(order, method="cash", at=now or utcnow())
    order.collected_by = clerk[:255]
    session.flush()
    return order
