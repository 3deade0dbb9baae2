"""The citizen portal (issue 6): no account, phone first.

* ``/pay/{order_id}`` — what ``pay_url`` opens: the fee lines, the VietQR with every transfer
  field copyable, a page that turns paid by itself (it polls ``/pay/{order_id}/status``), and
  then the receipt's PDF and signed XML. The 128-bit order id is the only key, as it already
  was for the VietQR image; the page shows no personal data beyond the payer's masked name.
* ``/tra-cuu`` — find one's receipts by dossier code plus the last four digits of the payer's
  phone (or ID number when no phone was given). A wrong second factor gets exactly the same
  answer as an unknown dossier, and the form is rate limited per client IP, so it cannot be
  used to probe which dossiers exist or to guess the digits.
* ``/bang-phi/{agency}`` — the published fee catalogue, searchable, printable, with one QR
  code per procedure for counters to post on the wall.
* ``/`` — a small landing page linking the above and ``/verify``.

Card payments: there is no publishable-key setting, so the page cannot mount Stripe's Payment
Element (Stripe.js needs ``pk_...``). ``POST /pay/{order_id}/card`` creates the PaymentIntent
and returns its ``client_secret``; UNFINISHED: the browser side (Stripe.js from js.stripe.com
confirming that secret) is not wired, because no publishable key exists to test it with.
"""

from __future__ import annotations

import hmac
import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.downloads import document_response
from api.ratelimit import rate_limit
from api.rendering import render
from einvoice.models import Receipt
from payments.card_payments import gateway_from_settings, start_card_payment
from payments.errors import NotFound, TariffInvalid, UnknownAgency
from payments.models import Agency, FeeItem, PaymentOrder, Procedure
from payments.orders import get_order
from payments.presenters import order_json, receipt_links
from payments.tariffs import describe, tariff_from_json, tariff_of
from payments.usecases.receipts import display_copy, display_copy_name, receipt_chain
from payments.vietqr import BANK_NAMES
from settings.clock import local_today
from settings.db import utcnow

__all__ = ["router"]

router = APIRouter(tags=["pages"], include_in_schema=False)


MAX_LOOKUP_ORDERS = 50
POLL_MS = 2000
_FACTOR_RE = re.compile(r"^[0-9A-Za-z]{4}$")


# --------------------------------------------------------------------------- helpers


def _mask_name(name: str | None) -> str:
    """``Nguyễn Văn An`` → ``Nguyễn V. A.``: enough to recognise one's order, not to profile."""
    words = (name or "").split()
    if len(words) <= 1:
        return name or ""
    return " ".join([words[0], *(f"{w[0]}." for w in words[1:])])


