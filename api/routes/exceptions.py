"""The exceptions queue: credits that did not match exactly, and their audited resolutions.

UNFINISHED (issue 6): staff sign-in does not exist yet, so these routes take the one-stop
client's key and record the named staff member as "<actor> (via <client>)".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.deps import ClientDep, EngineDep, unit_of_work
from api.schemas import ManualMatchIn, RefundIn, ResolutionIn
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


def _actor(body: ResolutionIn, client_name: str) -> str:
    return f"{body.actor} (via {client_name})"


@router.get("", summary="Open (or all) exceptions of the client's agency")
def list_(
    client: ClientDep,
    engine: EngineDep,
    state: Annotated[str | None, Query(pattern="^(open|awaiting_topup|resolved)$")] = None,
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        items = list_exceptions(session, client.agency_id, state=state)
        return {"object": "list", "data": [exception_json(session, e) for e in items]}


@router.post("/{exception_id}/match", summary="Match a credit to an order by hand (audited)")
def match(
    exception_id: str, body: ManualMatchIn, client: ClientDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        exc = get_exception(session, exception_id, client.agency_id)
        order = get_order(session, body.order_id, agency_id=client.agency_id, lock=True)
        match_manually(
            session,
            exc,
            order,
            actor=_actor(body, client.name),
            reason=body.reason,
            refund_excess=body.refund_excess,
        )
        result = exception_json(session, exc)
        order_id = order.id
    from payments.tasks import issue_receipt

    dispatch(issue_receipt, order_id)
    return result


@router.post("/{exception_id}/request-topup", summary="Ask the payer for the difference (audited)")
def topup(
    exception_id: str, body: ResolutionIn, client: ClientDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        exc = get_exception(session, exception_id, client.agency_id)
        request_topup(session, exc, actor=_actor(body, client.name), reason=body.reason)
        return exception_json(session, exc)


@router.post("/{exception_id}/refund", summary="Record a refund instruction to the payer (audited)")
def refund(
    exception_id: str, body: RefundIn, client: ClientDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        exc = get_exception(session, exception_id, client.agency_id)
        record_refund_instruction(
            session,
            exc,
            actor=_actor(body, client.name),
            reason=body.reason,
            amount=body.amount,
            payer_account=body.payer_account,
            payer_bank=body.payer_bank,
        )
        return exception_json(session, exc)
