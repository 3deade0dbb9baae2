"""Receipts: JSON, the signed XML legal original, and their lifecycle (replacement, 04/SS-CTĐT).

Circular 91/2026/TT-BTC art. 20 allows two corrections and no cancellation, so the API has
``POST /{id}/replace`` and ``POST /error-notices``, and answers every attempt to cancel or
delete a receipt with 409 ``receipt_cannot_be_cancelled`` saying what to do instead.

Staff actions authenticate, for now, with the one-stop client's Bearer key and are restricted to
that client's agency; ``actor`` (the staff member) is recorded from the body until issue 6 adds
staff accounts and roles. The PDF display copy (``/{id}/pdf``) lives elsewhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.orm import Session

from api.deps import ClientDep, EngineDep, SettingsDep, unit_of_work
from api.downloads import document_response
from einvoice.errors import ErrorNoticeNotFound, ReceiptCannotBeCancelled
from einvoice.lifecycle import MAX_NOTICE_RECEIPTS, REASON_MAX, REASON_MIN
from einvoice.models import ErrorNotice
from payments import idempotency
from payments.presenters import notice_json, receipt_json
from payments.usecases.receipts import (
    KEEP,
    LineCorrection,
    ReplaceReceipt,
    SendErrorNotice,
    agency_receipt,
    display_copy,
    display_copy_name,
    send_error_notice,
)
from payments.usecases.receipts import replace as replace_receipt

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/receipts", tags=["receipts"])

_ACTOR = Field(min_length=1, max_length=255, description="The staff member acting (recorded)")
_REASON = Field(
    min_length=REASON_MIN, max_length=REASON_MAX, description="Why (recorded; 5–500 characters)"
)


class PayerCorrectionIn(BaseModel):
    """The payer as the replacement must print it; omitted fields keep the original's."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=255)
    address: str | None = Field(default=None, max_length=400)
    id_number: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{6,20}$")


class LineCorrectionIn(BaseModel):
    """One fee line of the replacement. Omitted fields are taken from the original's line with
    the same ``fee_code``; ``amount`` defaults to the original's when quantity and unit price
    are unchanged, else to quantity × unit price."""

    model_config = ConfigDict(extra="forbid")
    fee_code: str = Field(min_length=1, max_length=50)
    name: str | None = Field(default=None, min_length=1, max_length=400)
    kind: Literal["phi", "le_phi"] | None = None
    quantity: StrictInt | None = Field(default=None, ge=1, le=100_000)
    unit_price: StrictInt | None = Field(default=None, ge=0, lt=10**13)
    amount: StrictInt | None = Field(default=None, ge=0, lt=10**13)
    unit: str | None = Field(default=None, max_length=50)
    exemption: str | None = Field(default=None, max_length=400)


class ReplaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = _REASON
    actor: str = _ACTOR
    payer: PayerCorrectionIn | None = None
    lines: list[LineCorrectionIn] | None = Field(default=None, min_length=1, max_length=100)


class ErrorNoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt_ids: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        min_length=1, max_length=MAX_NOTICE_RECEIPTS
    )
    reason: str = _REASON
    actor: str = _ACTOR
    tax_authority_name: str = Field(
        min_length=3, max_length=400, description="The tax office notified (TCQT)"
    )
    tax_authority_code: str | None = Field(default=None, max_length=50)
    place: str | None = Field(
        default=None, max_length=100, description="Địa danh; default: the last part of the address"
    )


# --------------------------------------------------------------------------- presenters


def _line(given: LineCorrectionIn) -> LineCorrection:
    fields = given.model_fields_set
    return LineCorrection(
        fee_code=given.fee_code,
        name=given.name,
        kind=given.kind,
        quantity=given.quantity,
        unit_price=given.unit_price,
        amount=given.amount,
        unit=given.unit if "unit" in fields else KEEP,
        exemption=given.exemption if "exemption" in fields else KEEP,
    )


# --------------------------------------------------------------------------- error notices
# (declared before "/{receipt_id}" so that "error-notices" is never read as a receipt id)