def fold(text: str) -> str:
    """Case- and accent-insensitive form for search: ``Chứng thực`` and ``chung thuc`` match."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def current_receipt(session: Session, receipt_id: str | None) -> Receipt | None:
    """The receipt in force for an order: its own, or the last replacement of it."""
    chain = receipt_chain(session, receipt_id)
    return chain[-1] if chain else None


def _downloads(order_id: str) -> dict[str, str]:
    return {"pdf": f"/pay/{order_id}/bien-lai.pdf", "xml": f"/pay/{order_id}/bien-lai.xml"}


def _public_order(session: Session, order: PaymentOrder, base_url: str) -> dict[str, Any]:
    """The order as a citizen may see it: no callback URL, the payer reduced to a masked name."""
    receipt = current_receipt(session, order.receipt_id)
    data = order_json(order, receipt, base_url)
    data.pop("callback_url", None)
    data.pop("receipt_error", None)
    data["payer"] = {"name": _mask_name(order.payer.get("name"))}
    data["downloads"] = _downloads(order.id) if receipt is not None else None
    data["overdue"] = order.status == "pending" and order.expires_at < utcnow()
    for shown, line in zip(data["lines"], order.lines, strict=True):
        shown["tariff_words"] = _tariff_words(line.pricing)
    return data


def _tariff_words(pricing: dict[str, Any] | None) -> dict[str, str] | None:
    """The tariff the line was priced by, in words (as frozen on the line; ``None`` on lines
    priced before issue 14, whose fee name and unit price say it)."""
    if pricing is None or "tariff" not in pricing:
        return None
    try:
        tariff = tariff_from_json(pricing["tariff"])
    except TariffInvalid:
        return None
    return {"vi": describe(tariff, "vi"), "en": describe(tariff, "en")}


# --------------------------------------------------------------------------- home


@router.get("/", response_class=HTMLResponse)
def home(request: Request, engine: EngineDep) -> HTMLResponse:
    with unit_of_work(engine) as session:
        agencies = [
            {"code": a.code, "name": a.name}
            for a in session.scalars(select(Agency).order_by(Agency.name).limit(200))
        ]
    return render(request, "portal_home.html", {"agencies": agencies})


# --------------------------------------------------------------------------- pay page


@router.get("/pay/{order_id}", response_class=HTMLResponse)
def pay_page(
    order_id: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    with unit_of_work(engine) as session:
        order = _public_order(session, get_order(session, order_id), settings.public_base_url)
    bin_ = order["vietqr"]["bank_bin"] if order["vietqr"] else None
    return render(
        request,
        "pay.html",
        {
            "order": order,
            "bank_name": BANK_NAMES.get(bin_ or ""),  # None: the page shows the BIN
            "poll_ms": POLL_MS,
        },
    )


@router.get("/pay/{order_id}/status")
def pay_status(order_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    """What the payment page polls; the same public view as the page itself."""
    with unit_of_work(engine) as session:
        order = _public_order(session, get_order(session, order_id), settings.public_base_url)
    return {
        "status": order["status"],
        "paid_at": order["paid_at"],
        "receipt": order["receipt"],
        "downloads": order["downloads"],
    }


@router.post("/pay/{order_id}/card")
def pay_card(order_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    """Starts (or reuses) the order's card PaymentIntent; the client secret is for Stripe.js.

    404 ``card_not_configured`` when the agency has no card gateway. The secret only lets a
    browser confirm this one payment of this amount, which is why it may be public.
    """
    gateway = gateway_from_settings(settings)
    with unit_of_work(engine) as session:
        intent = start_card_payment(gateway, get_order(session, order_id))
    return {
        "payment_intent": intent.id,
        "client_secret": intent.client_secret,
        "amount": intent.amount,
        "currency": intent.currency,
    }


def _order_receipt(session: Session, order_id: str) -> Receipt:
    receipt = current_receipt(session, get_order(session, order_id).receipt_id)
    if receipt is None:
        raise NotFound(
            f"order {order_id} has no receipt yet / chưa có biên lai", code="receipt_not_found"
        )
    return receipt


@router.get("/pay/{order_id}/bien-lai.pdf")
def pay_receipt_pdf(order_id: str, engine: EngineDep, settings: SettingsDep) -> Response:
    """The receipt's PDF display copy, downloadable by whoever holds the order's link."""
    with unit_of_work(engine) as session:
        receipt = _order_receipt(session, order_id)
        body = display_copy(session, settings, receipt)
        name = display_copy_name(receipt, "pdf")
    return document_response(body, "application/pdf", name, download=True, private=True)


@router.get("/pay/{order_id}/bien-lai.xml")
def pay_receipt_xml(order_id: str, engine: EngineDep) -> Response:
    """The signed XML legal original of the order's receipt."""
    with unit_of_work(engine) as session:
        receipt = _order_receipt(session, order_id)
        body, name = receipt.xml, display_copy_name(receipt, "xml")
    return document_response(body, "application/xml", name, download=True, private=True)


# --------------------------------------------------------------------------- look-up


def _second_factor(payer: dict[str, Any]) -> str | None:
    """Last four digits of the phone, or of the ID number when there is no phone."""
    phone = re.sub(r"\D", "", str(payer.get("phone") or ""))
    if phone:
        return phone[-4:] if len(phone) >= 4 else None
    id_number = re.sub(r"[^0-9A-Za-z]", "", str(payer.get("id_number") or ""))
    return id_number[-4:].upper() if len(id_number) >= 4 else None


