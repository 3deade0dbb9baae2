"""A citizen's transfer claim (issue 19, part 1): submit, approve, refuse, auto-approve.

The adapters (the citizen's pages, the accountant's desk) parse, call, dispatch, render; every
rule is here or in :mod:`payments.claims`. Approval is the exceptions queue's own manual match
(:func:`payments.exceptions.match_manually`), so the order is paid exactly as when an
accountant matches by hand, and the receipt is issued after the commit (``IssueReceipt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.claim_models import TransferClaim
from payments.claims import (
    CLAIMABLE_ORDERS,
    IP_PER_HOUR,
    LIVE,
    ORDER_PER_HOUR,
    ClaimRefused,
    ClaimState,
    attempts_since,
    factor_matches,
    find_fit,
    log_event,
    normalise_reference,
    parse_amount,
    parse_transfer_date,
)
from payments.errors import InvalidInput, NotFound
from payments.exceptions import _audit, get_exception, match_manually
from payments.models import Agency, BankCredit, PaymentException, PaymentOrder
from payments.orders import get_order
from payments.states import OrderStatus
from payments.usecases.follow_ups import FollowUp, IssueReceipt
from settings.db import utcnow

__all__ = [
    "ClaimIn",
    "ClaimOutcome",
    "approve_claim",
    "citizen_view",
    "parse_claim_form",
    "refuse_claim",
    "set_auto_approval",
    "submit_claim",
]

AUTO_ACTOR = "auto-approval"
MAX_AUTO_DAYS = 90


class ClaimIn(BaseModel):
    """What the citizen states; ``factor`` is the dossier's second factor (never stored)."""

    model_config = ConfigDict(extra="forbid")
    transfer_date: date
    amount: StrictInt = Field(gt=0, lt=10**13)
    bank: str = Field(min_length=2, max_length=100)
    reference: str = Field(min_length=4, max_length=64)
    factor: str = Field(pattern=r"^[0-9A-Za-z]{4}$")


def parse_claim_form(
    *, transfer_date: str, amount: str, bank: str, reference: str, factor: str, today: date
) -> ClaimIn:
    """The form's text fields, parsed server-side; :class:`InvalidInput` (422) names the field."""
    bank = bank.strip()
    if not 2 <= len(bank) <= 100:
        raise InvalidInput("ngân hàng / bank: 2-100 ký tự", code="invalid_claim_bank")
    factor = factor.strip()
    if not (len(factor) == 4 and factor.isalnum() and factor.isascii()):
        raise InvalidInput(
            "4 số cuối điện thoại hoặc CCCD / last 4 digits of phone or ID",
            code="invalid_claim_factor",
        )
    return ClaimIn(
        transfer_date=parse_transfer_date(transfer_date, today),
        amount=parse_amount(amount),
        bank=bank,
        reference=normalise_reference(reference),
        factor=factor,
    )


@dataclass
class ClaimOutcome:
    claim: TransferClaim
    follow_ups: tuple[FollowUp, ...] = ()
    rate_limited: bool = False
    repeated: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def _live_of_order(session: Session, order_id: str) -> TransferClaim | None:
    return session.scalar(
        select(TransferClaim)
        .where(TransferClaim.order_id == order_id, TransferClaim.state.in_(LIVE))
        .order_by(TransferClaim.created_at.desc())
        .limit(1)
    )


