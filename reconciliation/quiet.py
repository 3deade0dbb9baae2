"""Days with nothing to reconcile: recognised once, closed by the scheduler, shown grey.

A business day *has something to reconcile* when, in its window, money reached the account (a
bank credit booked), an order was paid, a receipt was issued, or the day has a 01/TH-BLĐT
summary or a break. Orders created and never paid are not reconcilable: no money, no receipt.

A day with none of these is **quiet** ("Không phát sinh"). It is still closed, automatically and
signed like any other close (its report states zero credits, payments and receipts), so that
"every day is closed" stays true and an inspector finds a signed statement that nothing happened.

The 01/TH-BLĐT rule: the summary is "the data of the e-receipts issued on the day" (Decree
254/2026 art. 29(3)(b)); a day without receipts has no row to send, so a quiet day sends **no**
summary (``send_day_summary`` returns ``None`` for it, as before). The signed close records
``tax_summaries: []``; nothing is late or missing. If the tax authority ever asks for a nil
summary, it is this one place (``send_day_summary``) that changes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from einvoice.models import Receipt
from payments.models import Agency, BankCredit, PaymentOrder
from reconciliation.day import BusinessDay
from reconciliation.models import DailyClose, ReconBreak, TaxSubmission
from reconciliation.service import close_day
from settings.config import Settings

__all__ = ["QUIET_ACTOR", "QUIET_LOOKBACK_DAYS", "active_days", "close_quiet_days"]

QUIET_ACTOR: Final = "scheduler (không phát sinh / nothing happened)"
QUIET_LOOKBACK_DAYS: Final = 31
"""How far back the scheduler looks for unclosed quiet days (never before the agency existed)."""


def _days_with(
    session: Session,
    column: Any,
    agency_column: Any,
    agency_id: str,
    days: list[date],
    zone: ZoneInfo,
) -> set[date]:
    """Days among ``days`` (consecutive) with a row whose instant ``column`` falls in them.

    One grouped query: each instant is placed in its day by a CASE over the days' UTC
    boundaries, evaluated alike by SQLite and PostgreSQL (no time-zone functions in SQL)."""
    ends = [BusinessDay(d, zone).end_utc for d in days]
    bucket = case(*[(column < end, i) for i, end in enumerate(ends)], else_=len(days))
    rows = session.scalars(
        select(bucket)
        .where(
            agency_column == agency_id,
            column >= BusinessDay(days[0], zone).start_utc,
            column < ends[-1],
        )
        .distinct()
    )
    return {days[int(i)] for i in rows if 0 <= int(i) < len(days)}


def active_days(session: Session, agency: Agency, first: date, last: date) -> set[date]:
    """The days of ``first..last`` that have something to reconcile (see the module doc)."""
    if last < first:
        return set()
    zone = ZoneInfo(agency.time_zone)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    found: set[date] = set()
    for column, agency_column in (
        (BankCredit.booked_at, BankCredit.agency_id),
        (PaymentOrder.paid_at, PaymentOrder.agency_id),
        (Receipt.issued_at, Receipt.agency_id),
    ):
        found |= _days_with(session, column, agency_column, agency.id, days, zone)
    for day_column, agency_column in (
        (TaxSubmission.business_day, TaxSubmission.agency_id),
        (ReconBreak.business_day, ReconBreak.agency_id),
    ):
        found |= set(
            session.scalars(
                select(day_column)
                .where(agency_column == agency.id, day_column >= first, day_column <= last)
                .distinct()
            )
        )
    return found


def close_quiet_days(
    session: Session,
    settings: Settings,
    agency: Agency,
    *,
    now: datetime,
    lookback: int = QUIET_LOOKBACK_DAYS,
) -> list[date]:
    """Closes (signed) every past quiet day of the agency that has no close yet; returns them.

    Past days only: today is closed at the agency's close time like any day. A past day with
    something to reconcile and no close is left to a person (it is red on the desk): closing it
    late sends a late summary, which the outage rule says the tax office must be told about.
    """
    zone = ZoneInfo(agency.time_zone)
    today = now.astimezone(zone).date()
    born = agency.created_at.astimezone(zone).date()
    first = max(today - timedelta(days=lookback), born)
    last = today - timedelta(days=1)
    if last < first:
        return []
    closed = set(
        session.scalars(
            select(DailyClose.business_day)
            .where(
                DailyClose.agency_id == agency.id,
                DailyClose.business_day >= first,
                DailyClose.business_day <= last,
            )
            .distinct()
        )
    )
    busy = active_days(session, agency, first, last)
    done: list[date] = []
    d = first
    while d <= last:
        if d not in closed and d not in busy:
            close_day(session, settings, agency.code, d, actor=QUIET_ACTOR)
            done.append(d)
        d += timedelta(days=1)
    return done
