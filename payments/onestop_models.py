"""Tables of the one-stop protocol adapter (PP-DVCQG, issue 15).

- ``onestop_partners``: a one-stop system that speaks the national payment platform protocol
  to one agency. Its secret key is kept in clear, as ``api_clients.callback_secret`` and the
  Casso key are: every checksum in both directions is computed with it (SHA-256 of fields and
  key), so a hash of it would be useless. It is shown once when made and never logged.
- ``onestop_pp_transactions``: a partner's ``MaThamChieu`` and the order it created.
- ``onestop_pp_messages``: every message received, accepted or refused, with who sent it, what
  was answered and why (append-only; an audit source of the hash chain).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from payments.models import new_id
from settings.db import Base, UTCDateTime, utcnow

__all__ = ["OnestopMessage", "OnestopPartner", "OnestopTransaction"]


class OnestopPartner(Base):
    __tablename__ = "onestop_partners"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    """``MaDoiTac``: the messages name no agency, so a code is unique across the service."""
    name: Mapped[str] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(String(128))
    key_prefix: Mapped[str] = mapped_column(String(16))
    confirm_url: Mapped[str] = mapped_column(String(1000))
    reply_dialect: Mapped[str] = mapped_column(String(16), default="maloi")
    bill_dialect: Mapped[str] = mapped_column(String(16), default="url")
    allowed_ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Addresses or networks (CIDR) the partner calls from; empty: any."""
    clock_skew_seconds: Mapped[int] = mapped_column(Integer, default=300)
    fee_map: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Their ``MaPhiLePhi`` → our fee code (a code absent here is looked up as it is)."""
    procedure_map: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Their ``MaTTHC`` → our procedure code (absent: as it is)."""
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OnestopTransaction(Base):
    __tablename__ = "onestop_pp_transactions"
    __table_args__ = (UniqueConstraint("partner_id", "reference"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    partner_id: Mapped[str] = mapped_column(ForeignKey("onestop_partners.id"))
    reference: Mapped[str] = mapped_column(String(100))
    """``MaThamChieu``."""
    order_id: Mapped[str] = mapped_column(ForeignKey("payment_orders.id"), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    """``ThongTinGiaoDich`` of the INIT, echoed in CONFIRM and QUERY."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OnestopMessage(Base):
    __tablename__ = "onestop_pp_messages"
    __table_args__ = (Index("ix_onestop_pp_messages_agency_at", "agency_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    message_type: Mapped[str] = mapped_column(String(16))
    """``INIT``, ``QUERY``, ``GET_BILL``, or ``?`` when it could not be read."""
    partner_code: Mapped[str | None] = mapped_column(String(64), default=None)
    """As received (also when no such partner exists)."""
    partner_id: Mapped[str | None] = mapped_column(String(32), default=None)
    agency_id: Mapped[str | None] = mapped_column(String(32), default=None)
    reference: Mapped[str | None] = mapped_column(String(100), default=None)
    source_ip: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    """``accepted``, ``replayed`` (same INIT again), ``refused``, or ``failed`` (our fault:
    answered ``99``, logged with its traceback)."""
    code: Mapped[str] = mapped_column(String(4))
    """The ``MaLoi`` answered (``00`` accepted)."""
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    order_id: Mapped[str | None] = mapped_column(String(32), default=None)
