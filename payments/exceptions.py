"""The exceptions queue: credits that did not match an order exactly, and their resolutions.

Kinds follow what staff must do about them. Every resolution is an audited action with actor
and reason; money is never moved by this service (the agency refunds from its own account),
so a refund is recorded as an *instruction*.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payments.errors import InvalidInput, InvalidTransition, NotFound
from payments.models import BankCredit, ExceptionAction, PaymentException, PaymentOrder
from payments.orders import mark_succeeded
from payments.states import OrderStatus
from settings.db import utcnow

__all__ = [
    "ExceptionKind",
    "ExceptionState",
    "get_exception",
    "list_exceptions",
    "match_manually",
    "open_exception",
    "record_refund_instruction",
    "request_topup",
    "topup_total",
]


class ExceptionKind(StrEnum):
    UNKNOWN_REFERENCE = "unknown_reference"
    """No valid transfer reference of ours in the memo."""
    UNDERPAYMENT = "underpayment"
    """Less than the order's amount: the order stays pending."""
    OVERPAYMENT = "overpayment"
    """More than the order's amount: never silently accepted (the excess must be refunded)."""
    ORDER_CLOSED = "order_closed"
    """Paid after the order expired or was cancelled."""
    DUPLICATE_TRANSFER = "duplicate_transfer"
    """A second payment for an order already paid."""
    WRONG_ACCOUNT = "wrong_account"
    """Credited to an account that is not the agency's own: never matched."""


class ExceptionState(StrEnum):
    OPEN = "open"
    AWAITING_TOPUP = "awaiting_topup"
    RESOLVED = "resolved"


def open_exception(
    session: Session, credit: BankCredit, kind: ExceptionKind, order_id: str | None
) -> PaymentException:
    exc = PaymentException(
        agency_id=credit.agency_id,
        credit_id=credit.id,
        order_id=order_id,
        kind=kind.value,
        amount=credit.amount,
        state=ExceptionState.OPEN.value,
    )
    session.add(exc)
    session.flush()
    _audit(session, exc, "opened", "system", f"credit {credit.bank_reference}: {kind.value}")
    return exc


def _audit(
    session: Session,
    exc: PaymentException,
    action: str,
    actor: str,
    reason: str,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        ExceptionAction(
            exception_id=exc.id, action=action, actor=actor, reason=reason, data=data or {}
        )
    )


def get_exception(session: Session, exception_id: str, agency_id: str) -> PaymentException:
    exc = session.get(PaymentException, exception_id, with_for_update=True)
    if exc is None or exc.agency_id != agency_id:
        raise NotFound(f"no payment exception {exception_id!r}", code="exception_not_found")
    return exc


def list_exceptions(
    session: Session, agency_id: str, *, state: str | None = None, limit: int = 200
) -> list[PaymentException]:
    query = select(PaymentException).where(PaymentException.agency_id == agency_id)
    if state is not None:
        query = query.where(PaymentException.state == state)
    return list(session.scalars(query.order_by(PaymentException.created_at).limit(limit)))


def actions_of(session: Session, exception_id: str) -> list[ExceptionAction]:
    return list(
        session.scalars(
            select(ExceptionAction)
            .where(ExceptionAction.exception_id == exception_id)
            .order_by(ExceptionAction.id)
        )
    )


def _require_reason(reason: str) -> str:
    text = reason.strip()
    if not 5 <= len(text) <= 500:
        raise InvalidInput("reason: 5-500 characters explaining the decision")
    return text


def _require_unresolved(exc: PaymentException) -> None:
    if exc.state == ExceptionState.RESOLVED.value:
        raise InvalidTransition(f"exception {exc.id} is already resolved ({exc.resolution})")


def topup_total(session: Session, order_id: str) -> int:
    """Money already received for an order through under-payments awaiting a top-up."""
    total = session.scalar(
        select(func.coalesce(func.sum(PaymentException.amount), 0)).where(
            PaymentException.order_id == order_id,
            PaymentException.state == ExceptionState.AWAITING_TOPUP.value,
        )
    )
    return int(total or 0)


