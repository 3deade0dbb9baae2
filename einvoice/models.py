"""Tables owned by ``einvoice``: receipts, number counters, error notices and the audit trail.

A receipt row is written once, in the transaction that takes its number, and never updated
except for its lifecycle link ``replaced_by_id`` (set once, when a replacement is issued).
The signed ``xml`` is the legal original; the other columns are copies of what it states, kept
for lookups. Deleting a receipt is never allowed: Circular 91/2026 art. 20 has no cancellation.
Both rules are enforced twice: here (``before_update``/``before_delete`` hooks, for a clear
error in the code that tried) and by database triggers (migration ``0002``, for anything that
bypasses the ORM). Columns added later by other work are not frozen unless listed in
:data:`RECEIPT_FROZEN_COLUMNS` (and in the triggers).

``source_key`` makes issuance idempotent: the caller names what is being paid (e.g.
``order:<id>``, ``replace:<original id>``) and a second request returns the first receipt
instead of burning a number.

The audit trail (:class:`ReceiptAuditEvent`) is append-only, enforced the same two ways.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from einvoice.errors import ReceiptImmutable
from settings.db import Base, UTCDateTime, utcnow

__all__ = [
    "ERROR_NOTICE_FROZEN_COLUMNS",
    "RECEIPT_FROZEN_COLUMNS",
    "ErrorNotice",
    "ErrorNoticeItem",
    "NoticeStatus",
    "Receipt",
    "ReceiptAuditEvent",
    "ReceiptCounter",
    "ReceiptEmail",
    "ReceiptPdf",
    "ReceiptStatus",
]


class ReceiptStatus(StrEnum):
    """A receipt's public status, derived from its lifecycle link (never stored)."""

    VALID = "valid"
    """In force: nothing replaced it (an error notice does not change that)."""
    REPLACED = "replaced"
    """Superseded by a replacement receipt that references it (Circular 91/2026 art. 20)."""


class NoticeStatus(StrEnum):
    """Where an error notice 04/SS-CTĐT stands in the outbox towards the tax authority.

    ``queued`` → ``sent`` (handed to the tax authority or its intermediary, message id known)
    → ``acknowledged`` (accepted) or ``rejected`` (refused; a corrected notice is a new one).
    Issue 5 does the sending; :data:`einvoice.error_notice.NOTICE_TRANSITIONS` is the graph.
    """

    QUEUED = "queued"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"


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
        Index("ix_receipts_replaced_by_id", "replaced_by_id", unique=True),
        Index("ix_receipts_replaces_id", "replaces_id", unique=True),
        Index("ix_receipts_lookup", "collector_tax_code", "template", "series", "number"),
        Index("ix_receipts_agency_mapping", "agency_id", "mapping_version"),
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
    """The lifecycle link: the replacement's id, written once. Unique: one replacement each."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    replaces_id: Mapped[str | None] = mapped_column(String(32), default=None)
    """For a replacement, the receipt it replaces (also stated in its signed XML)."""
    collector_tax_code: Mapped[str | None] = mapped_column(String(14), default=None)
    """The collector's MST as the XML states it, so a submitted receipt can be looked up by what
    it prints (MST, template, series, number). Only rows older than migration 0002 without an
    agency could lack it."""
    mapping_version: Mapped[str] = mapped_column(String(8), default="0.1", server_default="0.1")
    """The receipt mapping its XML is written in (``0.1`` or ``0.2``), as its ``PBan`` says;
    decides which mapping the agency issues next (:mod:`einvoice.mapping_policy`). Rows older
    than migration 0012 are 0.1: no other mapping existed."""

    @property
    def status(self) -> ReceiptStatus:
        return ReceiptStatus.REPLACED if self.replaced_by_id else ReceiptStatus.VALID


RECEIPT_FROZEN_COLUMNS: Final = frozenset(
    {
        "id",
        "agency_id",
        "source_key",
        "template",
        "series",
        "year",
        "number",
        "issued_at",
        "total",
        "payer_name",
        "payment_method",
        "payment_reference",
        "verify_code",
        "lines",
        "xml",
        "signer_subject",
        "created_at",
        "replaces_id",
        "collector_tax_code",
        "mapping_version",
    }
)
"""Columns never changed after the insert; ``replaced_by_id`` may go once from NULL to a value."""


class ReceiptAuditEvent(Base):
    """One lifecycle action on receipts: who, when, why. Append-only.

    ``action`` is an :class:`einvoice.audit.AuditAction` value. ``receipt_id`` is the receipt
    acted on; ``related_receipt_id`` the other side of a replacement; ``notice_id`` the error
    notice concerned. No foreign keys to receipts: the trail must outlive any mistake in them.
    """

    __tablename__ = "receipt_audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    receipt_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    related_receipt_id: Mapped[str | None] = mapped_column(String(32), default=None)
    notice_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ErrorNotice(Base):
    """A signed error notice 04/SS-CTĐT and its outbox state towards the tax authority.

    The signed ``xml`` is frozen like a receipt's; only the outbox columns move.
    """

    __tablename__ = "receipt_error_notices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    source_key: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    """Idempotency: the same key returns the same notice (NULL: none given)."""
    collector_tax_code: Mapped[str] = mapped_column(String(14))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    signer_subject: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=NoticeStatus.QUEUED.value, index=True)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    message_id: Mapped[str | None] = mapped_column(String(64), default=None)
    """``MTDiep`` of the TDiep message that carried it (set when sent, issue 5)."""
    status_detail: Mapped[str | None] = mapped_column(Text, default=None)
    """The tax authority's answer, e.g. why it rejected the notice."""


