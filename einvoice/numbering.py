"""Gapless receipt numbers: per (agency, template, series, year), from 1, at most 8 digits.

The counter row is incremented with ``UPDATE … RETURNING`` inside the issuing transaction.
On PostgreSQL the row lock is held until that transaction commits or rolls back, so concurrent
issuers queue on it and a rolled-back issuance gives its number back: no gap, no duplicate.
SQLite serialises writers with ``BEGIN IMMEDIATE`` (settings.db) for the same effect.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from einvoice.errors import SeriesExhausted
from einvoice.models import ReceiptCounter

__all__ = ["MAX_NUMBER", "next_number", "series_for_year"]

MAX_NUMBER = 99_999_999


def series_for_year(series: str, year: int) -> str:
    """The configured series with its 2-digit year replaced by ``year``'s.

    Numbers restart at 1 on 1 January (Decree 254/2026 art. 23), and the series symbol carries
    the year, so ``26TAB`` continues as ``27TAB`` from the first receipt of 2027.
    """
    return f"{year % 100:02d}{series[2:]}"


def next_number(session: Session, agency_id: str, template: str, series: str, year: int) -> int:
    dialect = session.get_bind().dialect.name
    values = {"agency_id": agency_id, "template": template, "series": series, "year": year}
    if dialect == "postgresql":
        session.execute(
            postgresql.insert(ReceiptCounter)
            .values(**values, last_number=0)
            .on_conflict_do_nothing()
        )
    else:
        session.execute(
            sqlite.insert(ReceiptCounter).values(**values, last_number=0).on_conflict_do_nothing()
        )
    number = session.execute(
        update(ReceiptCounter)
        .where(
            ReceiptCounter.agency_id == agency_id,
            ReceiptCounter.template == template,
            ReceiptCounter.series == series,
            ReceiptCounter.year == year,
            ReceiptCounter.last_number < MAX_NUMBER,
        )
        .values(last_number=ReceiptCounter.last_number + 1)
        .returning(ReceiptCounter.last_number)
    ).scalar_one_or_none()
    if number is None:
        raise SeriesExhausted(f"series {template}/{series} reached {MAX_NUMBER} in {year}")
    return int(number)
