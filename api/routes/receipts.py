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
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import ClientDep, EngineDep, SettingsDep, unit_of_work
from einvoice.document import Collector, FeeKind, Payer, ReceiptLine
from einvoice.errors import (
    ErrorNoticeNotFound,
    InvalidLifecycleInput,
    ReceiptCannotBeCancelled,
    ReceiptNotFound,
)
from einvoice.lifecycle import (
    MAX_NOTICE_RECEIPTS,
    REASON_MAX,
    REASON_MIN,
    ReceiptCorrection,
    create_error_notice,
    error_notices_for,
    original_content,
    replace_receipt,
)
from einvoice.models import ErrorNotice, ErrorNoticeItem, Receipt
from einvoice.pdf import receipt_pdf
from einvoice.receipt_xml import ParsedLine
from payments import idempotency
from payments.callbacks import enqueue_event
from payments.issuing import NoSigningKey
from payments.models import Agency, ApiClient, PaymentOrder
from payments.notify import notify_receipt
from payments.presenters import iso, receipt_links
from signing.keys import KeySource, load_key_source

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


def _link(session: Session, receipt_id: str | None, base: str) -> dict[str, Any] | None:
    if receipt_id is None:
        return None
    other = session.get(Receipt, receipt_id)
    if other is None:
        return {"id": receipt_id}
    links = receipt_links(other, base)
    return {k: links[k] for k in ("id", "template", "series", "number", "issued_at", "verify_url")}


def _notice_summary(notice: ErrorNotice, base: str) -> dict[str, Any]:
    return {
        "id": notice.id,
        "form": "04/SS-CTĐT",
        "status": notice.status,
        "created_at": iso(notice.created_at),
        "xml_url": f"{base}/api/v1/receipts/error-notices/{notice.id}/xml",
    }


def receipt_json(session: Session, receipt: Receipt, base_url: str) -> dict[str, Any]:
    """The receipt as ``GET /api/v1/receipts/{id}`` shows it, lifecycle links included."""
    base = base_url.rstrip("/")
    return {
        **receipt_links(receipt, base),
        "object": "receipt",
        "payer_name": receipt.payer_name,
        "payment_method": receipt.payment_method,
        "payment_reference": receipt.payment_reference,
        "lines": receipt.lines,
        "status": receipt.status.value,
        "replaced_by": _link(session, receipt.replaced_by_id, base),
        "replaces": _link(session, receipt.replaces_id, base),
        "error_notices": [_notice_summary(n, base) for n in error_notices_for(session, receipt.id)],
        "signer": receipt.signer_subject,
    }


