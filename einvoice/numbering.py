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

__all__ = ["MAX_NUMBER", "next_number", "reserve_numbers", "series_for_year"]

MAX_NUMBER = 99_999_999


def series_for_year(series: str, year: int) -> str:
    """The configured series with its 2-digit year replaced by ``year``'s.

    Numbers restart at 1 on 1 January (Decree 254/2026 art. 23), and the series symbol carries
    the year, so ``26TAB`` continues as ``27TAB`` from the first receipt of 2027.
    """
    return f"{year % 100:02d}{series[2:]}"


def next_number(session: Session, agency_id: str, template: str, series: str, year: int) -> int:
    """The next number of the series: :func:`reserve_numbers` for one."""
    return reserve_numbers(session, agency_id, template, series, year, 1)


def reserve_numbers(
    session: Session, agency_id: str, template: str, series: str, year: int, count: int
) -> int:
    """Reserves ``count`` consecutive numbers in one statement; returns the first.

    ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (PostgreSQL, and SQLite ≥ 3.35) inserts the
    counter at ``count`` or adds ``count`` to it, under the same row lock as a plain
    ``UPDATE``: the numbers stay gapless because the caller uses all of them in the
    transaction that reserved them, or rolls the reservation back with it. One statement per
    batch of receipts instead of one per receipt.
    """
    if count < 1:
        raise ValueError("reserve at least one number")
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ReceiptCounter).values(
        agency_id=agency_id, template=template, series=series, year=year, last_number=count
    )
    last = session.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                ReceiptCounter.agency_id,
                ReceiptCounter.template,
                ReceiptCounter.series,
                ReceiptCounter.year,
            ],
            set_={"last_number": ReceiptCounter.last_number + count},
            where=ReceiptCounter.last_number + count <= MAX_NUMBER,
        ).returning(ReceiptCounter.last_number)
    ).scalar_one_or_none()
    if last is None or int(last) > MAX_NUMBER:
        raise SeriesExhausted(
            f"series {template}/{series} cannot take {count} more numbers in {year} "
            f"(at most {MAX_NUMBER})"
        )
    return int(last) - count + 1
