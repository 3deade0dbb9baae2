"""The accountant's actions on the daily close, written once for the API, the desk and the CLI.

Run a close, request or approve a correction (an approved match makes an order paid, so its
receipt must be issued after the commit), and produce the revenue report in a chosen format.
Adapters only parse, call, run the follow-ups and render.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from payments.models import Agency
from payments.usecases.follow_ups import FollowUp, IssueReceipt
from reconciliation.corrections import approve_correction, request_correction
from reconciliation.errors import BreakNotFound, DayInFuture
from reconciliation.exports import revenue_csv, revenue_pdf, revenue_xlsx
from reconciliation.models import Correction
from reconciliation.revenue import RevenueReport, revenue_for
from reconciliation.service import CloseReport, close_day
from settings.config import Settings
from signing.keys import load_key_source

__all__ = [
    "EXPORT_TYPES",
    "RevenueFile",
    "approve",
    "follow_ups_of",
    "request",
    "revenue_file",
    "revenue_report",
    "run_close",
]

EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "xml": "application/xml",
}
MAX_REPORT_DAYS = 367


def run_close(
    session: Session, settings: Settings, agency_code: str, day: date, actor: str
) -> CloseReport:
    """Send the day's 01/TH-BLĐT, reconcile the four ledgers, sign the close (a new version if
    the day was closed before)."""
    return close_day(session, settings, agency_code, day, actor=actor)


def follow_ups_of(correction: Correction) -> tuple[FollowUp, ...]:
    """A credit matched to an order by an applied correction makes the order paid; its receipt
    is issued like any payment's, or the next close would report a payment without one."""
    order_id = correction.params.get("order_id") if correction.params else None
    if correction.action == "match_to_order" and correction.state == "applied" and order_id:
        return (IssueReceipt(str(order_id)),)
    return ()


def request(
    session: Session,
    break_id: str,
    *,
    agency_id: str,
    action: str,
    reason: str,
    actor: str,
    params: dict[str, Any],
) -> tuple[Correction, tuple[FollowUp, ...]]:
    """Applied at once when it moves no money; proposed for a second accountant otherwise."""
    correction = request_correction(
        session,
        break_id,
        agency_id=agency_id,
        action=action,
        reason=reason,
        actor=actor,
        params=params,
    )
    return correction, follow_ups_of(correction)


def approve(
    session: Session, correction_id: str, *, agency_id: str, approver: str
) -> tuple[Correction, tuple[FollowUp, ...]]:
    """Four eyes: the proposer cannot approve (compared by username)."""
    correction = approve_correction(session, correction_id, agency_id=agency_id, approver=approver)
    return correction, follow_ups_of(correction)


def revenue_report(session: Session, agency: Agency, date_from: date, last: date) -> RevenueReport:
    """Revenue of the agency-local days ``date_from..last`` (inclusive)."""
    if last < date_from:
        raise DayInFuture("'to' is before 'from'", code="invalid_range", status=422)
    if (last - date_from).days >= MAX_REPORT_DAYS:
        raise DayInFuture(
            f"a report covers at most {MAX_REPORT_DAYS} days", code="invalid_range", status=422
        )
    zone = ZoneInfo(agency.time_zone)
    start = datetime.combine(date_from, time(0), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
    return revenue_for(session, agency.id, start, end)


@dataclass(frozen=True)
class RevenueFile:
    body: bytes
    media_type: str
    name: str
    """With diacritics, for ``filename*``."""
    fallback: str
    """ASCII, for old clients."""


def revenue_file(
    session: Session, agency: Agency, date_from: date, last: date, fmt: str
) -> RevenueFile:
    """The report as CSV, XLSX or a signed PDF (the agency's key)."""
    report = revenue_report(session, agency, date_from, last)
    if fmt == "csv":
        body = revenue_csv(report)
    elif fmt == "xlsx":
        body = revenue_xlsx(report, agency_name=agency.name)
    elif fmt == "pdf":
        if not agency.signing_key_ref:
            raise BreakNotFound("the agency has no signing key", code="no_signing_key", status=503)
        body = revenue_pdf(
            report,
            agency_name=agency.name,
            tax_code=agency.tax_code,
            key=load_key_source(agency.signing_key_ref),
            zone=ZoneInfo(agency.time_zone),
        )
    else:
        raise DayInFuture(f"unknown format {fmt!r}", code="invalid_format", status=422)
    period = str(date_from) if last == date_from else f"{date_from} đến {last}"
    return RevenueFile(
        body=body,
        media_type=EXPORT_TYPES[fmt],
        name=f"Báo cáo thu phí lệ phí {agency.code} {period}.{fmt}",
        fallback=f"doanh-thu-{agency.code}-{date_from}-{last}.{fmt}",
    )
