"""Domain rules of a citizen's transfer claim (issue 19, part 1): "I paid by transfer but it
is not recorded".

What fits (documented in ``docs/claims.md``):

* the credit has an **open** exception of the order's agency, of a kind a citizen's mistake
  produces (:data:`CLAIMABLE_KINDS`), not tied to another order;
* its bank reference equals the one stated (case, spaces and dashes ignored). The sending
  account is **not** stored by any feed we normalise (SePay's ``accountNumber`` is the
  receiving account; statements and Casso carry no payer account), so a claim matches on the
  bank reference only;
* its amount equals the stated amount exactly (no tolerance: the bank shows the exact figure);
* its local booking date (the agency's time zone) is the stated date, or one day either side
  (:data:`DATE_SLACK_DAYS`: apps show the value date, which differs from the booking date
  around midnight and on weekends).

The bank reference is unique per agency, so a fit is unique by construction. A claim that
fits nothing, fits another order's credit, or gives a wrong second factor gets the same
answer: the reason is kept in the audit trail only.
"""

from __future__ import annotations

import hmac
import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payments.claim_models import ClaimEvent, TransferClaim
from payments.errors import InvalidInput, PaymentsError
from payments.exceptions import ExceptionKind, ExceptionState
from payments.models import BankCredit, PaymentException, PaymentOrder
from payments.states import OrderStatus

__all__ = [
    "CLAIMABLE_KINDS",
    "CLAIMABLE_ORDERS",
    "DATE_SLACK_DAYS",
    "IP_PER_HOUR",
    "LIVE",
    "ORDER_PER_HOUR",
    "ClaimRefused",
    "ClaimState",
    "attempts_since",
    "factor_matches",
    "find_fit",
    "live_claims",
    "log_event",
    "normalise_reference",
    "parse_amount",
    "parse_transfer_date",
    "second_factor",
]


class ClaimState(StrEnum):
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    PROPOSED = "proposed"
    FIRST_APPROVED = "first_approved"
    """Amounts differ: one accountant approved; a second, different one must too."""
    APPROVED = "approved"
    AUTO_APPROVED = "auto_approved"
    REFUSED = "refused"


LIVE = (ClaimState.PROPOSED.value, ClaimState.FIRST_APPROVED.value)
CLAIMABLE_KINDS = (
    ExceptionKind.UNKNOWN_REFERENCE.value,
    ExceptionKind.UNDERPAYMENT.value,
    ExceptionKind.OVERPAYMENT.value,
    ExceptionKind.ORDER_CLOSED.value,
)
CLAIMABLE_ORDERS = (
    OrderStatus.PENDING.value,
    OrderStatus.EXPIRED.value,
    OrderStatus.CANCELLED.value,
)
DATE_SLACK_DAYS = 1
ORDER_PER_HOUR = 5
"""Attempts per order per rolling hour (counted from the audited claims table)."""
IP_PER_HOUR = 20
"""Attempts per client address per rolling hour: higher than per order, as a one-stop shop's
public computer is shared by many citizens."""
MAX_AGE_DAYS = 400


class ClaimRefused(PaymentsError):
    code = "claim_refused"
    status = 409
    title_vi = "Không thể thực hiện với yêu cầu xác nhận chuyển khoản này"
    title_en = "This transfer claim cannot be decided so"


# --------------------------------------------------------------------------- parsing

_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_REF = re.compile(r"^[0-9A-Z]{4,64}$")


def parse_transfer_date(text: str, today: date) -> date:
    """``dd/mm/yyyy`` whatever the browser's language; not in the future, not older than a
    year and a month."""
    m = _DMY.fullmatch(text.strip())
    if m is None:
        raise InvalidInput(
            "ngày chuyển khoản: dạng dd/mm/yyyy / transfer date: dd/mm/yyyy",
            code="invalid_claim_date",
        )
    try:
        day = date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError as exc:
        raise InvalidInput(
            "ngày chuyển khoản không tồn tại / no such date", code="invalid_claim_date"
        ) from exc
    if day > today + timedelta(days=1) or day < today - timedelta(days=MAX_AGE_DAYS):
        raise InvalidInput(
            "ngày chuyển khoản ngoài khoảng cho phép / transfer date out of range",
            code="invalid_claim_date",
        )
    return day


