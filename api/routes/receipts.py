"""Receipts: JSON, the signed XML legal original, and (issue 3) the PDF display copy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.presenters import receipt_links
from einvoice.errors import ReceiptNotFound
from einvoice.models import Receipt

router = APIRouter(prefix="/api/v1/receipts", tags=["receipts"])


def _get(session: Any, receipt_id: str) -> Receipt:
    receipt: Receipt | None = session.get(Receipt, receipt_id)
    if receipt is None:
        raise ReceiptNotFound(f"no receipt {receipt_id!r}")
    return receipt


@router.get("/{receipt_id}", summary="A receipt's data and links")
def read(receipt_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        receipt = _get(session, receipt_id)
        return {
            **receipt_links(receipt, settings.public_base_url),
            "object": "receipt",
            "payer_name": receipt.payer_name,
            "payment_method": receipt.payment_method,
            "payment_reference": receipt.payment_reference,
            "lines": receipt.lines,
            "status": "replaced" if receipt.replaced_by_id else "valid",
            "signer": receipt.signer_subject,
        }


@router.get(
    "/{receipt_id}/xml",
    summary="The signed XML legal original",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def xml(receipt_id: str, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        receipt = _get(session, receipt_id)
        body = receipt.xml
        name = f"bien-lai-{receipt.template}-{receipt.series}-{receipt.number:08d}.xml"
    return Response(
        body,
        media_type="application/xml",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )
