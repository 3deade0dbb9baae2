"""The public trail of one receipt, for the page its QR opens (``/r/{code}``).

Paid when and how (the channel), issued when, replaced or not (and by which receipt), and on
which day's 01/TH-BLĐT summary it was reported to the tax authority, with that summary's state.
Nothing personal: no payer name, ID number, address, phone, e-mail, bank account or memo; the
order is named by nothing but its channel and time, so the page can be shown to anyone holding
the receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.models import Receipt
from payments.usecases.receipts import order_of_receipt
from reconciliation.models import TaxSubmission, TaxSubmissionRow

__all__ = ["LinkedReceipt", "ReceiptTrail", "TaxReport", "receipt_trail"]


@dataclass(frozen=True)
class LinkedReceipt:
    template: str
    series: str
    number: int
    verify_code: str
    issued_at: datetime


@dataclass(frozen=True)
class TaxReport:
    business_day: date
    """The day of the 01/TH-BLĐT that listed the receipt."""
    supplement_no: int
    status: str
    """queued, sent, accepted, duplicate_accepted, rejected or unknown."""
    late: bool
    sent_at: datetime | None
    answered_at: datetime | None


@dataclass(frozen=True)
class ReceiptTrail:
    paid_at: datetime | None
    channel: str
    """cash, transfer, card or exempt (the order's, or the receipt's when no order names it)."""
    issued_at: datetime
    replaced_by: LinkedReceipt | None
    replaces: LinkedReceipt | None
    reports: tuple[TaxReport, ...]
    """Every summary that listed it, first first (a rejected one is followed by its re-send)."""


def _linked(receipt: Receipt | None) -> LinkedReceipt | None:
    if receipt is None:
        return None
    return LinkedReceipt(
        receipt.template, receipt.series, receipt.number, receipt.verify_code, receipt.issued_at
    )


def receipt_trail(session: Session, receipt: Receipt) -> ReceiptTrail:
    order = order_of_receipt(session, receipt)
    reports = tuple(
        TaxReport(
            business_day=sub.business_day,
            supplement_no=sub.supplement_no,
            status=sub.status,
            late=sub.late,
            sent_at=sub.sent_at,
            answered_at=sub.answered_at,
        )
        for sub in session.scalars(
            select(TaxSubmission)
            .join(TaxSubmissionRow, TaxSubmissionRow.submission_id == TaxSubmission.id)
            .where(TaxSubmissionRow.receipt_id == receipt.id)
            .order_by(TaxSubmission.created_at)
        )
    )
    return ReceiptTrail(
        paid_at=order.paid_at if order is not None else None,
        channel=(order.payment_method if order is not None else None) or receipt.payment_method,
        issued_at=receipt.issued_at,
        replaced_by=_linked(
            session.get(Receipt, receipt.replaced_by_id) if receipt.replaced_by_id else None
        ),
        replaces=_linked(
            session.get(Receipt, receipt.replaces_id) if receipt.replaces_id else None
        ),
        reports=reports,
    )
