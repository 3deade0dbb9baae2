"""The receipt audit trail: every lifecycle action with who, when and why, append-only.

Written in the same transaction as the action it records, so that an action without its
entry (or an entry without its action) cannot exist. Entries are never updated or deleted
(ORM hooks in :mod:`einvoice.models` and database triggers); a mistaken action is answered by
a further action, which gets its own entry.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from einvoice.models import ReceiptAuditEvent
from settings.db import utcnow

__all__ = ["SYSTEM_ACTOR", "AuditAction", "receipt_history", "record"]

SYSTEM_ACTOR = "system"
"""Actor of what the service does on its own, e.g. issuing when a payment is recognised."""


class AuditAction(StrEnum):
    """What happened. Values are stored; never rename one."""

    ISSUED = "issued"
    """A receipt was numbered, signed and stored (an original or a replacement)."""
    REPLACED = "replaced"
    """A receipt was superseded by a replacement (Circular 91/2026 art. 20)."""
    ERROR_NOTICE = "error_notice"
    """A receipt was named in an error notice 04/SS-CTĐT (no reissue, number untouched)."""
    NOTICE_STATUS = "error_notice_status"
    """An error notice moved in the outbox (sent, acknowledged, rejected)."""


def record(
    session: Session,
    *,
    action: AuditAction,
    agency_id: str,
    actor: str,
    reason: str | None = None,
    receipt_id: str | None = None,
    related_receipt_id: str | None = None,
    notice_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> ReceiptAuditEvent:
    """Append one entry in the caller's transaction and return it (flushed, so it has an id)."""
    entry = ReceiptAuditEvent(
        at=at or utcnow(),
        agency_id=agency_id,
        action=action.value,
        receipt_id=receipt_id,
        related_receipt_id=related_receipt_id,
        notice_id=notice_id,
        actor=actor,
        reason=reason,
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return entry


def receipt_history(session: Session, receipt_id: str) -> list[ReceiptAuditEvent]:
    """Every entry about a receipt, as the acted-on receipt or the other side of a replacement."""
    return list(
        session.scalars(
            select(ReceiptAuditEvent)
            .where(
                or_(
                    ReceiptAuditEvent.receipt_id == receipt_id,
                    ReceiptAuditEvent.related_receipt_id == receipt_id,
                )
            )
            .order_by(ReceiptAuditEvent.id)
        )
    )