def parse_amount(text: str) -> int:
    """Whole đồng as people type them: ``5.000``, ``5 000``, ``5000đ``."""
    digits = re.sub(r"[\s.,]|đ$|VND$|vnd$", "", text.strip())
    if not digits.isdigit() or not 0 < int(digits) < 10**13:
        raise InvalidInput(
            "số tiền: số nguyên đồng / amount: a whole number of đồng",
            code="invalid_claim_amount",
        )
    return int(digits)


def normalise_reference(text: str) -> str:
    """The bank's transaction reference without case, spaces or dashes."""
    ref = re.sub(r"[\s\-]", "", text).upper()
    if not _REF.fullmatch(ref):
        raise InvalidInput(
            "mã giao dịch ngân hàng: 4–64 chữ và số / bank reference: 4-64 letters and digits",
            code="invalid_claim_reference",
        )
    return ref


# --------------------------------------------------------------------------- second factor


def second_factor(payer: dict[str, Any]) -> str | None:
    """Last four digits of the phone, or of the ID number when there is no phone."""
    phone = re.sub(r"\D", "", str(payer.get("phone") or ""))
    if phone:
        return phone[-4:] if len(phone) >= 4 else None
    id_number = re.sub(r"[^0-9A-Za-z]", "", str(payer.get("id_number") or ""))
    return id_number[-4:].upper() if len(id_number) >= 4 else None


def factor_matches(payer: dict[str, Any], given: str) -> bool:
    expected = second_factor(payer)
    # Constant time, so response timing does not tell how many digits were right.
    return expected is not None and hmac.compare_digest(expected, given.upper())


# --------------------------------------------------------------------------- matching


def find_fit(
    session: Session,
    order: PaymentOrder,
    *,
    reference: str,
    amount: int,
    day: date,
    zone: ZoneInfo,
) -> tuple[PaymentException | None, str]:
    """The open exception the claim fits, or ``None`` with the (internal) reason."""
    row = session.execute(
        select(PaymentException, BankCredit)
        .join(BankCredit, BankCredit.id == PaymentException.credit_id)
        .where(
            BankCredit.agency_id == order.agency_id,
            func.upper(func.replace(BankCredit.bank_reference, "-", "")) == reference,
        )
        .with_for_update(of=PaymentException)
    ).first()
    if row is None:
        return None, "no_credit"
    exc, credit = row
    if exc.state != ExceptionState.OPEN.value or exc.kind not in CLAIMABLE_KINDS:
        return None, "credit_not_claimable"
    if exc.order_id is not None and exc.order_id != order.id:
        return None, "credit_of_another_order"
    if credit.amount != amount:
        return None, "amount_differs"
    booked = credit.booked_at.astimezone(zone).date()
    if abs((booked - day).days) > DATE_SLACK_DAYS:
        return None, "date_differs"
    other = session.scalar(
        select(TransferClaim.id).where(
            TransferClaim.exception_id == exc.id,
            TransferClaim.state.in_(LIVE),
            TransferClaim.order_id != order.id,
        )
    )
    if other is not None:
        return None, "claimed_by_another_order"
    return exc, "fit"


def attempts_since(
    session: Session, since: datetime, *, order_id: str, client_ip: str
) -> tuple[int, int]:
    """Attempts in the window: (for this order, from this address)."""
    per_order = session.scalar(
        select(func.count())
        .select_from(TransferClaim)
        .where(TransferClaim.order_id == order_id, TransferClaim.created_at >= since)
    )
    per_ip = session.scalar(
        select(func.count())
        .select_from(TransferClaim)
        .where(TransferClaim.client_ip == client_ip, TransferClaim.created_at >= since)
    )
    return int(per_order or 0), int(per_ip or 0)


def live_claims(session: Session, exception_ids: list[str]) -> dict[str, TransferClaim]:
    """The claim awaiting a decision on each exception (the desk shows it with the credit)."""
    if not exception_ids:
        return {}
    return {
        c.exception_id or "": c
        for c in session.scalars(
            select(TransferClaim).where(
                TransferClaim.exception_id.in_(exception_ids), TransferClaim.state.in_(LIVE)
            )
        )
    }


def log_event(
    session: Session,
    claim: TransferClaim,
    action: str,
    actor: str,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(ClaimEvent(claim_id=claim.id, action=action, actor=actor, data=data or {}))
