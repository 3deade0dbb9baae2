"""What may happen to a receipt after it is signed: replacement or an error notice, nothing else.

Circular 91/2026/TT-BTC art. 20 (corrections of e-receipts):

* an error in the payer's name or address, or in the amount in words, that touches neither the
  tax code nor the amount → tell the payer, **do not reissue**, notify the tax office on form
  04/SS-CTĐT (:func:`create_error_notice`);
* any other error (amount, tax code, fee items, the payer's id number...) → issue a
  **replacement receipt** that references the original (:func:`replace_receipt`).

There is no cancellation and no adjustment receipt under these rules, so this module offers
neither; ``api`` answers such attempts with :class:`~einvoice.errors.ReceiptCannotBeCancelled`.

Every action runs in the caller's transaction, writes its audit entry in it, and locks what it
changes (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers),
so two clerks replacing the same receipt at once get one replacement and one refusal. The
original's content is read back from its signed XML, the legal original, not from the copies in
the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.audit import SYSTEM_ACTOR, AuditAction, record
from einvoice.document import (
    Collector,
    FeeKind,
    Payer,
    ReceiptLine,
    ReceiptReference,
    ReceiptRequest,
)
from einvoice.error_notice import (
    ErrorNoticeDocument,
    NoticeEntry,
    build_error_notice_xml,
    signed_id_for_notice,
    validate_error_notice_xml,
)
from einvoice.errors import (
    ErrorNoticeConflict,
    ErrorNoticeNotFound,
    InvalidLifecycleInput,
    InvalidNoticeTransition,
    NothingToCorrect,
    ReceiptAlreadyReplaced,
    ReceiptNotFound,
    ReceiptReplaced,
    UseErrorNotice,
)
from einvoice.issuing import issue_receipt
from einvoice.mapping_policy import MappingPolicy
from einvoice.models import ErrorNotice, ErrorNoticeItem, NoticeStatus, Receipt
from einvoice.official import configured
from einvoice.receipt_xml import ParsedReceipt, load_receipt_xml, receipt_from_element
from settings.db import utcnow
from signing.certs import check_signing_certificate, same_tax_code
from signing.keys import KeySource
from signing.xmldsig import sign_enveloped

__all__ = [
    "MAX_NOTICE_RECEIPTS",
    "NOTICE_ONLY_FIELDS",
    "NOTICE_TRANSITIONS",
    "REASON_MAX",
    "REASON_MIN",
    "ReceiptCorrection",
    "changed_fields",
    "create_error_notice",
    "error_notices_for",
    "mark_error_notice",
    "original_content",
    "queued_error_notices",
    "replace_receipt",
    "replacement_source_key",
]

REASON_MIN: Final = 5
REASON_MAX: Final = 500
"""Bounds of a recorded reason: long enough to mean something, short enough for ``LDo``."""
ACTOR_MAX: Final = 255
MAX_NOTICE_RECEIPTS: Final = 500
"""Receipts one 04/SS-CTĐT may list (also the XSD's ``maxOccurs``); more go in several notices."""

NOTICE_ONLY_FIELDS: Final = frozenset(
    {"payer_name", "payer_address", "collector_name", "collector_address"}
)
"""Fields whose errors art. 20 corrects by an error notice, never by a replacement."""

NOTICE_TRANSITIONS: Final[dict[NoticeStatus, frozenset[NoticeStatus]]] = {
    NoticeStatus.QUEUED: frozenset({NoticeStatus.SENT}),
    NoticeStatus.SENT: frozenset({NoticeStatus.ACKNOWLEDGED, NoticeStatus.REJECTED}),
    NoticeStatus.ACKNOWLEDGED: frozenset(),
    NoticeStatus.REJECTED: frozenset(),
}
"""The outbox graph of an error notice; a rejected notice is followed by a new notice."""


@dataclass(frozen=True, slots=True)
class ReceiptCorrection:
    """What a replacement changes; ``None`` keeps what the original states.

    ``lines`` replaces the whole list of fee lines (amounts after quantity, cap and exemption).
    The amount in words is never given: it is always written from the amount.
    """

    payer: Payer | None = None
    lines: tuple[ReceiptLine, ...] | None = None


def replacement_source_key(original_id: str) -> str:
    """Idempotency key of the replacement of ``original_id``: one replacement per receipt."""
    return f"replace:{original_id}"


def _checked_text(value: str, what: str, low: int, high: int) -> str:
    text = " ".join(value.split())
    if not low <= len(text) <= high:
        raise InvalidLifecycleInput(
            f"{what} must be {low} to {high} characters (got {len(text)})",
            extra={"field": what},
        )
    return text


def _checked(reason: str, actor: str) -> tuple[str, str]:
    return (
        _checked_text(reason, "reason", REASON_MIN, REASON_MAX),
        _checked_text(actor, "actor", 1, ACTOR_MAX),
    )


def original_content(receipt: Receipt) -> ParsedReceipt:
    """What the stored, signed XML of ``receipt`` states (trusted: we signed and stored it)."""
    return receipt_from_element(load_receipt_xml(receipt.xml))


def _lines_of(parsed: ParsedReceipt) -> tuple[ReceiptLine, ...]:
    return tuple(
        ReceiptLine(
            fee_code=line.fee_code,
            name=line.name,
            kind=line.kind,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
            unit=line.unit,
            exemption=line.exemption,
        )
        for line in parsed.lines
    )


def _norm(value: str | None) -> str:
    return " ".join((value or "").split())


def _line_key(line: ReceiptLine) -> tuple[object, ...]:
    return (
        _norm(line.fee_code),
        _norm(line.name),
        FeeKind(line.kind),
        line.quantity,
        line.unit_price,
        line.amount,
        _norm(line.unit),
        _norm(line.exemption),
    )


def changed_fields(
    parsed: ParsedReceipt, payer: Payer, lines: tuple[ReceiptLine, ...], collector: Collector
) -> set[str]:
    """Which printed fields differ between the original and the corrected content.

    Text is compared whitespace-normalised, as the XML writes it.
    """
    changed: set[str] = set()
    if _norm(payer.name) != _norm(parsed.payer_name):
        changed.add("payer_name")
    if _norm(payer.address) != _norm(parsed.payer_address):
        changed.add("payer_address")
    if _norm(payer.id_number) != _norm(parsed.payer_id_number):
        changed.add("payer_id_number")
    if [_line_key(line) for line in lines] != [_line_key(line) for line in _lines_of(parsed)]:
        changed.add("lines")
    if sum(line.amount for line in lines) != parsed.total:
        changed.add("amount")
    if not same_tax_code(collector.tax_code, parsed.tax_code):
        changed.add("collector_tax_code")
    if _norm(collector.name) != _norm(parsed.collector_name):
        changed.add("collector_name")
    if _norm(collector.address) != _norm(parsed.collector_address):
        changed.add("collector_address")
    return changed


def _locked_receipt(session: Session, receipt_id: str, agency_id: str | None) -> Receipt:
    # populate_existing: a copy already in the session may predate a concurrent replacement.
    receipt = session.scalar(
        select(Receipt)
        .where(Receipt.id == receipt_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if receipt is None or (agency_id is not None and receipt.agency_id != agency_id):
        raise ReceiptNotFound(f"no receipt {receipt_id!r}")
    return receipt


def replace_receipt(
    session: Session,
    original_id: str,
    corrected: ReceiptCorrection,
    reason: str,
    actor: str,
    key: KeySource,
    *,
    collector: Collector,
    series: str,
    verify_url_base: str,
    allow_development_certificate: bool,
    agency_id: str | None = None,
    now: datetime | None = None,
    policy: MappingPolicy | None = None,
) -> Receipt:
    """Issue the replacement of ``original_id`` and link the two; return the replacement.

    The replacement takes the next number of the collector's current ``series`` (same gapless
    counter as every receipt) under the original's template, states the original's id,
    template, series, number and date in its signed XML, and keeps the original's payment
    reference and one-stop context. The original is marked ``replaced_by_id`` and stays
    exactly as signed.

    ``collector`` is the collecting organisation as it is now (its certificate must match its
    tax code); ``agency_id``, when given, restricts the call to that agency's receipts.

    The replacement is written in the mapping the agency issues today (``policy``, see
    :func:`~einvoice.issuing.issue_receipt`), whatever the original's: a 0.1 receipt replaced
    after the switch date gets a 0.2 replacement, which names it by what it printed. The
    original is read in its own mapping.

    :raises ReceiptNotFound: no such receipt (or another agency's).
    :raises ReceiptAlreadyReplaced: it was replaced already; replace the replacement instead.
    :raises NothingToCorrect: the corrected content equals the original.
    :raises UseErrorNotice: only the name or address changes: art. 20 wants form 04/SS-CTĐT.
    :raises InvalidLifecycleInput: reason or actor out of bounds, or no fee lines.
    :raises signing.errors.CertificateRejected: the key may not sign for ``collector``.
    """
    reason, actor = _checked(reason, actor)
    now = now or utcnow()
    original = _locked_receipt(session, original_id, agency_id)
    if original.replaced_by_id is not None:
        raise ReceiptAlreadyReplaced(
            f"receipt {original.id} was replaced by {original.replaced_by_id}",
            extra={"replaced_by": original.replaced_by_id},
        )
    parsed = original_content(original)
    payer = corrected.payer or Payer(
        name=parsed.payer_name, address=parsed.payer_address, id_number=parsed.payer_id_number
    )
    lines = corrected.lines if corrected.lines is not None else _lines_of(parsed)
    if not lines:
        raise InvalidLifecycleInput("a replacement receipt needs at least one fee line")
    changed = changed_fields(parsed, payer, lines, collector)
    if not changed:
        raise NothingToCorrect(f"the correction of receipt {original.id} changes nothing")
    if changed <= NOTICE_ONLY_FIELDS:
        raise UseErrorNotice(
            f"only {', '.join(sorted(changed))} would change: send an error notice 04/SS-CTĐT",
            extra={"changed": sorted(changed)},
        )
    request = ReceiptRequest(
        agency_id=original.agency_id,
        source_key=replacement_source_key(original.id),
        collector=collector,
        template=original.template,
        series=series,
        payer=payer,
        lines=lines,
        payment_method=parsed.payment_method,
        payment_reference=parsed.payment_reference,
        procedure_code=parsed.procedure_code,
        procedure_name=parsed.procedure_name,
        dossier_code=parsed.dossier_code,
        notes=parsed.notes,
        replaces=original.id,
        replaces_reference=ReceiptReference(
            template=parsed.template,
            series=parsed.series,
            number=parsed.number,
            issued_on=parsed.issued_on,
        ),
    )
    replacement = issue_receipt(
        session,
        request,
        key,
        verify_url_base=verify_url_base,
        allow_development_certificate=allow_development_certificate,
        now=now,
        actor=actor,
        reason=reason,
        policy=policy,
    )
    original.replaced_by_id = replacement.id
    session.flush()
    record(
        session,
        action=AuditAction.REPLACED,
        agency_id=original.agency_id,
        actor=actor,
        reason=reason,
        receipt_id=original.id,
        related_receipt_id=replacement.id,
        details={
            "changed": sorted(changed),
            "original": {
                "template": original.template,
                "series": original.series,
                "number": original.number,
                "total": original.total,
            },
            "replacement": {
                "template": replacement.template,
                "series": replacement.series,
                "number": replacement.number,
                "total": replacement.total,
            },
        },
        at=now,
    )
    return replacement


# --------------------------------------------------------------------------- error notices


def _default_place(collector: Collector) -> str:
    """Địa danh when none is given: the last part of the collector's address (the province)."""
    parts = [part.strip() for part in collector.address.split(",") if part.strip()]
    return (parts[-1] if parts else collector.name)[:100]


def _notice_items(session: Session, notice_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ErrorNoticeItem.receipt_id)
            .where(ErrorNoticeItem.notice_id == notice_id)
            .order_by(ErrorNoticeItem.position)
        )
    )


def create_error_notice(
    session: Session,
    receipt_ids: Sequence[str],
    reason: str,
    actor: str,
    key: KeySource,
    *,
    collector: Collector,
    tax_authority_name: str,
    allow_development_certificate: bool,
    tax_authority_code: str | None = None,
    place: str | None = None,
    agency_id: str | None = None,
    source_key: str | None = None,
    now: datetime | None = None,
    document_version: str | None = None,
) -> ErrorNotice:
    """Make, sign and queue a 04/SS-CTĐT about ``receipt_ids``; receipts are left untouched.

    All receipts must be the same collector's and in force (not replaced). The notice is
    stored ``queued`` for the tax-authority client. ``source_key`` makes the call idempotent:
    the same key with the same receipts and reason returns the first notice.

    The notice is written in mapping 0.2 (the confirmed structure) whatever mapping its
    receipts are in: it names them by template, series, number and date only.
    ``document_version`` is its ``PBan`` (default: the settings').

    :raises ReceiptNotFound: a receipt is unknown (or another agency's).
    :raises ReceiptReplaced: a receipt was replaced: it is no longer in force.
    :raises ErrorNoticeConflict: ``source_key`` was used for another notice.
    :raises InvalidLifecycleInput: bad reason/actor, no receipts or too many, or receipts of
        several collectors.
    :raises signing.errors.CertificateRejected: the key may not sign for ``collector``.
    """
    reason, actor = _checked(reason, actor)
    authority = _checked_text(tax_authority_name, "tax_authority_name", 3, 400)
    ids = list(dict.fromkeys(receipt_ids))
    if not ids or len(ids) > MAX_NOTICE_RECEIPTS:
        raise InvalidLifecycleInput(
            f"an error notice lists 1 to {MAX_NOTICE_RECEIPTS} receipts (got {len(ids)})",
            extra={"field": "receipt_ids"},
        )
    if source_key is not None:
        existing = session.scalar(select(ErrorNotice).where(ErrorNotice.source_key == source_key))
        if existing is not None:
            if _notice_items(session, existing.id) == ids and existing.reason == reason:
                return existing
            raise ErrorNoticeConflict(f"key {source_key!r} was used for notice {existing.id}")
    now = now or utcnow()

    receipts = [_locked_receipt(session, receipt_id, agency_id) for receipt_id in ids]
    agencies = {receipt.agency_id for receipt in receipts}
    if len(agencies) != 1:
        raise InvalidLifecycleInput("an error notice is about one collector's receipts only")
    replaced = [receipt.id for receipt in receipts if receipt.replaced_by_id is not None]
    if replaced:
        raise ReceiptReplaced(
            f"receipts replaced, no longer in force: {', '.join(replaced)}",
            extra={"receipt_ids": replaced},
        )
    contents = [original_content(receipt) for receipt in receipts]
    foreign = [c.receipt_id for c in contents if not same_tax_code(c.tax_code, collector.tax_code)]
    if foreign:
        raise InvalidLifecycleInput(
            f"receipts {', '.join(foreign)} were not issued under tax code {collector.tax_code}"
        )
    check_signing_certificate(
        key.certificate,
        expected_tax_code=collector.tax_code,
        now=now,
        allow_development=allow_development_certificate,
    )

    notice_id = uuid.uuid4().hex
    doc = ErrorNoticeDocument(
        notice_id=notice_id,
        collector=collector,
        tax_authority_name=authority,
        tax_authority_code=tax_authority_code,
        place=_checked_text(place, "place", 1, 100) if place else _default_place(collector),
        notified_at=now,
        document_version=document_version or configured().document_version,
        entries=tuple(
            NoticeEntry(
                template=content.template,
                series=content.series,
                number=content.number,
                issued_on=content.issued_on,
                reason=reason,
            )
            for content in contents
        ),
    )
    root = build_error_notice_xml(doc)
    validate_error_notice_xml(root)
    signed = sign_enveloped(
        root,
        signed_id=signed_id_for_notice(notice_id),
        key=key,
        signing_time=now,
        tz=ZoneInfo(collector.time_zone),
    )
    validate_error_notice_xml(signed)
    notice = ErrorNotice(
        id=notice_id,
        agency_id=receipts[0].agency_id,
        source_key=source_key,
        collector_tax_code=collector.tax_code,
        reason=reason,
        actor=actor,
        xml=etree.tostring(signed, xml_declaration=True, encoding="UTF-8"),
        signer_subject=key.certificate.subject.rfc4514_string(),
        created_at=now,
        status=NoticeStatus.QUEUED.value,
        status_changed_at=now,
    )
    session.add(notice)
    session.flush()
    for position, receipt in enumerate(receipts, start=1):
        session.add(ErrorNoticeItem(notice_id=notice_id, receipt_id=receipt.id, position=position))
        record(
            session,
            action=AuditAction.ERROR_NOTICE,
            agency_id=receipt.agency_id,
            actor=actor,
            reason=reason,
            receipt_id=receipt.id,
            notice_id=notice_id,
            details={
                "form": "04/SS-CTĐT",
                "template": receipt.template,
                "series": receipt.series,
                "number": receipt.number,
            },
            at=now,
        )
    session.flush()
    return notice


def error_notices_for(session: Session, receipt_id: str) -> list[ErrorNotice]:
    """The error notices that name a receipt, oldest first."""
    return list(
        session.scalars(
            select(ErrorNotice)
            .join(ErrorNoticeItem, ErrorNoticeItem.notice_id == ErrorNotice.id)
            .where(ErrorNoticeItem.receipt_id == receipt_id)
            .order_by(ErrorNotice.created_at, ErrorNotice.id)
        )
    )


def queued_error_notices(session: Session, limit: int = 100) -> list[ErrorNotice]:
    """The outbox for the tax-authority client (issue 5): queued notices, oldest first.

    Rows are locked with ``SKIP LOCKED`` on PostgreSQL so that several workers share the queue.
    """
    return list(
        session.scalars(
            select(ErrorNotice)
            .where(ErrorNotice.status == NoticeStatus.QUEUED.value)
            .order_by(ErrorNotice.created_at, ErrorNotice.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def mark_error_notice(
    session: Session,
    notice_id: str,
    status: NoticeStatus,
    *,
    actor: str = SYSTEM_ACTOR,
    message_id: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> ErrorNotice:
    """Move a notice along :data:`NOTICE_TRANSITIONS` and record it in the audit trail.

    :raises ErrorNoticeNotFound: no such notice.
    :raises InvalidNoticeTransition: the graph does not allow that move.
    """
    now = now or utcnow()
    notice = session.scalar(
        select(ErrorNotice)
        .where(ErrorNotice.id == notice_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if notice is None:
        raise ErrorNoticeNotFound(f"no error notice {notice_id!r}")
    current = NoticeStatus(notice.status)
    if status not in NOTICE_TRANSITIONS[current]:
        raise InvalidNoticeTransition(f"error notice {notice_id} cannot go {current} → {status}")
    notice.status = status.value
    notice.status_changed_at = now
    if message_id is not None:
        notice.message_id = message_id
    if detail is not None:
        notice.status_detail = detail
    session.flush()
    record(
        session,
        action=AuditAction.NOTICE_STATUS,
        agency_id=notice.agency_id,
        actor=actor,
        reason=detail,
        notice_id=notice.id,
        details={"from": current.value, "to": status.value, "message_id": message_id},
        at=now,
    )
    return notice