@router.post(
    "/error-notices",
    status_code=201,
    summary="Notify the tax office of receipt errors (form 04/SS-CTĐT); no reissue",
)
def create_notice(
    body: ErrorNoticeIn,
    client: ClientDep,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """For an error in the payer's name or address or in the amount in words only (art. 20).

    The notice is signed with the agency's certificate and queued for the tax authority.
    ``Idempotency-Key`` (optional): the same key and body return the same notice.
    """
    source_key = None
    if idempotency_key is not None:
        source_key = f"notice:{client.id}:{idempotency.check_key(idempotency_key)}"
    with unit_of_work(engine) as session:
        notice = send_error_notice(
            session,
            settings,
            SendErrorNotice(
                receipt_ids=tuple(body.receipt_ids),
                agency_id=client.agency_id,
                reason=body.reason,
                actor=body.actor,
                tax_authority_name=body.tax_authority_name,
                tax_authority_code=body.tax_authority_code,
                place=body.place,
                source_key=source_key,
            ),
        )
        payload = notice_json(session, notice, settings.public_base_url)
    return JSONResponse(payload, status_code=201)


def _get_notice(session: Session, notice_id: str, agency_id: str) -> ErrorNotice:
    notice = session.get(ErrorNotice, notice_id)
    if notice is None or notice.agency_id != agency_id:
        raise ErrorNoticeNotFound(f"no error notice {notice_id!r}")
    return notice


@router.get("/error-notices/{notice_id}", summary="An error notice and its outbox status")
def read_notice(
    notice_id: str, client: ClientDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        return notice_json(
            session, _get_notice(session, notice_id, client.agency_id), settings.public_base_url
        )


@router.get(
    "/error-notices/{notice_id}/xml",
    summary="The signed 04/SS-CTĐT XML",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def notice_xml(notice_id: str, client: ClientDep, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        body = _get_notice(session, notice_id, client.agency_id).xml
    return Response(
        body,
        media_type="application/xml",
        headers={"Content-Disposition": f'inline; filename="04-ss-ctdt-{notice_id}.xml"'},
    )


# --------------------------------------------------------------------------- receipts


@router.get("/{receipt_id}", summary="A receipt's data, status and lifecycle links")
def read(receipt_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        return receipt_json(
            session, agency_receipt(session, receipt_id, None), settings.public_base_url
        )


@router.get(
    "/{receipt_id}/xml",
    summary="The signed XML legal original",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def xml(receipt_id: str, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        receipt = agency_receipt(session, receipt_id, None)
        body = receipt.xml
        name = display_copy_name(receipt, "xml")
    return document_response(body, "application/xml", name)


@router.get(
    "/{receipt_id}/pdf",
    summary="The signed PDF display copy (rendered on first request, then cached)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def pdf(receipt_id: str, engine: EngineDep, settings: SettingsDep) -> Response:
    with unit_of_work(engine) as session:
        receipt = agency_receipt(session, receipt_id, None)
        body = display_copy(session, settings, receipt)
        name = display_copy_name(receipt, "pdf")
    return document_response(body, "application/pdf", name)


@router.post(
    "/{receipt_id}/replace",
    status_code=201,
    summary="Issue a replacement receipt (Circular 91/2026 art. 20); the original stays signed",
)
def replace(
    receipt_id: str,
    body: ReplaceIn,
    client: ClientDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> JSONResponse:
    """For an error in the amount, the tax code or anything else printed other than the payer's
    name or address (those go in an error notice). A receipt is replaced once: replace the
    replacement for a further error. Repeating the call answers 409 ``receipt_already_replaced``
    with the replacement's id."""
    with unit_of_work(engine) as session:
        replacement = replace_receipt(
            session,
            settings,
            ReplaceReceipt(
                receipt_id=receipt_id,
                agency_id=client.agency_id,
                reason=body.reason,
                actor=body.actor,
                payer=(
                    body.payer.model_dump(include=body.payer.model_fields_set)
                    if body.payer is not None
                    else None
                ),
                lines=tuple(_line(line) for line in body.lines) if body.lines is not None else None,
                client=client,
            ),
        )
        payload = receipt_json(session, replacement, settings.public_base_url)
    return JSONResponse(payload, status_code=201)


@router.post(
    "/{receipt_id}/cancel",
    summary="Refused: receipts cannot be cancelled (Circular 91/2026 art. 20)",
    responses={409: {"description": "Always: receipt_cannot_be_cancelled"}},
)
def cancel(receipt_id: str, client: ClientDep, engine: EngineDep) -> None:
    with unit_of_work(engine) as session:
        agency_receipt(session, receipt_id, client.agency_id)
    raise ReceiptCannotBeCancelled(
        f"receipt {receipt_id} cannot be cancelled: there is no cancellation of e-receipts under "
        "Circular 91/2026/TT-BTC art. 20; use POST /api/v1/receipts/{id}/replace or "
        "POST /api/v1/receipts/error-notices"
    )


@router.delete(
    "/{receipt_id}",
    summary="Refused: receipts are never deleted (Circular 91/2026 art. 20)",
    responses={409: {"description": "Always: receipt_cannot_be_cancelled"}},
)
def delete(receipt_id: str, client: ClientDep, engine: EngineDep) -> None:
    cancel(receipt_id, client, engine)
