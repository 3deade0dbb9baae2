"""From a journaled bank event to a recognised payment, or to an exception.

Matching is deliberately strict: the transfer reference must be found in the memo (despite
bank mangling) and the amount must be exact; the account must be the agency's own. Anything
else is recorded with a ``match_status`` naming why and opens an item in the exceptions queue
(:mod:`payments.exceptions`) for staff to resolve. Only an exact match links a credit to an
order; an under-payment awaiting a top-up completes the order when the rest arrives.
"""

from __future__ import annotations

from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.bankfeeds import normalise
from payments.exceptions import ExceptionKind, close_topups, open_exception, topup_total
from payments.memo import find_references
from payments.models import Agency, BankCredit, BankEvent, PaymentOrder
from payments.orders import mark_succeeded
from payments.states import OrderStatus
from settings.db import utcnow

__all__ = ["MatchStatus", "ProcessResult", "process_event"]


class MatchStatus(StrEnum):
    MATCHED = "matched"
    UNKNOWN_REFERENCE = "unknown_reference"
    UNDERPAYMENT = "underpayment"
    OVERPAYMENT = "overpayment"
    ORDER_CLOSED = "order_closed"
    DUPLICATE_TRANSFER = "duplicate_transfer"
    WRONG_ACCOUNT = "wrong_account"


class ProcessResult:
    __slots__ = ("credit", "order_to_issue")

    def __init__(self, credit: BankCredit | None, order_to_issue: str | None) -> None:
        self.credit = credit
        self.order_to_issue = order_to_issue


def process_event(session: Session, event_id: int) -> ProcessResult:
    """Idempotent: an event already processed, or a credit already known, changes nothing."""
    event = session.get(BankEvent, event_id, with_for_update=True)
    if event is None or event.processed_at is not None:
        return ProcessResult(None, None)
    agency = event.agency_id

    agency_row = session.get(Agency, agency)
    assert agency_row is not None
    credit_data = normalise(event, ZoneInfo(agency_row.time_zone))
    event.processed_at = utcnow()
    if not credit_data.incoming:
        return ProcessResult(None, None)
    known = session.scalar(
        select(BankCredit).where(
            BankCredit.agency_id == agency, BankCredit.bank_reference == credit_data.bank_reference
        )
    )
    if known is not None:
        return ProcessResult(known, None)
    # Decide first, then insert the credit once with its final order and status: the credit
    # used to be inserted early and updated twice, two round trips on every notification.
    to_issue: str | None = None
    order: PaymentOrder | None = None
    earlier = 0
    if agency_row.bank_account not in (credit_data.account_number, credit_data.sub_account):
        status = MatchStatus.WRONG_ACCOUNT
    else:
        order = _order_for(session, agency, credit_data.memo)
        if order is None:
            status = MatchStatus.UNKNOWN_REFERENCE
        else:
            earlier = topup_total(session, order.id)
            status = _classify(order, credit_data.amount + earlier)
    matched = status is MatchStatus.MATCHED
    credit = BankCredit(
        agency_id=agency,
        event_id=event.id,
        bank_reference=credit_data.bank_reference,
        account_number=credit_data.account_number,
        amount=credit_data.amount,
        memo=credit_data.memo,
        booked_at=credit_data.booked_at,
        # only an exact match links a credit to an order
        order_id=order.id if matched and order is not None else None,
        match_status=status.value,
    )
    session.add(credit)
    if matched and order is not None:
        mark_succeeded(order, method="transfer", at=credit_data.booked_at)
        if earlier:
            close_topups(session, order.id, credit.bank_reference)
        to_issue = order.id
    else:
        session.flush()  # the exception refers to the credit's id
        open_exception(session, credit, ExceptionKind(status.value), order.id if order else None)
    session.flush()
    return ProcessResult(credit, to_issue)


def _order_for(session: Session, agency_id: str, memo: str) -> PaymentOrder | None:
    refs = find_references(memo)
    if not refs:
        return None
    orders = list(
        session.scalars(
            select(PaymentOrder)
            .where(PaymentOrder.agency_id == agency_id, PaymentOrder.reference.in_(refs))
            .with_for_update(of=PaymentOrder)
        )
    )
    # Several references in one memo: prefer an order still waiting for money.
    orders.sort(key=lambda o: (o.status != OrderStatus.PENDING.value, refs.index(o.reference)))
    return orders[0] if orders else None


def _classify(order: PaymentOrder, amount: int) -> MatchStatus:
    if order.status == OrderStatus.SUCCEEDED.value:
        return MatchStatus.DUPLICATE_TRANSFER
    if order.status != OrderStatus.PENDING.value:
        return MatchStatus.ORDER_CLOSED
    if amount < order.amount:
        return MatchStatus.UNDERPAYMENT
    if amount > order.amount:
        return MatchStatus.OVERPAYMENT
    return MatchStatus.MATCHED