def close_topups(session: Session, order_id: str, credit_ref: str) -> None:
    """A top-up completed the order: the earlier under-payments are resolved by it."""
    for exc in session.scalars(
        select(PaymentException).where(
            PaymentException.order_id == order_id,
            PaymentException.state == ExceptionState.AWAITING_TOPUP.value,
        )
    ):
        exc.state = ExceptionState.RESOLVED.value
        exc.resolution = "completed_by_topup"
        exc.resolved_at = utcnow()
        _audit(session, exc, "completed_by_topup", "system", f"top-up credit {credit_ref}")


def match_manually(
    session: Session,
    exc: PaymentException,
    order: PaymentOrder,
    *,
    actor: str,
    reason: str,
    refund_excess: bool = False,
    now: datetime | None = None,
) -> PaymentOrder:
    """Staff decide a credit pays an order (e.g. reference mistyped).

    The amount must be exact, except that an over-payment may be accepted together with a
    refund instruction for the excess (``refund_excess``), recorded in the same audit entry.
    """
    reason = _require_reason(reason)
    _require_unresolved(exc)
    if exc.kind == ExceptionKind.WRONG_ACCOUNT.value:
        raise InvalidInput(
            "a credit to another account can never pay an order", code="wrong_account"
        )
    if order.agency_id != exc.agency_id:
        raise NotFound(f"no payment order {order.id!r}", code="order_not_found")
    if order.status not in (OrderStatus.PENDING.value, OrderStatus.EXPIRED.value):
        # an expired order may still be paid by a transfer a person matched to it (late money);
        # a cancelled or failed one never
        raise InvalidTransition(f"order {order.id} is {order.status}, not pending or expired")
    already = topup_total(session, order.id) if exc.order_id == order.id else 0
    excess = exc.amount + already - order.amount
    if excess != 0 and not (refund_excess and excess > 0):
        raise InvalidInput(
            f"credit {exc.amount} VND (+{already} earlier) does not equal the order's "
            f"{order.amount} VND; request a top-up or record a refund instead",
            code="amount_mismatch",
        )
    credit = session.get(BankCredit, exc.credit_id)
    assert credit is not None
    credit.order_id = order.id
    mark_succeeded(order, method="transfer", at=credit.booked_at if now is None else now)
    exc.order_id = order.id
    exc.state = ExceptionState.RESOLVED.value
    exc.resolution = "matched_manually"
    exc.resolved_at = utcnow()
    data: dict[str, Any] = {"order_id": order.id}
    if excess > 0:
        data["refund_excess"] = excess
    _audit(session, exc, "matched_manually", actor, reason, data)
    if already:
        close_topups(session, order.id, credit.bank_reference)
    session.flush()
    return order


def request_topup(
    session: Session, exc: PaymentException, *, actor: str, reason: str
) -> PaymentException:
    """An under-payment stays on its order; the payer is asked to send the difference."""
    reason = _require_reason(reason)
    _require_unresolved(exc)
    if exc.kind != ExceptionKind.UNDERPAYMENT.value or exc.order_id is None:
        raise InvalidInput("a top-up can be requested for an under-payment only")
    order = session.get(PaymentOrder, exc.order_id)
    assert order is not None
    if order.status != OrderStatus.PENDING.value:
        raise InvalidTransition(f"order {order.id} is {order.status}; record a refund instead")
    missing = order.amount - exc.amount - topup_total(session, order.id)
    exc.state = ExceptionState.AWAITING_TOPUP.value
    _audit(session, exc, "topup_requested", actor, reason, {"missing": missing})
    session.flush()
    return exc


def record_refund_instruction(
    session: Session,
    exc: PaymentException,
    *,
    actor: str,
    reason: str,
    amount: int,
    payer_account: str | None = None,
    payer_bank: str | None = None,
) -> PaymentException:
    """Records that the agency must return ``amount`` to the payer from its own account."""
    reason = _require_reason(reason)
    _require_unresolved(exc)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= exc.amount:
        raise InvalidInput(f"refund amount must be a whole number of VND in 1..{exc.amount}")
    exc.state = ExceptionState.RESOLVED.value
    exc.resolution = "refund_instructed"
    exc.resolved_at = utcnow()
    _audit(
        session,
        exc,
        "refund_instructed",
        actor,
        reason,
        {"amount": amount, "payer_account": payer_account, "payer_bank": payer_bank},
    )
    session.flush()
    return exc
