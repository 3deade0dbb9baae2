"""Finding the day's breaks with set-based SQL: one query per kind, never a loop over rows.

Each query returns ``(ref, amount, detail)`` for one kind of break within the business day's
UTC window. The four ledgers are bank credits, payments (succeeded orders), receipts and the
summaries the tax authority acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from einvoice.models import Receipt
from payments.models import BankCredit, PaymentException, PaymentOrder
from reconciliation.models import TaxSubmission, TaxSubmissionRow

__all__ = ["BreakKind", "FoundBreak", "find_breaks"]


class BreakKind(StrEnum):
    CREDIT_WITHOUT_PAYMENT = "credit_without_payment"
    """Money reached the account and is neither a payment nor resolved as a refund."""
    DUPLICATE = "duplicate"
    """A second transfer for an order already paid."""
    PAYMENT_WITHOUT_RECEIPT = "payment_without_receipt"
    """A payment was recognised but no receipt was issued (art. 23: issue at collection)."""
    RECEIPT_WITHOUT_PAYMENT = "receipt_without_payment"
    """A receipt that no recognised payment accounts for."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """A receipt's total differs from its payment, or an order's credits from its amount."""
    RECEIPT_MISSING_FROM_SUMMARY = "receipt_missing_from_summary"
    """No acknowledged 01/TH-BLĐT lists this receipt (yet)."""
    SUMMARY_LATE = "summary_late"
    """Listed in a summary the authority has not acknowledged yet (outage): late, not missing."""
    RECEIPT_DIFFERS_IN_SUMMARY = "receipt_differs_in_summary"
    """The summary states another amount than the receipt."""
    SUMMARY_WITHOUT_RECEIPT = "summary_row_without_receipt"
    """The summary lists a receipt we do not hold for this day."""


@dataclass(frozen=True)
class FoundBreak:
    kind: BreakKind
    ref: str
    amount: int
    detail: str


def find_breaks(
    session: Session, agency_id: str, start: datetime, end: datetime, day: object
) -> list[FoundBreak]:
    found: list[FoundBreak] = []

    exc = aliased(PaymentException)
    credits = session.execute(
        select(BankCredit.id, BankCredit.amount, BankCredit.bank_reference, exc.kind, exc.state)
        .outerjoin(exc, exc.credit_id == BankCredit.id)
        .where(
            BankCredit.agency_id == agency_id,
            BankCredit.booked_at >= start,
            BankCredit.booked_at < end,
            BankCredit.order_id.is_(None),
            or_(exc.id.is_(None), exc.state != "resolved"),
        )
    )
    for credit_id, amount, bank_ref, kind, state in credits:
        found.append(
            FoundBreak(
                BreakKind.DUPLICATE
                if kind == "duplicate_transfer"
                else BreakKind.CREDIT_WITHOUT_PAYMENT,
                credit_id,
                int(amount),
                f"credit {bank_ref}: {kind or 'unprocessed'} ({state or 'no exception yet'})",
            )
        )

    paid_in_day = and_(
        PaymentOrder.agency_id == agency_id,
        PaymentOrder.status == "succeeded",
        PaymentOrder.paid_at >= start,
        PaymentOrder.paid_at < end,
    )
    for order_id, amount, ref in session.execute(
        select(PaymentOrder.id, PaymentOrder.amount, PaymentOrder.reference).where(
            paid_in_day, PaymentOrder.receipt_id.is_(None)
        )
    ):
        found.append(
            FoundBreak(
                BreakKind.PAYMENT_WITHOUT_RECEIPT,
                order_id,
                int(amount),
                f"order {ref} paid, no receipt",
            )
        )

    receipts_in_day = and_(
        Receipt.agency_id == agency_id, Receipt.issued_at >= start, Receipt.issued_at < end
    )
    order = aliased(PaymentOrder)
    for rid, total, series, number, status in session.execute(
        select(Receipt.id, Receipt.total, Receipt.series, Receipt.number, order.status)
        .outerjoin(order, order.receipt_id == Receipt.id)
        .where(
            receipts_in_day,
            Receipt.replaces_id.is_(None),
            or_(order.id.is_(None), order.status != "succeeded"),
        )
    ):
        found.append(
            FoundBreak(
                BreakKind.RECEIPT_WITHOUT_PAYMENT,
                rid,
                int(total),
                f"receipt {series} no. {number}: order {status or 'missing'}",
            )
        )
    for rid, total, amount, series, number in session.execute(
        select(Receipt.id, Receipt.total, order.amount, Receipt.series, Receipt.number)
        .join(order, order.receipt_id == Receipt.id)
        .where(receipts_in_day, Receipt.total != order.amount)
    ):
        found.append(
            FoundBreak(
                BreakKind.AMOUNT_MISMATCH,
                rid,
                abs(int(total) - int(amount)),
                f"receipt {series} no. {number} says {total}, payment {amount}",
            )
        )
    credited = (
        select(BankCredit.order_id, func.sum(BankCredit.amount).label("credited"))
        .join(PaymentOrder, PaymentOrder.id == BankCredit.order_id)
        # Only the day's paid orders: history must not make the close slower every day.
        .where(BankCredit.agency_id == agency_id, paid_in_day)
        .group_by(BankCredit.order_id)
        .subquery()
    )
    for oid, amount, got in session.execute(
        select(PaymentOrder.id, PaymentOrder.amount, credited.c.credited)
        .join(credited, credited.c.order_id == PaymentOrder.id)
        .where(
            paid_in_day,
            PaymentOrder.payment_method == "transfer",
            credited.c.credited != PaymentOrder.amount,
        )
    ):
        found.append(
            FoundBreak(
                BreakKind.AMOUNT_MISMATCH,
                oid,
                abs(int(got) - int(amount)),
                f"order asks {amount}, credits {got}",
            )
        )

    accepted = (
        select(TaxSubmissionRow.receipt_id, TaxSubmissionRow.amount)
        .join(TaxSubmission, TaxSubmission.id == TaxSubmissionRow.submission_id)
        .where(
            TaxSubmission.agency_id == agency_id,
            TaxSubmission.business_day == day,
            TaxSubmission.status.in_(("accepted", "duplicate_accepted")),
        )
        .subquery()
    )
    pending = (
        select(TaxSubmissionRow.receipt_id)
        .join(TaxSubmission, TaxSubmission.id == TaxSubmissionRow.submission_id)
        .where(
            TaxSubmission.agency_id == agency_id,
            TaxSubmission.status.in_(("queued", "unknown", "sent")),
        )
        .subquery()
    )
    for rid, total, series, number, stated, waiting in session.execute(
        select(
            Receipt.id,
            Receipt.total,
            Receipt.series,
            Receipt.number,
            accepted.c.amount,
            pending.c.receipt_id,
        )
        .outerjoin(accepted, accepted.c.receipt_id == Receipt.id)
        .outerjoin(pending, pending.c.receipt_id == Receipt.id)
        .where(
            receipts_in_day,
            or_(accepted.c.receipt_id.is_(None), accepted.c.amount != Receipt.total),
        )
    ):
        if stated is None and waiting is not None:
            found.append(
                FoundBreak(
                    BreakKind.SUMMARY_LATE,
                    rid,
                    int(total),
                    f"receipt {series} no. {number}: summary sent, awaiting the authority",
                )
            )
        elif stated is None:
            found.append(
                FoundBreak(
                    BreakKind.RECEIPT_MISSING_FROM_SUMMARY,
                    rid,
                    int(total),
                    f"receipt {series} no. {number} not in an acknowledged summary",
                )
            )
        else:
            found.append(
                FoundBreak(
                    BreakKind.RECEIPT_DIFFERS_IN_SUMMARY,
                    rid,
                    abs(int(total) - int(stated)),
                    f"receipt {series} no. {number}: {total}, summary says {stated}",
                )
            )
    for rid, stated in session.execute(
        select(accepted.c.receipt_id, accepted.c.amount)
        .outerjoin(Receipt, and_(Receipt.id == accepted.c.receipt_id, receipts_in_day))
        .where(Receipt.id.is_(None))
    ):
        found.append(
            FoundBreak(
                BreakKind.SUMMARY_WITHOUT_RECEIPT,
                rid,
                int(stated),
                "summary row with no receipt that day",
            )
        )
    return found