def _factor_matches(payer: dict[str, Any], given: str) -> bool:
    expected = _second_factor(payer)
    # Constant time, so response timing does not tell how many digits were right.
    return expected is not None and hmac.compare_digest(expected, given.upper())


def _receipt_row(receipt: Receipt) -> dict[str, Any]:
    links = receipt_links(receipt, "")
    return {
        "number": receipt.number,
        "template": receipt.template,
        "series": receipt.series,
        "issued_at": receipt.issued_at,
        "total": receipt.total,
        "status": links["status"],
        "pdf_url": links["pdf_url"],
        "xml_url": links["xml_url"],
        "verify_url": links["verify_url"],
    }


def lookup_orders(session: Session, dossier_code: str, factor: str) -> list[dict[str, Any]]:
    """The dossier's orders whose payer matches ``factor``; empty for any kind of miss."""
    rows = session.scalars(
        select(PaymentOrder)
        .where(PaymentOrder.dossier_code == dossier_code)
        .order_by(PaymentOrder.created_at.desc())
        .limit(MAX_LOOKUP_ORDERS)
    ).all()
    found: list[dict[str, Any]] = []
    for order in rows:
        if not _factor_matches(order.payer or {}, factor):
            continue
        receipts = [_receipt_row(r) for r in receipt_chain(session, order.receipt_id)]
        found.append(
            {
                "id": order.id,
                "agency": order.agency.name,
                "dossier_code": order.dossier_code,
                "procedure_name": order.procedure_name,
                "procedure_code": order.procedure_code,
                "amount": order.amount,
                "status": order.status,
                "created_at": order.created_at,
                "paid_at": order.paid_at,
                "payer": _mask_name(order.payer.get("name")),
                "receipts": receipts,
            }
        )
    return found


@router.get("/tra-cuu", response_class=HTMLResponse)
def lookup_form(request: Request) -> HTMLResponse:
    return render(request, "portal_lookup.html", {"searched": False, "dossier_code": ""})


@router.post(
    "/tra-cuu",
    response_class=HTMLResponse,
    dependencies=[Depends(rate_limit("lookup", "rate_limit_lookup_per_minute"))],
)
def lookup(
    request: Request,
    engine: EngineDep,
    dossier_code: Annotated[str, Form(max_length=64)] = "",
    last4: Annotated[str, Form(max_length=16)] = "",
) -> HTMLResponse:
    """POST, so the digits stay out of URLs, history and access logs."""
    dossier_code = dossier_code.strip()
    last4 = last4.strip()
    if not dossier_code or not _FACTOR_RE.fullmatch(last4):
        return render(
            request,
            "portal_lookup.html",
            {"searched": False, "dossier_code": dossier_code, "invalid": True},
            status_code=422,
        )
    with unit_of_work(engine) as session:
        orders = lookup_orders(session, dossier_code, last4)
    return render(
        request,
        "portal_lookup.html",
        {"searched": True, "dossier_code": dossier_code, "orders": orders},
    )


# --------------------------------------------------------------------------- fee catalogue


@dataclass(frozen=True)
class FeeRow:
    code: str
    kind: str
    name: str
    amount: int
    unit: str | None
    max_amount: int | None
    legal_basis: str
    effective_from: date
    effective_to: date | None
    upcoming: bool
    words_vi: str = ""
    """The tariff in words (:func:`payments.tariffs.describe`), as the law writes it."""
    words_en: str = ""


@dataclass
class ProcedureRow:
    code: str
    name: str
    field: str
    url: str
    fees: list[FeeRow]

    @property
    def search_text(self) -> str:
        return fold(f"{self.code} {self.name} {self.field}")


def _agency(session: Session, code: str) -> Agency:
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise UnknownAgency(f"no agency {code!r} / không có đơn vị {code!r}")
    return agency


