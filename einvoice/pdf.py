"""The signed PDF display copy: rendered on first request, PAdES-signed, cached.

The signed XML stays the legal original; the PDF is a copy for printing and for people. It is
re-rendered only when what it shows changes (a receipt later replaced says so in red).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from einvoice.models import Receipt, ReceiptPdf
from einvoice.pdf_render import SIGNATURE_BOX, render_receipt_pdf
from einvoice.receipt_xml import parse_receipt_xml
from settings.db import utcnow
from signing.certs import common_name_of
from signing.keys import KeySource
from signing.pades import sign_pdf

__all__ = ["receipt_pdf", "render_signed_pdf"]


def _status(session: Session, receipt: Receipt) -> tuple[str, str | None]:
    if not receipt.replaced_by_id:
        return "valid", None
    newer = session.get(Receipt, receipt.replaced_by_id)
    number = newer.number if newer else "?"
    series = newer.series if newer else ""
    return (
        f"replaced:{receipt.replaced_by_id}",
        f"Đã được thay thế bởi biên lai số {number} ký hiệu {series} "
        f"/ Replaced by receipt no. {number}",
    )


def render_signed_pdf(
    receipt: Receipt,
    key: KeySource,
    *,
    verify_url: str,
    status_note: str | None,
    zone: ZoneInfo,
    now: datetime | None = None,
) -> bytes:
    parsed = parse_receipt_xml(receipt.xml)
    at = now or utcnow()
    signer = common_name_of(key.certificate) or key.certificate.subject.rfc4514_string()
    # The page shows the stamp (embedded font, exact signing time); the signature widget over
    # it draws nothing itself: the same visible box, three times faster to sign.
    pdf = render_receipt_pdf(
        parsed,
        verify_url=verify_url,
        status_note=status_note,
        signer_name=signer,
        stamp_lines=(
            f"Ký bởi: {signer}",
            f"Ngày ký: {at.astimezone(zone).strftime('%d/%m/%Y %H:%M:%S')}",
            "Signed digitally (PAdES)",
        ),
    )
    return sign_pdf(
        pdf,
        key,
        box=SIGNATURE_BOX,
        signing_time=at,
        tz=zone,
        reason="Bản thể hiện của biên lai điện tử / display copy of the e-receipt",
        draw_stamp=False,
    )


def receipt_pdf(
    session: Session, receipt: Receipt, key: KeySource, *, base_url: str, zone: ZoneInfo
) -> bytes:
    status_key, note = _status(session, receipt)
    cached = session.get(ReceiptPdf, receipt.id)
    if cached is not None and cached.status_key == status_key:
        return cached.pdf
    pdf = render_signed_pdf(
        receipt,
        key,
        verify_url=f"{base_url.rstrip('/')}/r/{receipt.verify_code}",
        status_note=note,
        zone=zone,
    )
    if cached is None:
        session.add(ReceiptPdf(receipt_id=receipt.id, status_key=status_key, pdf=pdf))
    else:
        cached.status_key, cached.pdf, cached.created_at = status_key, pdf, utcnow()
    session.flush()
    return pdf
