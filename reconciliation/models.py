"""Tables owned by ``reconciliation``: closes (versioned, signed), breaks, corrections, and the
daily summaries sent to the tax authority with the receipts each one listed."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from settings.db import Base, UTCDateTime, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class DailyClose(Base):
    """One run of the close for an agency's business day; every re-run is a new version."""

    __tablename__ = "daily_closes"
    __table_args__ = (UniqueConstraint("agency_id", "business_day", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    business_day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    watermark: Mapped[datetime] = mapped_column(UTCDateTime())
    """Everything recorded up to this moment was considered; later records re-open the day."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    status: Mapped[str] = mapped_column(String(16))
    totals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    breaks_open: Mapped[int] = mapped_column(Integer, default=0)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(255))
    document: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    """The signed close report (XML): what was closed, by whom, with which totals."""
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ReconBreak(Base):
    """A tracked discrepancy. Found again by a later run, it is the same row (natural key)."""

    __tablename__ = "recon_breaks"
    __table_args__ = (UniqueConstraint("agency_id", "business_day", "kind", "ref"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    business_day: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str] = mapped_column(String(128))
    """What it is about: a credit, order or receipt id, or a receipt's symbols and number."""
    amount: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    owner: Mapped[str | None] = mapped_column(String(255), default=None)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_version: Mapped[int] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Correction(Base):
    """An audited correction event; one that moves money needs a second person's approval."""

    __tablename__ = "recon_corrections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    break_id: Mapped[str] = mapped_column(ForeignKey("recon_breaks.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    moves_money: Mapped[bool] = mapped_column(Boolean)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(255), default=None)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    state: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(Text, default=None)


class TaxSubmission(Base):
    """One 01/TH-BLĐT summary for a day (the first, or a numbered supplement)."""

    __tablename__ = "tax_submissions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    business_day: Mapped[date] = mapped_column(Date)
    supplement_no: Mapped[int] = mapped_column(Integer)
    """0 for the first summary of the day (LDau=1), then 1, 2, … (LDau=0, BSLThu=n).

    Not unique: a rejected summary is followed by another with the same number."""
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    """queued, sent, accepted, rejected or unknown."""
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    """Sent after the day it covers (e.g. the authority was down): late, not missing."""
    total: Mapped[int] = mapped_column(BigInteger)
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class TaxSubmissionRow(Base):
    """One receipt as a summary stated it: what the tax authority was told, kept to compare."""

    __tablename__ = "tax_submission_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("tax_submissions.id"), index=True)
    receipt_id: Mapped[str] = mapped_column(String(32), index=True)
    template: Mapped[str] = mapped_column(String(5))
    series: Mapped[str] = mapped_column(String(5))
    number: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))
