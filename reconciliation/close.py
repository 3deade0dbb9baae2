"""The daily close: reconcile the four ledgers for one business day, version it, sign it, lock it.

A close can be re-run at any time; each run is a new version that records what changed since
the previous one. Breaks are tracked by natural key, so a break found again is the same item
(with its owner and age); one no longer found is marked cleared by that version. Nothing here
edits a payment or a receipt: corrections are separate, audited events (corrections.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from einvoice.models import Receipt
from payments.models import Agency, BankCredit, PaymentOrder
from reconciliation.breaks import find_breaks
from reconciliation.day import BusinessDay
from reconciliation.errors import DayInFuture
from reconciliation.models import DailyClose, ReconBreak, TaxSubmission
from reconciliation.revenue import revenue_for
from settings.db import utcnow
from signing.keys import KeySource
from signing.xmldsig_fast import sign_enveloped_fast

__all__ = ["CloseResult", "has_later_records", "latest_close", "run_close", "stale_closes"]


@dataclass(frozen=True)
class CloseResult:
    close: DailyClose
    breaks: list[ReconBreak]
    window: BusinessDay


def latest_close(session: Session, agency_id: str, day: date) -> DailyClose | None:
    return session.scalar(
        select(DailyClose)
        .where(DailyClose.agency_id == agency_id, DailyClose.business_day == day)
        .order_by(DailyClose.version.desc())
        .limit(1)
    )


def _totals(session: Session, agency: Agency, bday: BusinessDay) -> dict[str, Any]:
    start, end = bday.start_utc, bday.end_utc
    credits = session.execute(
        select(func.count(), func.coalesce(func.sum(BankCredit.amount), 0)).where(
            BankCredit.agency_id == agency.id,
            BankCredit.booked_at >= start,
            BankCredit.booked_at < end,
        )
    ).one()
    by_channel = {
        str(method): {"count": int(n), "amount": int(total)}
        for method, n, total in session.execute(
            select(
                PaymentOrder.payment_method,
                func.count(),
                func.coalesce(func.sum(PaymentOrder.amount), 0),
            )
            .where(
                PaymentOrder.agency_id == agency.id,
                PaymentOrder.status == "succeeded",
                PaymentOrder.paid_at >= start,
                PaymentOrder.paid_at < end,
            )
            .group_by(PaymentOrder.payment_method)
        )
    }
    receipts = session.execute(
        select(func.count(), func.coalesce(func.sum(Receipt.total), 0)).where(
            Receipt.agency_id == agency.id, Receipt.issued_at >= start, Receipt.issued_at < end
        )
    ).one()
    submissions = [
        {
            "supplement_no": s.supplement_no,
            "status": s.status,
            "late": s.late,
            "total": s.total,
            "message_id": s.message_id,
            "reason": s.reason,
        }
        for s in session.scalars(
            select(TaxSubmission)
            .where(TaxSubmission.agency_id == agency.id, TaxSubmission.business_day == bday.day)
            .order_by(TaxSubmission.supplement_no)
        )
    ]
    revenue = revenue_for(session, agency.id, start, end)
    return {
        "bank_credits": {"count": int(credits[0]), "amount": int(credits[1])},
        "payments": by_channel,
        "payments_total": sum(v["amount"] for v in by_channel.values()),
        "receipts": {"count": int(receipts[0]), "amount": int(receipts[1])},
        "tax_summaries": submissions,
        "treasury": revenue.treasury_totals(),
    }


def _document(
    agency: Agency, close: DailyClose, bday: BusinessDay, breaks: list[ReconBreak]
) -> etree._Element:
    """The close report the agency signs: what it attests for the day."""
    root = etree.Element("BBDSoat")
    data = etree.SubElement(root, "DLBBDSoat", Id=f"close-{close.id}")
    for tag, value in (
        ("MST", agency.tax_code),
        ("TDVi", agency.name),
        ("NgayDS", bday.day.isoformat()),
        ("KhoangTG", bday.describe()),
        ("PBan", str(close.version)),
        ("TThai", close.status),
        ("NguoiLap", close.actor),
    ):
        etree.SubElement(data, tag).text = value
    totals = etree.SubElement(data, "TongHop")
    totals.text = _canonical_json(close.totals)
    lst = etree.SubElement(data, "DSSaiLech")
    for b in breaks:
        etree.SubElement(
            lst, "SaiLech", Loai=b.kind, ThamChieu=b.ref, SoTien=str(b.amount)
        ).text = b.detail
    sig = etree.SubElement(etree.SubElement(root, "DSCKS"), "NLap")
    etree.SubElement(
        sig,
        "{http://www.w3.org/2000/09/xmldsig#}Signature",
        Id="placeholder",
        nsmap={"ds": "http://www.w3.org/2000/09/xmldsig#"},
    )
    return root


def _canonical_json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def run_close(
    session: Session,
    agency: Agency,
    day: date,
    *,
    actor: str,
    key: KeySource | None,
    now: datetime | None = None,
) -> CloseResult:
    now = now or utcnow()
    zone = ZoneInfo(agency.time_zone)
    if day > now.astimezone(zone).date():
        raise DayInFuture(f"{day} has not begun yet in {agency.time_zone}")
    bday = BusinessDay(day, zone)
    previous = latest_close(session, agency.id, day)
    version = (previous.version + 1) if previous else 1

    found = find_breaks(session, agency.id, bday.start_utc, bday.end_utc, day)
    existing = {
        (b.kind, b.ref): b
        for b in session.scalars(
            select(ReconBreak).where(
                ReconBreak.agency_id == agency.id, ReconBreak.business_day == day
            )
        )
    }
    seen: set[tuple[str, str]] = set()
    added: list[str] = []
    for item in found:
        key_ = (item.kind.value, item.ref)
        seen.add(key_)
        row = existing.get(key_)
        if row is None:
            row = ReconBreak(
                agency_id=agency.id,
                business_day=day,
                kind=item.kind.value,
                ref=item.ref,
                amount=item.amount,
                detail=item.detail,
                last_seen_version=version,
                first_seen_at=now,
                state="open",
            )
            session.add(row)
            existing[key_] = row
            added.append(f"{item.kind.value}:{item.ref}")
        else:
            row.amount, row.detail, row.last_seen_version = item.amount, item.detail, version
            if row.state == "cleared":
                row.state, row.resolved_at = "open", None
                added.append(f"{item.kind.value}:{item.ref}")
    cleared: list[str] = []
    for key_, row in existing.items():
        if key_ not in seen and row.state == "open":
            row.state, row.resolved_at = "cleared", now
            cleared.append(f"{row.kind}:{row.ref}")
    open_breaks = [b for b in existing.values() if b.state == "open"]

    totals = _totals(session, agency, bday)
    close = DailyClose(
        agency_id=agency.id,
        business_day=day,
        version=version,
        window_start=bday.start_utc,
        window_end=bday.end_utc,
        watermark=now,
        status="clean" if not open_breaks else "breaks",
        totals=totals,
        breaks_open=len(open_breaks),
        actor=actor,
        diff={
            "previous_version": previous.version if previous else None,
            "breaks_added": sorted(added),
            "breaks_cleared": sorted(cleared),
            "totals_before": previous.totals if previous else None,
        },
        started_at=now,
    )
    session.add(close)
    session.flush()
    if key is not None:
        doc = _document(agency, close, bday, open_breaks)
        signed = sign_enveloped_fast(
            doc, signed_id=f"close-{close.id}", key=key, signing_time=now, tz=zone, copy=False
        )
        close.document = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    close.finished_at = utcnow()
    close.locked = True
    if previous is not None:
        previous.locked = True
    session.flush()
    return CloseResult(close, sorted(open_breaks, key=lambda b: (b.kind, b.ref)), bday)


def has_later_records(session: Session, close: DailyClose) -> bool:
    """Receipts or bank credits of the close's window recorded after its watermark."""
    for created_at, in_window, agency_id in (
        (Receipt.created_at, Receipt.issued_at, Receipt.agency_id),
        (BankCredit.created_at, BankCredit.booked_at, BankCredit.agency_id),
    ):
        later = select(
            exists().where(
                agency_id == close.agency_id,
                in_window >= close.window_start,
                in_window < close.window_end,
                created_at > close.watermark,
            )
        )
        if session.scalar(later):
            return True
    return False


def stale_closes(session: Session) -> list[DailyClose]:
    """Latest closes that records made after them now touch: the day is re-opened.

    Set-based: one query per ledger over all latest closes.
    """
    latest = (
        select(
            DailyClose.agency_id, DailyClose.business_day, func.max(DailyClose.version).label("v")
        )
        .group_by(DailyClose.agency_id, DailyClose.business_day)
        .subquery()
    )
    closes = list(
        session.scalars(
            select(DailyClose).join(
                latest,
                (latest.c.agency_id == DailyClose.agency_id)
                & (latest.c.business_day == DailyClose.business_day)
                & (latest.c.v == DailyClose.version),
            )
        )
    )
    stale: list[DailyClose] = []
    for close in closes:
        later = has_later_records(session, close)
        if later:
            if close.reopened_at is None:
                close.reopened_at = utcnow()
            stale.append(close)
    return stale
