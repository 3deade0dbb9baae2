"""Resolving the exceptions queue (credits that did not match exactly), for the API and the desk.

The commands are pydantic models because both adapters validate untrusted input with them
(JSON body or form fields) and must refuse it the same way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.orm import Session

from payments.exceptions import (
    get_exception,
    match_manually,
    record_refund_instruction,
    request_topup,
)
from payments.models import PaymentException
from payments.orders import get_order
from payments.usecases.follow_ups import FollowUp, IssueReceipt

__all__ = [
    "ManualMatchIn",
    "RefundIn",
    "ResolutionIn",
    "resolve_match",
    "resolve_refund",
    "resolve_topup",
]


class ResolutionIn(BaseModel):
    """Why; the deciding person is the signed-in member, so there is no ``actor`` field."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=5, max_length=500)


class ManualMatchIn(ResolutionIn):
    order_id: str = Field(min_length=1, max_length=32)
    refund_excess: bool = False


class RefundIn(ResolutionIn):
    amount: StrictInt = Field(gt=0, lt=10**13)
    payer_account: str | None = Field(default=None, max_length=34)
    payer_bank: str | None = Field(default=None, max_length=100)


def resolve_match(
    session: Session, agency_id: str, exception_id: str, body: ManualMatchIn, actor: str
) -> tuple[PaymentException, tuple[FollowUp, ...]]:
    """The credit pays the order; its receipt is issued after the commit."""
    exc = get_exception(session, exception_id, agency_id)
    order = get_order(session, body.order_id, agency_id=agency_id, lock=True)
    match_manually(
        session, exc, order, actor=actor, reason=body.reason, refund_excess=body.refund_excess
    )
    return exc, (IssueReceipt(order.id),)


def resolve_topup(
    session: Session, agency_id: str, exception_id: str, body: ResolutionIn, actor: str
) -> PaymentException:
    exc = get_exception(session, exception_id, agency_id)
    request_topup(session, exc, actor=actor, reason=body.reason)
    return exc


def resolve_refund(
    session: Session, agency_id: str, exception_id: str, body: RefundIn, actor: str
) -> PaymentException:
    exc = get_exception(session, exception_id, agency_id)
    record_refund_instruction(
        session,
        exc,
        actor=actor,
        reason=body.reason,
        amount=body.amount,
        payer_account=body.payer_account,
        payer_bank=body.payer_bank,
    )
    return exc