def _notice_json(session: Session, notice: ErrorNotice, base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    ids = session.scalars(
        select(ErrorNoticeItem.receipt_id)
        .where(ErrorNoticeItem.notice_id == notice.id)
        .order_by(ErrorNoticeItem.position)
    )
    return {
        **_notice_summary(notice, base),
        "object": "error_notice",
        "reason": notice.reason,
        "actor": notice.actor,
        "status_changed_at": iso(notice.status_changed_at),
        "message_id": notice.message_id,
        "receipts": [_link(session, receipt_id, base) for receipt_id in ids],
    }


# --------------------------------------------------------------------------- helpers


def _get(session: Session, receipt_id: str, agency_id: str | None = None) -> Receipt:
    receipt: Receipt | None = session.get(Receipt, receipt_id)
    if receipt is None or (agency_id is not None and receipt.agency_id != agency_id):
        raise ReceiptNotFound(f"no receipt {receipt_id!r}")
    return receipt


def _agency_key(session: Session, agency_id: str) -> tuple[Agency, Collector, KeySource]:
    agency = session.get(Agency, agency_id)
    if agency is None:  # pragma: no cover - a client always has its agency
        raise ReceiptNotFound(f"no agency {agency_id!r}")
    if not agency.signing_key_ref:
        raise NoSigningKey(f"agency {agency.code} has no signing key; run keys dev-init")
    collector = Collector(
        name=agency.name,
        tax_code=agency.tax_code,
        address=agency.address,
        time_zone=agency.time_zone,
    )
    return agency, collector, load_key_source(agency.signing_key_ref)


def _corrected_lines(
    original: tuple[ParsedLine, ...], lines: list[LineCorrectionIn]
) -> tuple[ReceiptLine, ...]:
    by_code = {line.fee_code: line for line in original}
    result: list[ReceiptLine] = []
    for given in lines:
        base = by_code.get(given.fee_code)
        name = given.name or (base.name if base else None)
        kind = given.kind or (base.kind.value if base else None)
        unit_price = given.unit_price
        if unit_price is None and base is not None:
            unit_price = base.unit_price
        if name is None or kind is None or unit_price is None:
            raise InvalidLifecycleInput(
                f"line {given.fee_code!r} is not on the original receipt: "
                "give its name, kind and unit_price",
                extra={"field": "lines"},
            )
        quantity = given.quantity or (base.quantity if base else 1)
        if given.amount is not None:
            amount = given.amount
        elif base is not None and (quantity, unit_price) == (base.quantity, base.unit_price):
            amount = base.amount
        else:
            amount = quantity * unit_price
        fields = given.model_fields_set
        result.append(
            ReceiptLine(
                fee_code=given.fee_code,
                name=name,
                kind=FeeKind(kind),
                quantity=quantity,
                unit_price=unit_price,
                amount=amount,
                unit=given.unit if "unit" in fields else (base.unit if base else None),
                exemption=(
                    given.exemption if "exemption" in fields else (base.exemption if base else None)
                ),
            )
        )
    return tuple(result)


def _notify_replaced(
    session: Session, client: ApiClient, replacement: Receipt, base_url: str
) -> None:
    """Tell the one-stop system (contract: event ``receipt.replaced``), in this transaction.

    The order that paid is found through the chain of replacements back to the first receipt
    (the order keeps pointing at it); its callback URL is used, as for ``receipt.issued``.
    """
    root = replacement
    seen = {root.id}
    while root.replaces_id is not None and root.replaces_id not in seen:
        previous = session.get(Receipt, root.replaces_id)
        if previous is None:
            break
        root = previous
        seen.add(root.id)
    order = session.scalar(select(PaymentOrder).where(PaymentOrder.receipt_id == root.id))
    if order is not None:
        notify_receipt(order, replacement, "receipt.replaced")
        return
    enqueue_event(
        session,
        client_id=client.id,
        url=client.callback_url,
        event="receipt.replaced",
        data=receipt_json(session, replacement, base_url),
        occurred_at=replacement.issued_at,
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
        _agency, collector, key = _agency_key(session, client.agency_id)
        notice = create_error_notice(
            session,
            body.receipt_ids,
            body.reason,
            body.actor,
            key,
            collector=collector,
            tax_authority_name=body.tax_authority_name,
            tax_authority_code=body.tax_authority_code,
            place=body.place,
            agency_id=client.agency_id,
            source_key=source_key,
            allow_development_certificate=settings.dev_certificates_allowed,
        )
        payload = _notice_json(session, notice, settings.public_base_url)
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
        return _notice_json(
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
        return receipt_json(session, _get(session, receipt_id), settings.public_base_url)


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


@router.get(
    "/{receipt_id}/pdf",
    summary="The signed PDF display copy (rendered on first request, then cached)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def pdf(receipt_id: str, engine: EngineDep, settings: SettingsDep) -> Response:
    with unit_of_work(engine) as session:
        receipt = _get(session, receipt_id)
        agency, _, key = _agency_key(session, receipt.agency_id)
        body = receipt_pdf(
            session,
            receipt,
            key,
            base_url=settings.public_base_url,
            zone=ZoneInfo(agency.time_zone),
        )
        name = f"bien-lai-{receipt.template}-{receipt.series}-{receipt.number:08d}.pdf"
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


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
        original = _get(session, receipt_id, client.agency_id)
        agency, collector, key = _agency_key(session, client.agency_id)
        parsed = original_content(original)
        payer: Payer | None = None
        if body.payer is not None:
            given = body.payer.model_fields_set
            payer = Payer(
                name=body.payer.name or parsed.payer_name,
                address=body.payer.address if "address" in given else parsed.payer_address,
                id_number=body.payer.id_number if "id_number" in given else parsed.payer_id_number,
            )
        lines = _corrected_lines(parsed.lines, body.lines) if body.lines is not None else None
        replacement = replace_receipt(
            session,
            original.id,
            ReceiptCorrection(payer=payer, lines=lines),
            body.reason,
            body.actor,
            key,
            collector=collector,
            series=agency.receipt_series,
            verify_url_base=settings.public_base_url,
            allow_development_certificate=settings.dev_certificates_allowed,
            agency_id=client.agency_id,
        )
        payload = receipt_json(session, replacement, settings.public_base_url)
        _notify_replaced(session, client, replacement, settings.public_base_url)
    return JSONResponse(payload, status_code=201)


@router.post(
    "/{receipt_id}/cancel",
    summary="Refused: receipts cannot be cancelled (Circular 91/2026 art. 20)",
    responses={409: {"description": "Always: receipt_cannot_be_cancelled"}},
)
def cancel(receipt_id: str, client: ClientDep, engine: EngineDep) -> None:
    with unit_of_work(engine) as session:
        _get(session, receipt_id, client.agency_id)
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