def procedure_path(agency_code: str, procedure_code: str) -> str:
    return f"/bang-phi/{quote(agency_code, safe='')}/{quote(procedure_code, safe='')}"


def catalogue(
    session: Session, agency: Agency, *, today: date, procedure_code: str | None = None
) -> list[ProcedureRow]:
    """Fees in force today and announced ones (later ``effective_from``); past prices omitted."""
    query = (
        select(FeeItem)
        .join(Procedure, FeeItem.procedure_id == Procedure.id)
        .where(Procedure.agency_id == agency.id)
        .where((FeeItem.effective_to.is_(None)) | (FeeItem.effective_to > today))
        .order_by(Procedure.field, Procedure.code, FeeItem.code, FeeItem.effective_from)
    )
    if procedure_code is not None:
        query = query.where(Procedure.code == procedure_code)
    procedures: dict[str, ProcedureRow] = {}
    for item in session.scalars(query):
        proc = item.procedure
        row = procedures.get(proc.id)
        if row is None:
            row = procedures[proc.id] = ProcedureRow(
                proc.code, proc.name, proc.field, procedure_path(agency.code, proc.code), []
            )
        row.fees.append(
            FeeRow(
                item.code,
                item.kind,
                item.name,
                item.amount,
                item.unit,
                item.max_amount,
                item.legal_basis,
                item.effective_from,
                item.effective_to,
                item.effective_from > today,
                *_words(item),
            )
        )
    return list(procedures.values())


def _words(item: FeeItem) -> tuple[str, str]:
    try:
        tariff = tariff_of(item)
    except TariffInvalid:  # never stored so (checked on import); the figures still show
        return "", ""
    return describe(tariff, "vi"), describe(tariff, "en")


def _today(agency: Agency) -> date:
    return local_today(agency.time_zone)


@router.get("/bang-phi/{agency_code}", response_class=HTMLResponse)
def fee_catalogue(
    agency_code: str, request: Request, engine: EngineDep, q: str = ""
) -> HTMLResponse:
    q = q.strip()[:100]
    with unit_of_work(engine) as session:
        agency = _agency(session, agency_code)
        rows = catalogue(session, agency, today=_today(agency))
        info = {"code": agency.code, "name": agency.name, "address": agency.address}
    total = len(rows)
    if q:
        needle = fold(q)
        rows = [r for r in rows if needle in r.search_text]
    return render(
        request,
        "portal_catalog.html",
        {"agency": info, "procedures": rows, "q": q, "total": total},
    )


@router.get("/bang-phi/{agency_code}/{procedure_code}", response_class=HTMLResponse)
def fee_procedure(
    agency_code: str, procedure_code: str, request: Request, engine: EngineDep
) -> HTMLResponse:
    with unit_of_work(engine) as session:
        agency = _agency(session, agency_code)
        rows = catalogue(session, agency, today=_today(agency), procedure_code=procedure_code)
        info = {"code": agency.code, "name": agency.name, "address": agency.address}
    if not rows:
        raise NotFound(
            f"no procedure {procedure_code!r} in the catalogue of {agency_code}",
            code="unknown_procedure",
        )
    return render(request, "portal_procedure.html", {"agency": info, "procedure": rows[0]})


@router.get("/bang-phi/{agency_code}/{procedure_code}/qr.png")
def fee_procedure_qr(
    agency_code: str, procedure_code: str, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The QR a counter prints next to the procedure: it opens the procedure's fee page."""
    with unit_of_work(engine) as session:
        agency = _agency(session, agency_code)
        exists = session.scalar(
            select(Procedure.id).where(
                Procedure.agency_id == agency.id, Procedure.code == procedure_code
            )
        )
    if exists is None:
        raise NotFound(f"no procedure {procedure_code!r}", code="unknown_procedure")
    url = settings.public_base_url.rstrip("/") + procedure_path(agency_code, procedure_code)
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=6, border=4)
    return Response(
        buffer.getvalue(),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=3600"},
    )
