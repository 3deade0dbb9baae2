"""From a journaled bank event to a recognised payment, or to an exception.

Matching is deliberately strict: the transfer reference must be found in the memo (despite
bank mangling) and the amount must be exact; the account must be the agency's own. Anything
else is recorded with a ``match_status`` naming why and opens an item in the exceptions queue
(:mod:`payments.exceptions`) for staff to resolve. Only an exact match links a credit to an
order; an under-payment awaiting a top-up completes the order when the rest arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payments.bankfeeds import NormalisedCredit, normalise
from payments.exceptions import ExceptionKind, ExceptionState, close_topups, open_exception
from payments.memo import find_references
from payments.models import Agency, BankCredit, BankEvent, PaymentException, PaymentOrder
from payments.onestop_partners import prefetch_transactions
from payments.orders import mark_succeeded
from payments.states import OrderStatus
from settings.db import utcnow

__all__ = ["MatchStatus", "ProcessResult", "process_event", "process_events"]

log = logging.getLogger(__name__)


class MatchStatus(StrEnum):
    MATCHED = "matched"
    UNKNOWN_REFERENCE = "unknown_reference"
    UNDERPAYMENT = "underpayment"
    OVERPAYMENT = "overpayment"
    ORDER_CLOSED = "order_closed"
    DUPLICATE_TRANSFER = "duplicate_transfer"
    WRONG_ACCOUNT = "wrong_account"


class ProcessResult:
    __slots__ = ("credit", "order_to_issue", "paid_order")

    def __init__(
        self,
        credit: BankCredit | None,
        order_to_issue: str | None,
        paid_order: PaymentOrder | None = None,
    ) -> None:
        self.credit = credit
        self.order_to_issue = order_to_issue
        self.paid_order = paid_order
        """The order this credit paid, locked and loaded: the issuer need not read it again."""


def process_event(session: Session, event_id: int) -> ProcessResult:
    """Idempotent: an event already processed, or a credit already known, changes nothing.

    :func:`process_events` with a batch of one: one code path for a lone webhook and a burst.
    """
    return process_events(session, [event_id]).get(event_id, ProcessResult(None, None))


def process_events(session: Session, event_ids: Sequence[int]) -> dict[int, ProcessResult]:
    """Matches a batch of journaled events with a handful of statements, whatever its size.

    The events, the credits already known, the orders their memos name (locked), and the
    money already received on those orders are each read with one query; then every event is
    decided in journal order, in memory, so two credits for one order in the same batch are
    told apart exactly as if they had come one by one (the second is a duplicate transfer).
    Credits, order updates and exceptions are written by one flush. An event whose raw
    payload cannot be read is logged and left unprocessed for a person to look at; the rest
    of the batch goes on.
    """
    events = list(
        session.scalars(
            select(BankEvent)
            .where(BankEvent.id.in_(list(event_ids)), BankEvent.processed_at.is_(None))
            .order_by(BankEvent.id)
            .with_for_update(of=BankEvent)
        )
    )
    results: dict[int, ProcessResult] = {}
    if not events:
        return results
    agencies = {
        a.id: a
        for a in session.scalars(select(Agency).where(Agency.id.in_({e.agency_id for e in events})))
    }
    readable: list[tuple[BankEvent, NormalisedCredit]] = []
    now = utcnow()
    for event in events:
        try:
            data = normalise(event, ZoneInfo(agencies[event.agency_id].time_zone))
        except Exception:
            log.exception("bank event %s cannot be read; left for a person to look at", event.id)
            continue
        event.processed_at = now
        if data.incoming:
            readable.append((event, data))
        else:
            results[event.id] = ProcessResult(None, None)
    known = _known_credits(session, readable)
    orders = _orders_named(session, readable)
    prefetch_transactions(session, [o.id for o in orders.values()])  # CONFIRMs: one query
    earlier = _topups(session, [o.id for o in orders.values()])
    seen: dict[tuple[str, str], BankCredit] = {}
    decided: list[tuple[BankCredit, MatchStatus, PaymentOrder | None, int]] = []
    for event, data in readable:
        ident = (event.agency_id, data.bank_reference)
        already = known.get(ident) or seen.get(ident)
        if already is not None:
            results[event.id] = ProcessResult(already, None)
            continue
        agency = agencies[event.agency_id]
        order: PaymentOrder | None = None
        paid_before = 0
        if agency.bank_account not in (data.account_number, data.sub_account):
            status = MatchStatus.WRONG_ACCOUNT
        else:
            order = _pick(orders, event.agency_id, data.memo)
            if order is None:
                status = MatchStatus.UNKNOWN_REFERENCE
            else:
                paid_before = earlier.get(order.id, 0)
                status = _classify(order, data.amount + paid_before)
        matched = status is MatchStatus.MATCHED
        credit = BankCredit(
            agency_id=event.agency_id,
            event_id=event.id,
            bank_reference=data.bank_reference,
            account_number=data.account_number,
            amount=data.amount,
            memo=data.memo,
            booked_at=data.booked_at,
            # only an exact match links a credit to an order
            order_id=order.id if matched and order is not None else None,
            match_status=status.value,
        )
        session.add(credit)
        seen[ident] = credit
        if matched and order is not None:
            mark_succeeded(order, method="transfer", at=data.booked_at)
            earlier.pop(order.id, None)
        decided.append((credit, status, order, paid_before))
        paid = order if matched else None
        results[event.id] = ProcessResult(credit, paid.id if paid else None, paid)
    session.flush()  # credits get their ids; exceptions refer to them
    for credit, status, order, paid_before in decided:
        if status is MatchStatus.MATCHED:
            if paid_before and order is not None:
                close_topups(session, order.id, credit.bank_reference)
        else:
            kind = ExceptionKind(status.value)
            open_exception(session, credit, kind, order.id if order else None)
    session.flush()
    return results


def _known_credits(
    session: Session, readable: list[tuple[BankEvent, NormalisedCredit]]
) -> dict[tuple[str, str], BankCredit]:
    if not readable:
        return {}
    pairs = {(event.agency_id, data.bank_reference) for event, data in readable}
    found = session.scalars(
        select(BankCredit).where(
            BankCredit.agency_id.in_({a for a, _ in pairs}),
            BankCredit.bank_reference.in_({r for _, r in pairs}),
        )
    )
    return {(c.agency_id, c.bank_reference): c for c in found}


def _orders_named(
    session: Session, readable: list[tuple[BankEvent, NormalisedCredit]]
) -> dict[tuple[str, str], PaymentOrder]:
    """Every order any memo of the batch names, locked, by (agency, reference)."""
    wanted: set[tuple[str, str]] = set()
    for event, data in readable:
        wanted.update((event.agency_id, ref) for ref in find_references(data.memo))
    if not wanted:
        return {}
    found = session.scalars(
        select(PaymentOrder)
        .where(
            PaymentOrder.agency_id.in_({a for a, _ in wanted}),
            PaymentOrder.reference.in_({r for _, r in wanted}),
        )
        .order_by(PaymentOrder.id)  # one lock order for every worker: no deadlock between them
        .with_for_update(of=PaymentOrder)
    )
    return {(o.agency_id, o.reference): o for o in found}


def _topups(session: Session, order_ids: list[str]) -> dict[str, int]:
    """Money already received through under-payments awaiting a top-up, per order."""
    if not order_ids:
        return {}
    rows = session.execute(
        select(PaymentException.order_id, func.sum(PaymentException.amount))
        .where(
            PaymentException.order_id.in_(order_ids),
            PaymentException.state == ExceptionState.AWAITING_TOPUP.value,
        )
        .group_by(PaymentException.order_id)
    )
    return {str(order_id): int(total or 0) for order_id, total in rows}


def _pick(
    orders: dict[tuple[str, str], PaymentOrder], agency_id: str, memo: str
) -> PaymentOrder | None:
    refs = find_references(memo)
    candidates = [orders[(agency_id, ref)] for ref in refs if (agency_id, ref) in orders]
    # Several references in one memo: prefer an order still waiting for money.
    candidates.sort(key=lambda o: (o.status != OrderStatus.PENDING.value, refs.index(o.reference)))
    return candidates[0] if candidates else None


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
