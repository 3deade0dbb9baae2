"""Issuing a receipt: check the key, take the next number, build, sign, validate and store.

Everything happens in the caller's transaction. The certificate is checked *before* a number
is taken, and any failure after that rolls the counter back with the rest, so a refused or
failed signature never burns a number (Decree 254/2026 art. 23: no gaps).

Replacement receipts (:mod:`einvoice.lifecycle`) come through here too, so that they take
their number from the same gapless counter; the audit entry ``issued`` is written with the row.

The receipt mapping (0.1 or 0.2) is the agency's on its local day of issue
(:mod:`einvoice.mapping_policy`), stored with the row; a replacement follows the same rule, so a
0.1 receipt may be replaced by a 0.2 one, which names it by template, series, number and date.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from einvoice.audit import SYSTEM_ACTOR, AuditAction
from einvoice.document import ReceiptDocument, ReceiptRequest
from einvoice.mapping_policy import MappingPolicy, ReceiptMappingPolicy
from einvoice.models import Receipt, ReceiptAuditEvent
from einvoice.numbering import reserve_numbers, series_for_year
from einvoice.receipt_xml import build_receipt_xml, signed_id_for, validate_receipt_xml
from settings.db import utcnow
from signing.certs import check_signing_certificate
from signing.keys import KeySource
from signing.xmldsig_fast import sign_enveloped_fast

__all__ = ["BatchIssued", "find_receipt", "issue_receipt", "issue_receipts", "new_verify_code"]


def new_verify_code() -> str:
    """16 base32 characters (80 bits): short enough for a QR, unguessable for the public page."""
    return base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=")


def find_receipt(session: Session, source_key: str) -> Receipt | None:
    return session.scalar(select(Receipt).where(Receipt.source_key == source_key))


@dataclass(frozen=True)
class BatchIssued:
    """What :func:`issue_receipts` did: receipts by source key (new or already issued), and the
    requests set aside with the error that stopped them (they took no number)."""

    receipts: dict[str, Receipt]
    failed: dict[str, Exception]


@dataclass(frozen=True)
class _Prepared:
    request: ReceiptRequest
    number: int
    series: str


class _ItemFailed(Exception):
    def __init__(self, source_key: str, error: Exception) -> None:
        super().__init__(source_key)
        self.source_key = source_key
        self.error = error


MAX_ATTEMPTS = 8
"""A batch with bad items is retried without them; after this many rounds the rest waits."""


def issue_receipts(
    session: Session,
    requests: Sequence[ReceiptRequest],
    key: KeySource,
    *,
    verify_url_base: str,
    allow_development_certificate: bool,
    now: datetime | None = None,
    actor: str = SYSTEM_ACTOR,
    reason: str | None = None,
    policy: MappingPolicy | None = None,
) -> BatchIssued:
    """Issues every request not issued yet, as one batch of one collector (``key``'s).

    Numbers are reserved per series in one statement and used in order within the batch; the
    whole batch runs in a savepoint, so a request that cannot be built, signed or validated
    is set aside (with its error) and the batch is redone without it: it never takes a
    number, and the others still go out. A certificate the collector may not sign with stops
    the whole batch before any number is taken (:class:`~signing.errors.CertificateRejected`).

    The counter's row lock is held from the reservation to the caller's commit, across the
    signatures: a number must not become visible before its signed receipt exists (no gaps
    after a crash), and signing a receipt costs well under a millisecond, so a batch of a few
    hundred holds the lock for a fraction of a second. An agency that needs more spreads
    issuance over several series (docs/operations.md).
    """
    keys = list(dict.fromkeys(r.source_key for r in requests))
    unique = {r.source_key: r for r in requests}
    done: dict[str, Receipt] = {}
    for offset in range(0, len(keys), 500):
        chunk = keys[offset : offset + 500]
        done.update(
            {
                r.source_key: r
                for r in session.scalars(select(Receipt).where(Receipt.source_key.in_(chunk)))
            }
        )
    todo = [unique[k] for k in keys if k not in done]
    failed: dict[str, Exception] = {}
    if not todo:
        return BatchIssued(done, failed)
    now = now or utcnow()
    tax_codes = {r.collector.tax_code for r in todo}
    for tax_code in tax_codes:
        check_signing_certificate(
            key.certificate,
            expected_tax_code=tax_code,
            now=now,
            allow_development=allow_development_certificate,
        )
    policy = policy or ReceiptMappingPolicy.configured()
    for _attempt in range(MAX_ATTEMPTS):
        if not todo:
            break
        try:
            with session.begin_nested():
                issued = _issue_batch(
                    session, todo, key, verify_url_base, now, actor, reason, policy
                )
        except _ItemFailed as bad:
            failed[bad.source_key] = bad.error
            todo = [r for r in todo if r.source_key != bad.source_key]
            continue
        done.update(issued)
        todo = []
    for request in todo:  # pragma: no cover - only after MAX_ATTEMPTS bad items in a row
        failed.setdefault(request.source_key, RuntimeError("set aside: too many failed items"))
    return BatchIssued(done, failed)


def _issue_batch(
    session: Session,
    requests: list[ReceiptRequest],
    key: KeySource,
    verify_url_base: str,
    now: datetime,
    actor: str,
    reason: str | None,
    policy: MappingPolicy,
) -> dict[str, Receipt]:
    groups: dict[tuple[str, str, str, int], list[ReceiptRequest]] = {}
    for request in requests:
        local_day = now.astimezone(ZoneInfo(request.collector.time_zone)).date()
        series = series_for_year(request.series, local_day.year)
        groups.setdefault((request.agency_id, request.template, series, local_day.year), []).append(
            request
        )
    prepared: list[_Prepared] = []
    for (agency_id, template, series, year), members in sorted(groups.items()):
        first = reserve_numbers(session, agency_id, template, series, year, len(members))
        prepared.extend(_Prepared(request, first + i, series) for i, request in enumerate(members))
    signer_subject = key.certificate.subject.rfc4514_string()
    receipts: dict[str, Receipt] = {}
    mappings: dict[tuple[str, object], str] = {}
    for item in prepared:
        request = item.request
        zone = ZoneInfo(request.collector.time_zone)
        local_day = now.astimezone(zone).date()
        mapping_key = (request.agency_id, local_day)
        if mapping_key not in mappings:
            mappings[mapping_key] = policy.mapping_for(session, request.agency_id, local_day)
        mapping = mappings[mapping_key]
        try:
            receipt = _signed_receipt(
                request, item, key, zone, now, verify_url_base, mapping, policy, signer_subject
            )
        except Exception as exc:  # this request is set aside; the batch is redone without it
            raise _ItemFailed(request.source_key, exc) from exc
        receipts[request.source_key] = receipt
    session.add_all(receipts.values())
    session.flush()
    # Plain rows, not objects: nothing reads them back in this transaction, and without the
    # generated ids to return the driver sends them as one pipelined executemany (issue 16).
    session.execute(
        insert(ReceiptAuditEvent),
        [
            dict(
                at=now,
                agency_id=r.agency_id,
                action=AuditAction.ISSUED.value,
                receipt_id=r.id,
                related_receipt_id=r.replaces_id,
                notice_id=None,
                actor=actor,
                reason=reason or f"payment {r.payment_reference} collected",
                details={
                    "source_key": r.source_key,
                    "template": r.template,
                    "series": r.series,
                    "number": r.number,
                    "total": r.total,
                    "mapping": r.mapping_version,
                },
            )
            for r in receipts.values()
        ],
    )
    return receipts


def _signed_receipt(
    request: ReceiptRequest,
    item: _Prepared,
    key: KeySource,
    zone: ZoneInfo,
    now: datetime,
    verify_url_base: str,
    mapping: str,
    policy: MappingPolicy,
    signer_subject: str,
) -> Receipt:
    receipt_id = uuid.uuid4().hex
    verify_code = new_verify_code()
    doc = ReceiptDocument(
        receipt_id=receipt_id,
        template=request.template,
        series=item.series,
        number=item.number,
        issued_at=now,
        collector=request.collector,
        payer=request.payer,
        lines=request.lines,
        payment_method=request.payment_method,
        payment_reference=request.payment_reference,
        procedure_code=request.procedure_code,
        procedure_name=request.procedure_name,
        dossier_code=request.dossier_code,
        verify_code=verify_code,
        verify_url=f"{verify_url_base.rstrip('/')}/r/{verify_code}",
        replaces=request.replaces,
        replaces_reference=request.replaces_reference,
        notes=request.notes,
        mapping_version=mapping,
        document_version=policy.document_version,
    )
    root = build_receipt_xml(doc)
    signed = sign_enveloped_fast(
        root, signed_id=signed_id_for(doc), key=key, signing_time=now, tz=zone, copy=False
    )
    validate_receipt_xml(signed)
    return Receipt(
        id=receipt_id,
        agency_id=request.agency_id,
        source_key=request.source_key,
        template=request.template,
        series=item.series,
        year=now.astimezone(zone).date().year,
        number=item.number,
        issued_at=now,
        total=doc.total,
        payer_name=request.payer.name,
        payment_method=request.payment_method,
        payment_reference=request.payment_reference,
        verify_code=verify_code,
        lines=[{**asdict(line), "kind": line.kind.value} for line in request.lines],
        xml=etree.tostring(signed, xml_declaration=True, encoding="UTF-8"),
        signer_subject=signer_subject,
        replaces_id=request.replaces,
        collector_tax_code=request.collector.tax_code,
        mapping_version=mapping,
    )


def issue_receipt(
    session: Session,
    request: ReceiptRequest,
    key: KeySource,
    *,
    verify_url_base: str,
    allow_development_certificate: bool,
    now: datetime | None = None,
    actor: str = SYSTEM_ACTOR,
    reason: str | None = None,
    policy: MappingPolicy | None = None,
) -> Receipt:
    """Issue the receipt ``request`` asks for, or return the one already issued for its key:
    :func:`issue_receipts` with a batch of one (the counter, a card webhook, an exempt order).

    ``actor`` and ``reason`` go to the audit trail; by default the service itself issued it
    because a payment was recognised. ``policy`` chooses the receipt mapping; by default the
    settings' (:meth:`ReceiptMappingPolicy.configured`).
    """
    outcome = issue_receipts(
        session,
        [request],
        key,
        verify_url_base=verify_url_base,
        allow_development_certificate=allow_development_certificate,
        now=now,
        actor=actor,
        reason=reason,
        policy=policy,
    )
    if request.source_key in outcome.failed:
        raise outcome.failed[request.source_key]
    return outcome.receipts[request.source_key]
