"""Public verification: ``POST /api/v1/verify`` (a file) and ``GET /r/{code}`` (the QR's page).

No authentication: anyone holding a receipt may check it, and the verify code in the QR is the
only key to the public page (80 random bits). The page re-verifies the stored legal original on
every view, so it shows what the signature says today, not what we remember.

The upload is read with a hard cap (:data:`~einvoice.verification.MAX_DOCUMENT_BYTES`) whatever
``Content-Length`` claims; hostile XML is refused by :mod:`einvoice.verification` before any
parsing that could expand entities or fetch anything. The handlers are plain ``def``: the work
is CPU (signature checks) and blocking database calls, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.rendering import local, render
from einvoice.amount_words import amount_in_words
from einvoice.errors import FileTooLarge
from einvoice.lifecycle import original_content
from einvoice.models import Receipt
from einvoice.verification import (
    MAX_DOCUMENT_BYTES,
    LinkedReceipt,
    VerificationProblem,
    VerificationResult,
    verify_document,
)
from payments.presenters import iso, receipt_links
from reconciliation.trail import LinkedReceipt as TrailReceipt
from reconciliation.trail import ReceiptTrail, receipt_trail

__all__ = ["router"]

router = APIRouter(tags=["verification"])

_CODE_SHAPE: Final = re.compile(r"^[A-Z2-7]{8,32}$")
"""Verify codes are base32 (``einvoice.issuing.new_verify_code``); anything else is a 404."""


def _problem_json(problem: VerificationProblem) -> dict[str, str]:
    return {"code": problem.code, "en": problem.en, "vi": problem.vi}


def _linked_json(linked: LinkedReceipt | None, base: str) -> dict[str, Any] | None:
    if linked is None:
        return None
    return {
        "id": linked.id,
        "template": linked.template,
        "series": linked.series,
        "number": linked.number,
        "verify_url": f"{base}/r/{linked.verify_code}",
    }


def result_json(result: VerificationResult, base_url: str) -> dict[str, Any]:
    """The contract's fields (``valid``, ``signer``, ``tax_code``, ``template``, ``series``,
    ``number``, ``status``, ``problems`` as plain English sentences) plus bilingual details."""
    base = base_url.rstrip("/")
    issued_on: date | None = result.issued_on
    return {
        "valid": result.valid,
        "signer": result.signer,
        "tax_code": result.tax_code,
        "template": result.template,
        "series": result.series,
        "number": result.number,
        "status": result.status,
        "problems": [p.en for p in result.problems],
        "format": result.format,
        "signer_tax_code": result.signer_tax_code,
        "tax_code_matches": result.tax_code_matches,
        "collector_name": result.collector_name,
        "issued_on": issued_on.isoformat() if issued_on else None,
        "total": result.total,
        "signing_time": result.signing_time,
        "development_certificate": result.development,
        "trusted_chain": result.trusted_chain,
        "receipt": (
            {
                "id": result.receipt_id,
                "xml_url": f"{base}/api/v1/receipts/{result.receipt_id}/xml",
                "pdf_url": f"{base}/api/v1/receipts/{result.receipt_id}/pdf",
            }
            if result.receipt_id
            else None
        ),
        "replaced_by": _linked_json(result.replaced_by, base),
        "replaces": _linked_json(result.replaces, base),
        "problem_details": [_problem_json(p) for p in result.problems],
        "warnings": [_problem_json(p) for p in result.warnings],
    }


def _hint(upload: UploadFile) -> str | None:
    name = (upload.filename or "").lower()
    if name.endswith(".pdf"):
        return "application/pdf"
    if name.endswith(".xml"):
        return "application/xml"
    return upload.content_type


@router.post(
    "/api/v1/verify",
    summary="Verify a receipt file (signed XML legal original, or PDF display copy)",
    responses={
        400: {"description": "unsafe_xml: DOCTYPE/entities refused"},
        413: {"description": "file_too_large"},
    },
)
def verify(
    file: Annotated[UploadFile, File(description="Receipt XML or PDF, at most 5 MB")],
    engine: EngineDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    data = file.file.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FileTooLarge(f"files are verified up to {MAX_DOCUMENT_BYTES} bytes")
    with unit_of_work(engine) as session:
        result = verify_document(data, _hint(file), session=session)
    return result_json(result, settings.public_base_url)


@router.get("/verify", response_class=HTMLResponse, summary="Page to verify a receipt file")
def verify_page(request: Request) -> HTMLResponse:
    return render(request, "verify.html", {})


def _mask_name(name: str) -> str:
    """``Nguyễn Văn An`` → ``Nguyễn V. A.``: enough to recognise one's receipt, not to profile."""
    words = name.split()
    if len(words) <= 1:
        return name
    return " ".join([words[0], *(f"{w[0]}." for w in words[1:])])


