"""Gapless receipt numbers: per (agency, template, series, year), from 1, at most 8 digits.

The counter row is incremented with ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` inside the
issuing transaction.
On PostgreSQL the row lock is held until that transaction commits or rolls back, so concurrent
issuers queue on it and a rolled-back issuance gives its number back: no gap, no duplicate.
SQLite serialises writers with ``BEGIN IMMEDIATE`` (settings.db) for the same effect.
"""

from __future__ import annotations

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
    """One statement: insert the counter at 1, or add 1 to it, and return the number.

    ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (PostgreSQL, and SQLite ≥ 3.35) takes the
    same row lock as a plain ``UPDATE``, so the gapless guarantee is unchanged; it saves the
    separate "create the counter if missing" round trip on every receipt.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ReceiptCounter).values(
        agency_id=agency_id, template=template, series=series, year=year, last_number=1
    )
    number = session.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                ReceiptCounter.agency_id,
                ReceiptCounter.template,
                ReceiptCounter.series,
                ReceiptCounter.year,
            ],
            set_={"last_number": ReceiptCounter.last_number + 1},
            where=ReceiptCounter.last_number < MAX_NUMBER,
        ).returning(ReceiptCounter.last_number)
    ).scalar_one_or_none()
    if number is None:
        raise SeriesExhausted(f"series {template}/{series} reached {MAX_NUMBER} in {year}")
    return int(number)