def submit_claim(
    session: Session, order_id: str, body: ClaimIn, *, client_ip: str, now: datetime | None = None
) -> ClaimOutcome:
    """Records the attempt whatever its result, and proposes (or auto-approves) a unique fit.

    The result the citizen may see is only ``proposed``/``auto_approved`` (it was theirs) or
    ``not_found`` (for every other reason, kept in the audit trail)."""
    now = now or utcnow()
    order = get_order(session, order_id, lock=True)
    stated = {
        "transfer_date": body.transfer_date.isoformat(),
        "amount": body.amount,
        "bank": body.bank,
        "reference": body.reference,
    }
    live = _live_of_order(session, order.id)
    if live is not None:
        log_event(session, live, "repeated", "citizen", {"ip": client_ip, "stated": stated})
        return ClaimOutcome(live, repeated=True)
    per_order, per_ip = attempts_since(
        session, now - timedelta(hours=1), order_id=order.id, client_ip=client_ip
    )
    claim = TransferClaim(
        agency_id=order.agency_id,
        order_id=order.id,
        state=ClaimState.NOT_FOUND.value,
        stated=stated,
        client_ip=client_ip[:64],
        created_at=now,
    )
    session.add(claim)
    session.flush()
    if per_order >= ORDER_PER_HOUR or per_ip >= IP_PER_HOUR:
        claim.state = ClaimState.RATE_LIMITED.value
        log_event(
            session,
            claim,
            "submitted",
            "citizen",
            {"ip": client_ip, "stated": stated, "result": "rate_limited"},
        )
        session.flush()
        return ClaimOutcome(claim, rate_limited=True)
    exc: PaymentException | None = None
    if order.status not in CLAIMABLE_ORDERS:
        reason = "order_not_claimable"
    elif not factor_matches(order.payer or {}, body.factor):
        reason = "second_factor_wrong"
    else:
        exc, reason = find_fit(
            session,
            order,
            reference=body.reference,
            amount=body.amount,
            day=body.transfer_date,
            zone=ZoneInfo(order.agency.time_zone),
        )
    if exc is None:
        log_event(
            session,
            claim,
            "submitted",
            "citizen",
            {"ip": client_ip, "stated": stated, "result": "not_found", "why": reason},
        )
        session.flush()
        return ClaimOutcome(claim, details={"why": reason})
    claim.exception_id = exc.id
    claim.amounts_differ = exc.amount != order.amount
    claim.state = ClaimState.PROPOSED.value
    log_event(
        session,
        claim,
        "submitted",
        "citizen",
        {"ip": client_ip, "stated": stated, "result": "proposed", "exception_id": exc.id},
    )
    _audit(
        session,
        exc,
        "claim_proposed",
        "citizen",
        f"transfer claim {claim.id} for order {order.reference}",
        {"claim_id": claim.id, "order_id": order.id, "amounts_differ": claim.amounts_differ},
    )
    session.flush()
    follow_ups = _auto_approve(session, claim, exc, order, now)
    return ClaimOutcome(claim, follow_ups=follow_ups)


def _auto_approve(
    session: Session,
    claim: TransferClaim,
    exc: PaymentException,
    order: PaymentOrder,
    now: datetime,
) -> tuple[FollowUp, ...]:
    """The agency's automatic approval: exact amount, unique fit (by construction), a pending
    order, and a credit at most ``claim_auto_approve_days`` old."""
    days = order.agency.claim_auto_approve_days
    if days is None or claim.amounts_differ or order.status != OrderStatus.PENDING.value:
        return ()
    credit = session.get(BankCredit, exc.credit_id)
    assert credit is not None
    if now - credit.booked_at > timedelta(days=days):
        return ()
    return _pay(session, claim, exc, order, AUTO_ACTOR, ClaimState.AUTO_APPROVED, now)


def _pay(
    session: Session,
    claim: TransferClaim,
    exc: PaymentException,
    order: PaymentOrder,
    actor: str,
    state: ClaimState,
    now: datetime,
) -> tuple[FollowUp, ...]:
    match_manually(
        session,
        exc,
        order,
        actor=actor,
        reason=f"transfer claim {claim.id} approved",
        refund_excess=exc.amount > order.amount,
    )
    claim.state = state.value
    claim.decided_by = actor
    claim.decided_at = now
    log_event(session, claim, state.value, actor, {"order_id": order.id})
    session.flush()
    return (IssueReceipt(order.id),)


def _claim_of(
    session: Session, agency_id: str, exception_id: str
) -> tuple[TransferClaim, PaymentException]:
    exc = get_exception(session, exception_id, agency_id)  # 404 for another agency
    claim = session.scalar(
        select(TransferClaim)
        .where(TransferClaim.exception_id == exc.id, TransferClaim.state.in_(LIVE))
        .with_for_update()
    )
    if claim is None:
        raise NotFound(f"no transfer claim on exception {exception_id!r}", code="claim_not_found")
    return claim, exc


