"""Resolving breaks by audited correction events, never by editing rows.

A correction names an action. Actions that move money (matching a credit to an order,
instructing a refund) wait for a second person's approval; the others apply at once. Applying
calls the owning package's own operation, so the ledgers change only through their rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from payments.exceptions import match_manually, record_refund_instruction
from payments.models import PaymentException, PaymentOrder
from payments.orders import get_order
from reconciliation.errors import BreakNotFound, CorrectionRefused, SecondPersonRequired
from reconciliation.models import Correction, ReconBreak
from settings.db import utcnow

__all__ = ["ACTIONS", "approve_correction", "request_correction"]

ACTIONS: dict[str, bool] = {
    "explain": False,  # why it is not an error (e.g. a transfer from the treasury)
    "issue_receipt": False,
    "match_to_order": True,
    "refund_instruction": True,
}
"""Action → whether it moves money (and so needs a second person)."""


def _get_break(session: Session, break_id: str, agency_id: str) -> ReconBreak:
    row = session.get(ReconBreak, break_id, with_for_update=True)
    if row is None or row.agency_id != agency_id:
        raise BreakNotFound(f"no break {break_id!r}")
    return row


def request_correction(
    session: Session,
    break_id: str,
    *,
    agency_id: str,
    action: str,
    reason: str,
    actor: str,
    params: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Correction:
    if action not in ACTIONS:
        raise CorrectionRefused(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not 5 <= len(reason.strip()) <= 500:
        raise CorrectionRefused("reason: 5-500 characters")
    row = _get_break(session, break_id, agency_id)
    if row.state != "open":
        raise CorrectionRefused(f"break {row.id} is {row.state}")
    correction = Correction(
        break_id=row.id,
        action=action,
        moves_money=ACTIONS[action],
        params=params or {},
        reason=reason.strip(),
        requested_by=actor,
        requested_at=now or utcnow(),
        state="requested",
    )
    session.add(correction)
    session.flush()
    if not correction.moves_money:
        _apply(session, correction, row, approver=None)
    return correction


def approve_correction(
    session: Session, correction_id: str, *, agency_id: str, approver: str
) -> Correction:
    correction = session.get(Correction, correction_id, with_for_update=True)
    if correction is None:
        raise BreakNotFound(f"no correction {correction_id!r}")
    row = _get_break(session, correction.break_id, agency_id)
    if correction.state != "requested":
        raise CorrectionRefused(f"correction {correction.id} is {correction.state}")
    if approver.strip().casefold() == correction.requested_by.strip().casefold():
        raise SecondPersonRequired(f"{approver} requested this correction and cannot approve it")
    _apply(session, correction, row, approver=approver)
    return correction


def _apply(
    session: Session, correction: Correction, row: ReconBreak, *, approver: str | None
) -> None:
    actor = approver or correction.requested_by
    params = correction.params
    if correction.action == "explain":
        outcome = "explained"
    elif correction.action == "issue_receipt":
        from payments.issuing import issue_for_order
        from settings.config import get_settings

        receipt = issue_for_order(session, row.ref, get_settings())
        outcome = f"receipt {receipt.number if receipt else 'not issued: order not paid'}"
    else:
        exc = (
            session.query(PaymentException)
            .filter(PaymentException.credit_id == row.ref)
            .one_or_none()
        )
        if exc is None:
            raise CorrectionRefused("this break is not about an unmatched credit")
        if correction.action == "match_to_order":
            order: PaymentOrder = get_order(
                session, str(params.get("order_id")), agency_id=row.agency_id, lock=True
            )
            match_manually(
                session, exc, order, actor=f"{actor} (approved)", reason=correction.reason
            )
            outcome = f"matched to order {order.id}"
        else:
            amount = int(params.get("amount") or exc.amount)
            record_refund_instruction(
                session, exc, actor=f"{actor} (approved)", reason=correction.reason, amount=amount
            )
            outcome = f"refund of {amount} VND instructed"
    correction.state = "applied"
    correction.approved_by = approver
    correction.approved_at = utcnow() if approver else None
    correction.outcome = outcome
    row.state = "resolved"
    row.resolved_at = utcnow()
    row.owner = actor
    session.flush()
