"""The exceptions queue: credits that did not match exactly, and their audited resolutions.

Staff work: a signed-in ``accountant`` of the credit's agency (another agency's exception or
order answers 404), with the CSRF token on every resolution. The audit records the signed-in
username as the actor, so nobody can resolve in someone else's name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.deps import EngineDep, unit_of_work
from api.staff.deps import AccountantCsrfDep, AccountantDep
from payments.exceptions import actions_of, list_exceptions
from payments.models import BankCredit, PaymentException
from payments.presenters import iso
from payments.usecases.exceptions import (
    ManualMatchIn,
    RefundIn,
    ResolutionIn,
    resolve_match,
    resolve_refund,
    resolve_topup,
)
from payments.usecases.follow_ups import run_after_commit

__all__ = ["exception_json", "router"]

router = APIRouter(prefix="/api/v1/payment-exceptions", tags=["exceptions queue"])


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
    with unit_of_work(engine) as session:
        exc, follow_ups = resolve_match(
            session, staff.agency_id, exception_id, body, staff.username
        )
        result = exception_json(session, exc)
    run_after_commit(follow_ups)
    return result


@router.post("/{exception_id}/request-topup", summary="Ask the payer for the difference (audited)")
def topup(
    exception_id: str, body: ResolutionIn, staff: AccountantCsrfDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        exc = resolve_topup(session, staff.agency_id, exception_id, body, staff.username)
        return exception_json(session, exc)


@router.post("/{exception_id}/refund", summary="Record a refund instruction to the payer (audited)")
def refund(
    exception_id: str, body: RefundIn, staff: AccountantCsrfDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        exc = resolve_refund(session, staff.agency_id, exception_id, body, staff.username)
        return exception_json(session, exc)