ERROR_NOTICE_FROZEN_COLUMNS: Final = frozenset(
    {
        "id",
        "agency_id",
        "source_key",
        "collector_tax_code",
        "reason",
        "actor",
        "xml",
        "signer_subject",
        "created_at",
    }
)


class ErrorNoticeItem(Base):
    """One receipt named in an error notice, in the order the notice lists them."""

    __tablename__ = "receipt_error_notice_items"

    notice_id: Mapped[str] = mapped_column(ForeignKey("receipt_error_notices.id"), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(ForeignKey("receipts.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


# --------------------------------------------------------------------------- write-once guards


def _changed_frozen(target: Any, frozen: frozenset[str]) -> list[str]:
    state = inspect(target)
    return sorted(name for name in frozen if state.attrs[name].history.has_changes())


@event.listens_for(Receipt, "before_update")
def _receipt_write_once(_mapper: Mapper[Any], _connection: Connection, target: Receipt) -> None:
    changed = _changed_frozen(target, RECEIPT_FROZEN_COLUMNS)
    link = inspect(target).attrs["replaced_by_id"].history
    if link.has_changes() and any(old is not None for old in link.deleted):
        changed.append("replaced_by_id")
    if changed:
        raise ReceiptImmutable(
            f"receipt {target.id} is signed and write-once; refused change to {', '.join(changed)}"
        )


@event.listens_for(Receipt, "before_delete")
def _receipt_never_deleted(_mapper: Mapper[Any], _connection: Connection, target: Receipt) -> None:
    raise ReceiptImmutable(
        f"receipt {target.id} cannot be deleted: receipts are never cancelled "
        "(Circular 91/2026 art. 20)"
    )


@event.listens_for(ReceiptAuditEvent, "before_update")
@event.listens_for(ReceiptAuditEvent, "before_delete")
def _audit_append_only(
    _mapper: Mapper[Any], _connection: Connection, target: ReceiptAuditEvent
) -> None:
    raise ReceiptImmutable(f"audit event {target.id} is append-only")


@event.listens_for(ErrorNotice, "before_update")
def _notice_write_once(_mapper: Mapper[Any], _connection: Connection, target: ErrorNotice) -> None:
    changed = _changed_frozen(target, ERROR_NOTICE_FROZEN_COLUMNS)
    if changed:
        raise ReceiptImmutable(
            f"error notice {target.id} is signed; refused change to {', '.join(changed)}"
        )


@event.listens_for(ErrorNotice, "before_delete")
@event.listens_for(ErrorNoticeItem, "before_delete")
def _notice_never_deleted(_mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
    raise ReceiptImmutable("error notices sent or queued for the tax authority are never deleted")


class ReceiptPdf(Base):
    """The signed PDF display copy, rendered on first request and kept (a cache, not a record).

    ``status_key`` says which lifecycle state it shows: when a receipt is replaced the copy is
    rendered again with "replaced by …", the legal XML never changes.
    """

    __tablename__ = "receipt_pdfs"

    receipt_id: Mapped[str] = mapped_column(ForeignKey("receipts.id"), primary_key=True)
    status_key: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReceiptEmail(Base):
    """One e-mail of a receipt to its payer: an outbox row, retried until sent once.

    The Message-ID is derived from this row's id, so a retry after a crash between "sent" and
    "recorded" carries the same Message-ID and mail clients show one message, not two.
    """

    __tablename__ = "receipt_emails"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(ForeignKey("receipts.id"), unique=True)
    to_address: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(16), index=True)
    """pending, sent or failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