def _local_time_display(value: str | None) -> str | None:
    """``2026-11-21T12:56:41`` (SigningTime, local, no zone) → ``21/11/2026 12:56:41``."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").strftime("%d/%m/%Y %H:%M:%S")
    except ValueError:
        return value


def _vnd(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


_CHANNELS: Final = {
    "transfer": ("Chuyển khoản ngân hàng", "Bank transfer"),
    "cash": ("Tiền mặt tại quầy", "Cash at the counter"),
    "card": ("Thẻ", "Card"),
    "exempt": ("Miễn, không thu tiền", "Exempt, nothing paid"),
}
_TAX_STATES: Final = {
    "accepted": ("Đã tiếp nhận", "Accepted"),
    "duplicate_accepted": ("Đã tiếp nhận", "Accepted"),
    "rejected": ("Bị từ chối, gửi lại", "Rejected, sent again"),
    "queued": ("Chờ gửi", "Waiting to be sent"),
    "sent": ("Đã gửi, chờ phản hồi", "Sent, awaiting the answer"),
    "unknown": ("Đã gửi, chờ phản hồi", "Sent, awaiting the answer"),
}


def _trail(trail: ReceiptTrail) -> dict[str, Any]:
    """The chain as the public page shows it: times, channel, symbols, days. No personal data."""
    channel = _CHANNELS.get(trail.channel, (trail.channel, trail.channel))

    def linked(r: TrailReceipt | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {
            "template": r.template,
            "series": r.series,
            "number": r.number,
            "verify_url": f"/r/{r.verify_code}",
            "issued": local(r.issued_at, "%d/%m/%Y %H:%M"),
        }

    return {
        "paid": local(trail.paid_at, "%d/%m/%Y %H:%M:%S") if trail.paid_at else None,
        "paid_at": iso(trail.paid_at),
        "channel": trail.channel,
        "channel_vi": channel[0],
        "channel_en": channel[1],
        "issued": local(trail.issued_at, "%d/%m/%Y %H:%M:%S"),
        "issued_at": iso(trail.issued_at),
        "replaced_by": linked(trail.replaced_by),
        "replaces": linked(trail.replaces),
        "reports": [
            {
                "day": r.business_day.strftime("%d/%m/%Y"),
                "day_iso": r.business_day.isoformat(),
                "first": r.supplement_no == 0,
                "supplement_no": r.supplement_no,
                "status": r.status,
                "state_vi": _TAX_STATES.get(r.status, (r.status, r.status))[0],
                "state_en": _TAX_STATES.get(r.status, (r.status, r.status))[1],
                "late": r.late,
            }
            for r in trail.reports
        ],
    }


@router.get(
    "/r/{code}",
    response_class=HTMLResponse,
    summary="Public verification page of one receipt (opened by its QR code)",
)
def public_page(code: str, request: Request, engine: EngineDep) -> HTMLResponse:
    receipt: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    if _CODE_SHAPE.match(code):
        with unit_of_work(engine) as session:
            row = session.scalar(select(Receipt).where(Receipt.verify_code == code))
            if row is not None:
                parsed = original_content(row)
                result = verify_document(row.xml, "application/xml", session=session)
                links = receipt_links(row, "")
                receipt = {
                    "id": row.id,
                    "collector_name": parsed.collector_name,
                    "collector_address": parsed.collector_address,
                    "tax_code": parsed.tax_code,
                    "template": parsed.template,
                    "series": parsed.series,
                    "number": parsed.number,
                    "issued_on": parsed.issued_on.strftime("%d/%m/%Y"),
                    "issued_time": parsed.issued_time.isoformat(),
                    "issued_at": iso(row.issued_at),
                    "payer": _mask_name(parsed.payer_name),
                    "total": _vnd(parsed.total),
                    "total_in_words": parsed.total_in_words or amount_in_words(parsed.total),
                    "lines": [
                        {"name": line.name, "amount": _vnd(line.amount)} for line in parsed.lines
                    ],
                    "status": row.status.value,
                    "xml_url": links["xml_url"],
                    "pdf_url": links["pdf_url"],
                }
                check = result_json(result, "")
                check["signing_time_display"] = _local_time_display(result.signing_time)
                receipt["trail"] = _trail(receipt_trail(session, row))
    if receipt is None:
        return render(
            request, "receipt_public.html", {"receipt": None, "check": None}, status_code=404
        )
    return render(request, "receipt_public.html", {"receipt": receipt, "check": check})
