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
from dataclasses import asdict
from datetime import datetime
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.audit import SYSTEM_ACTOR, AuditAction, record
from einvoice.document import ReceiptDocument, ReceiptRequest
from einvoice.mapping_policy import MappingPolicy, ReceiptMappingPolicy
from einvoice.models import Receipt
from einvoice.numbering import next_number, series_for_year
from einvoice.receipt_xml import build_receipt_xml, signed_id_for, validate_receipt_xml
from settings.db import utcnow
from signing.certs import check_signing_certificate
from signing.keys import KeySource
from signing.xmldsig_fast import sign_enveloped_fast

__all__ = ["find_receipt", "issue_receipt", "new_verify_code"]


def new_verify_code() -> str:
    """16 base32 characters (80 bits): short enough for a QR, unguessable for the public page."""
    return base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=")


def find_receipt(session: Session, source_key: str) -> Receipt | None:
    return session.scalar(select(Receipt).where(Receipt.source_key == source_key))


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
    """Issue the receipt ``request`` asks for, or return the one already issued for its key.

    ``actor`` and ``reason`` go to the audit trail; by default the service itself issued it
    because a payment was recognised. ``policy`` chooses the receipt mapping; by default the
    settings' (:meth:`ReceiptMappingPolicy.configured`).
    """
    existing = find_receipt(session, request.source_key)
    if existing is not None:
        return existing
    now = now or utcnow()
    check_signing_certificate(
        key.certificate,
        expected_tax_code=request.collector.tax_code,
        now=now,
        allow_development=allow_development_certificate,
    )
    zone = ZoneInfo(request.collector.time_zone)
    local_day = now.astimezone(zone).date()
    year = local_day.year
    policy = policy or ReceiptMappingPolicy.configured()
    mapping = policy.mapping_for(session, request.agency_id, local_day)
    series = series_for_year(request.series, year)
    number = next_number(session, request.agency_id, request.template, series, year)
    receipt_id = uuid.uuid4().hex
    verify_code = new_verify_code()
    doc = ReceiptDocument(
        receipt_id=receipt_id,
        template=request.template,
        series=series,
        number=number,
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
    xml = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    receipt = Receipt(
        id=receipt_id,
        agency_id=request.agency_id,
        source_key=request.source_key,
        template=request.template,
        series=series,
        year=year,
        number=number,
        issued_at=now,
        total=doc.total,
        payer_name=request.payer.name,
        payment_method=request.payment_method,
        payment_reference=request.payment_reference,
        verify_code=verify_code,
        lines=[{**asdict(line), "kind": line.kind.value} for line in request.lines],
        xml=xml,
        signer_subject=key.certificate.subject.rfc4514_string(),
        replaces_id=request.replaces,
        collector_tax_code=request.collector.tax_code,
        mapping_version=mapping,
    )
    session.add(receipt)
    session.flush()
    record(
        session,
        action=AuditAction.ISSUED,
        agency_id=request.agency_id,
        actor=actor,
        reason=reason or f"payment {request.payment_reference} collected",
        receipt_id=receipt_id,
        related_receipt_id=request.replaces,
        details={
            "source_key": request.source_key,
            "template": request.template,
            "series": series,
            "number": number,
            "total": doc.total,
            "mapping": mapping,
        },
        at=now,
    )
    return receipt
