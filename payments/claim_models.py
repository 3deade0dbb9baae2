"""Tables of the citizen's transfer claims (issue 19, part 1).

- ``transfer_claims``: one row per attempt a citizen makes to say "I paid by transfer but it is
  not recorded" for an order: what they stated, where it came from, and what became of it
  (``not_found``, ``rate_limited``, ``proposed``, ``first_approved``, ``approved``,
  ``auto_approved``, ``refused``). A fitting claim points at the open exception of the credit.
- ``transfer_claim_events``: append-only trail of every attempt and decision (who, when, what
  was asked, the result); an audit source of the hash chain.

The agency's automatic-approval setting is a column of ``agencies``
(``claim_auto_approve_days``, :class:`payments.models.Agency`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from payments.models import new_id
from settings.db import Base, UTCDateTime, utcnow

__all__ = ["ClaimEvent", "TransferClaim"]


class TransferClaim(Base):
    __tablename__ = "transfer_claims"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    exception_id: Mapped[str | None] = mapped_column(
        ForeignKey("payment_exceptions.id"), default=None, index=True
    )
    state: Mapped[str] = mapped_column(String(16), index=True)
    stated: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What the citizen gave: transfer date (ISO), amount, bank, reference (never the factor)."""
    client_ip: Mapped[str] = mapped_column(String(64), index=True)
    amounts_differ: Mapped[bool] = mapped_column(default=False)
    """The credit is not the order's amount: a second accountant must approve."""
    first_approver: Mapped[str | None] = mapped_column(String(255), default=None)
    decided_by: Mapped[str | None] = mapped_column(String(255), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ClaimEvent(Base):
    """Append-only: each attempt (``submitted``) and each decision on a claim."""

    __tablename__ = "transfer_claim_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("transfer_claims.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
