"""The exceptions queue: credits that did not match exactly, and their audited resolutions.

Staff work: a signed-in ``accountant`` of the credit's agency (another agency's exception or
order answers 404), with the CSRF token on every resolution. The audit records the signed-in
username as the actor, so nobody can resolve in someone else's name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.deps import EngineDep, unit_of_work
from api.routes.closes import AccountantCsrfDep, AccountantDep
from payments.exceptions import (
    actions_of,
    get_exception,
    list_exceptions,
    match_manually,
    record_refund_instruction,
    request_topup,
)
from payments.models import BankCredit, PaymentException
from payments.orders import get_order
from payments.presenters import iso
from settings.worker import dispatch

__all__ = [
    "ManualMatchIn",
    "RefundIn",
    "ResolutionIn",
    "exception_json",
    "resolve_match",
    "resolve_refund",
    "resolve_topup",
    "router",
]

router = APIRouter(prefix="/api/v1/payment-exceptions", tags=["exceptions queue"])


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


def exception_json(session: Session, exc: PaymentException) -> dict[str, Any]:
    credit = session.get(BankCredit, exc.credit_id)
    assert credit is not None
    return {
        "id": exc.id,
        "object": "payment_exception",
        "kind": exc.kind,
        "state": exc.state,
        "resolution": exc.resolution,
        "amount": exc.amount,
        "order_id": exc.order_id,
        "created_at": iso(exc.created_at),
        "resolved_at": iso(exc.resolved_at),
        "credit": {
            "bank_reference": credit.bank_reference,
            "account_number": credit.account_number,
            "amount": credit.amount,
            "memo": credit.memo,
            "booked_at": iso(credit.booked_at),
        },
        "actions": [
            {
                "action": a.action,
                "actor": a.actor,
                "reason": a.reason,
                "data": a.data,
                "at": iso(a.at),
            }
            for a in actions_of(session, exc.id)
        ],
    }


def resolve_match(
    engine: Engine, agency_id: str, exception_id: str, body: ManualMatchIn, actor: str
) -> dict[str, Any]:
    """Shared by the API and the desk page: match, commit, then issue the order's receipt."""
    with unit_of_work(engine) as session:
        exc = get_exception(session, exception_id, agency_id)
        order = get_order(session, body.order_id, agency_id=agency_id, lock=True)
        match_manually(
            session, exc, order, actor=actor, reason=body.reason, refund_excess=body.refund_excess
        )
        result = exception_json(session, exc)
        order_id = order.id
    from payments.tasks import issue_receipt

    dispatch(issue_receipt, order_id)
    return result


def resolve_topup(
    engine: Engine, agency_id: str, exception_id: str, body: ResolutionIn, actor: str
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        exc = get_exception(session, exception_id, agency_id)
        request_topup(session, exc, actor=actor, reason=body.reason)
        return exception_json(session, exc)


def resolve_refund(
    engine: Engine, agency_id: str, exception_id: str, body: RefundIn, actor: str
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
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
        return exception_json(session, exc)


@router.get("", summary="Open (or all) exceptions of the accountant's agency")
def list_(
    staff: AccountantDep,
    engine: EngineDep,
    state: Annotated[str | None, Query(pattern="^(open|awaiting_topup|resolved)$")] = None,
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        items = list_exceptions(session, staff.agency_id, state=state)
        return {"object": "list", "data": [exception_json(session, e) for e in items]}


@router.post("/{exception_id}/match", summary="Match a credit to an order by hand (audited)")
def match(
    exception_id: str, body: ManualMatchIn, staff: AccountantCsrfDep, engine: EngineDep
) -> dict[str, Any]:
    return resolve_match(engine, staff.agency_id, exception_id, body, staff.username)


@router.post("/{exception_id}/request-topup", summary="Ask the payer for the difference (audited)")
def topup(
    exception_id: str, body: ResolutionIn, staff: AccountantCsrfDep, engine: EngineDep
) -> dict[str, Any]:
    return resolve_topup(engine, staff.agency_id, exception_id, body, staff.username)


@router.post("/{exception_id}/refund", summary="Record a refund instruction to the payer (audited)")
def refund(
    exception_id: str, body: RefundIn, staff: AccountantCsrfDep, engine: EngineDep
) -> dict[str, Any]:
    return resolve_refund(engine, staff.agency_id, exception_id, body, staff.username)
