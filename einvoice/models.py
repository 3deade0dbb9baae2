"""Tables owned by ``einvoice``: receipts and their number counters.

A receipt row is written once, in the transaction that takes its number, and never updated
except for ``replaced_by_id`` (issue 3's lifecycle). ``source_key`` makes issuance idempotent:
the caller names what is being paid (e.g. ``order:<id>``) and a second request for it returns
the first receipt instead of burning a number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from settings.db import Base, UTCDateTime, utcnow


class ReceiptCounter(Base):
    """Last number used in one (agency, template, series, year); the row lock keeps it gapless."""

    __tablename__ = "receipt_counters"
    __table_args__ = (
        CheckConstraint("last_number >= 0 AND last_number <= 99999999", name="range"),
    )

    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    template: Mapped[str] = mapped_column(String(5), primary_key=True)
    series: Mapped[str] = mapped_column(String(5), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Receipt(Base):
    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("agency_id", "template", "series", "year", "number"),
        CheckConstraint("number >= 1 AND number <= 99999999", name="number_range"),
        CheckConstraint("total >= 0", name="total_nonneg"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    source_key: Mapped[str] = mapped_column(String(128), unique=True)
    template: Mapped[str] = mapped_column(String(5))
    series: Mapped[str] = mapped_column(String(5))
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    total: Mapped[int] = mapped_column(BigInteger)
    payer_name: Mapped[str] = mapped_column(String(255))
    payment_method: Mapped[str] = mapped_column(String(16))
    payment_reference: Mapped[str] = mapped_column(String(128))
    verify_code: Mapped[str] = mapped_column(String(32), unique=True)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    signer_subject: Mapped[str] = mapped_column(String(500))
    replaced_by_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