def approve_claim(
    session: Session, agency_id: str, exception_id: str, actor: str, now: datetime | None = None
) -> tuple[TransferClaim, tuple[FollowUp, ...]]:
    """One click when the credit is the order's amount; otherwise two different accountants
    (the four-eyes rule of corrections: the first approver cannot be the second)."""
    now = now or utcnow()
    claim, exc = _claim_of(session, agency_id, exception_id)
    order = get_order(session, claim.order_id, agency_id=agency_id, lock=True)
    if order.status not in (OrderStatus.PENDING.value, OrderStatus.EXPIRED.value):
        raise ClaimRefused(
            f"order {order.reference} is {order.status}: it cannot be paid any more; "
            "record a refund (or match the credit to a new order) instead",
            code="claim_order_closed",
        )
    if exc.amount < order.amount:
        raise ClaimRefused(
            f"credit {exc.amount} VND is less than the order's {order.amount} VND; "
            "request a top-up instead",
            code="claim_underpaid",
        )
    if claim.amounts_differ:
        if claim.state == ClaimState.PROPOSED.value:
            claim.state = ClaimState.FIRST_APPROVED.value
            claim.first_approver = actor
            log_event(session, claim, "first_approved", actor, {"order_id": order.id})
            _audit(
                session,
                exc,
                "claim_first_approved",
                actor,
                f"transfer claim {claim.id}: a second accountant must approve",
                {"claim_id": claim.id},
            )
            session.flush()
            return claim, ()
        if claim.first_approver == actor:
            raise ClaimRefused(
                "the amounts differ: a second, different accountant must approve",
                code="four_eyes",
            )
    return claim, _pay(session, claim, exc, order, actor, ClaimState.APPROVED, now)


def refuse_claim(
    session: Session, agency_id: str, exception_id: str, actor: str, reason: str
) -> TransferClaim:
    """The claim is refused; the credit goes back to the queue as it was."""
    text = reason.strip()
    if not 5 <= len(text) <= 500:
        raise InvalidInput("reason: 5-500 characters explaining the decision")
    claim, exc = _claim_of(session, agency_id, exception_id)
    claim.state = ClaimState.REFUSED.value
    claim.decided_by = actor
    claim.decided_at = utcnow()
    log_event(session, claim, "refused", actor, {"reason": text})
    _audit(session, exc, "claim_refused", actor, text, {"claim_id": claim.id})
    session.flush()
    return claim


def set_auto_approval(session: Session, agency_id: str, days: int | None) -> Agency:
    """Turns the agency's automatic approval on (``days``: how old a credit may be) or off."""
    if days is not None and not 1 <= days <= MAX_AUTO_DAYS:
        raise InvalidInput(f"days: 1-{MAX_AUTO_DAYS}, or off")
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound(f"no agency {agency_id!r}", code="unknown_agency")
    agency.claim_auto_approve_days = days
    session.flush()
    return agency


CITIZEN_STATES = {
    ClaimState.PROPOSED.value: "pending",
    ClaimState.FIRST_APPROVED.value: "pending",
    ClaimState.APPROVED.value: "approved",
    ClaimState.AUTO_APPROVED.value: "approved",
    ClaimState.REFUSED.value: "not_found",
    ClaimState.NOT_FOUND.value: "not_found",
}


def citizen_view(session: Session, order_id: str) -> str | None:
    """What the pay page says of the order's last claim: ``pending``, ``approved`` or
    ``not_found`` (refused and unfound read alike); ``None`` when no claim was made.
    Rate-limited attempts are not shown (the citizen saw the 429 when it happened)."""
    last = session.scalar(
        select(TransferClaim.state)
        .where(
            TransferClaim.order_id == order_id,
            TransferClaim.state != ClaimState.RATE_LIMITED.value,
        )
        .order_by(TransferClaim.created_at.desc(), TransferClaim.id)
        .limit(1)
    )
    return None if last is None else CITIZEN_STATES.get(last, "not_found")
