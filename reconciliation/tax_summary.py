"""Sending the day's 01/TH-BLĐT: the receipts the tax authority has not acknowledged yet.

Outage rule (Decree 254/2026): what could not be sent on the day is sent once the authority is
back, and the close shows it as *late*, not missing. An unknown outcome is resolved by asking
the authority about the very same message before anything is sent again.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from einvoice.document import ReceiptReference
from einvoice.models import Receipt
from einvoice.tax_authority import (
    Ack,
    Outcome,
    RowStatus,
    SummaryRow,
    TaxAuthorityClient,
    TaxAuthorityError,
    build_daily_summary,
)
from einvoice.tax_authority.messages import new_message_id
from payments.models import Agency
from reconciliation.day import BusinessDay
from reconciliation.models import TaxSubmission, TaxSubmissionRow
from settings.db import utcnow
from signing.keys import KeySource

__all__ = ["COVERED", "PENDING", "resolve_pending", "send_day_summary"]

COVERED = ("accepted", "duplicate_accepted")
PENDING = ("queued", "unknown", "sent")


def _record(sub: TaxSubmission, ack: Ack, now: datetime, zone: ZoneInfo) -> None:
    sub.status = ack.outcome.value if ack.outcome is not Outcome.UNKNOWN else "unknown"
    sub.reason = "; ".join(f"{r.code}: {r.description}" for r in ack.reasons) or None
    sub.sent_at = sub.sent_at or now
    sub.answered_at = now if ack.outcome is not Outcome.UNKNOWN else None
    sub.late = now.astimezone(zone).date() > sub.business_day


def _send(client: TaxAuthorityClient, sub: TaxSubmission, now: datetime, zone: ZoneInfo) -> None:
    try:
        ack = client.send(sub.xml)
    except TaxAuthorityError as exc:
        sub.status, sub.reason = "queued", f"{exc.code}: {exc.detail}"[:1000]
        sub.late = now.astimezone(zone).date() > sub.business_day
        return
    _record(sub, ack, now, zone)


def resolve_pending(
    session: Session, agency: Agency, day: date, client: TaxAuthorityClient, *, now: datetime
) -> None:
    """Re-sends queued summaries (same bytes, same MTDiep); asks about unknown ones first."""
    zone = ZoneInfo(agency.time_zone)
    for sub in session.scalars(
        select(TaxSubmission).where(
            TaxSubmission.agency_id == agency.id,
            TaxSubmission.business_day == day,
            TaxSubmission.status.in_(PENDING),
        )
    ):
        if sub.status == "unknown":
            try:
                found = client.query(sub.message_id)
            except TaxAuthorityError:
                continue
            if found is not None and found.outcome is not Outcome.UNKNOWN:
                _record(sub, found, now, zone)
                continue
        _send(client, sub, now, zone)
    session.flush()


def send_day_summary(
    session: Session,
    agency: Agency,
    day: date,
    client: TaxAuthorityClient,
    key: KeySource,
    *,
    sender_code: str,
    receiver_code: str,
    allow_development_certificate: bool,
    now: datetime | None = None,
) -> TaxSubmission | None:
    """Sends one summary (first or supplement) with every receipt of the day not yet covered."""
    now = now or utcnow()
    zone = ZoneInfo(agency.time_zone)
    resolve_pending(session, agency, day, client, now=now)
    bday = BusinessDay(day, zone)
    in_flight = (
        select(TaxSubmissionRow.receipt_id)
        .join(TaxSubmission, TaxSubmission.id == TaxSubmissionRow.submission_id)
        .where(
            TaxSubmission.agency_id == agency.id,
            TaxSubmission.status.in_((*COVERED, *PENDING)),
        )
    )
    receipts = list(
        session.scalars(
            select(Receipt)
            .where(
                and_(Receipt.agency_id == agency.id, Receipt.issued_at >= bday.start_utc),
                Receipt.issued_at < bday.end_utc,
                Receipt.id.not_in(in_flight),
            )
            .order_by(Receipt.series, Receipt.number)
        )
    )
    if not receipts:
        return None
    originals = {
        r.id: r
        for r in session.scalars(
            select(Receipt).where(
                Receipt.id.in_([r.replaces_id for r in receipts if r.replaces_id])
            )
        )
    }
    rows = []
    for r in receipts:
        original = originals.get(r.replaces_id or "")
        rows.append(
            SummaryRow(
                template=r.template,
                series=r.series,
                number=r.number,
                issued_on=r.issued_at.astimezone(zone).date(),
                fee_name="; ".join(str(line.get("name", "")) for line in r.lines)[:500]
                or "Phí, lệ phí",
                amount=r.total,
                status=RowStatus.REPLACING if original else RowStatus.NEW,
                related=(
                    ReceiptReference(
                        template=original.template,
                        series=original.series,
                        number=original.number,
                        issued_on=original.issued_at.astimezone(zone).date(),
                    )
                    if original
                    else None
                ),
                explanation="Biên lai thay thế" if original else None,
            )
        )
    accepted_before = session.scalar(
        select(TaxSubmission.id)
        .where(
            TaxSubmission.agency_id == agency.id,
            TaxSubmission.business_day == day,
            TaxSubmission.status.in_((*COVERED, *PENDING)),
        )
        .limit(1)
    )
    supplements = len(
        session.scalars(
            select(TaxSubmission.id).where(
                TaxSubmission.agency_id == agency.id,
                TaxSubmission.business_day == day,
                TaxSubmission.supplement_no > 0,
                TaxSubmission.status.in_((*COVERED, *PENDING)),
            )
        ).all()
    )
    first = accepted_before is None
    supplement_no = 0 if first else supplements + 1
    message_id = new_message_id(sender_code)
    xml = build_daily_summary(
        message_id=message_id,
        sender_code=sender_code,
        receiver_code=receiver_code,
        collector_name=agency.name,
        tax_code=agency.tax_code,
        day=day,
        first=first,
        supplement_no=None if first else supplement_no,
        rows=rows,
        key=key,
        now=now,
        tz=zone,
        allow_development_certificate=allow_development_certificate,
    )
    sub = TaxSubmission(
        agency_id=agency.id,
        business_day=day,
        supplement_no=supplement_no,
        message_id=message_id,
        status="queued",
        total=sum(r.total for r in receipts),
        xml=xml,
        created_at=now,
    )
    session.add(sub)
    session.flush()
    session.add_all(
        TaxSubmissionRow(
            submission_id=sub.id,
            receipt_id=r.id,
            template=r.template,
            series=r.series,
            number=r.number,
            amount=r.total,
            status=(RowStatus.REPLACING if r.replaces_id else RowStatus.NEW).value,
        )
        for r in receipts
    )
    _send(client, sub, now, zone)
    session.flush()
    return sub
