"""The citizen portal (issue 6): no account, phone first.

* ``/pay/{order_id}`` — what ``pay_url`` opens: the fee lines, the VietQR with every transfer
  field copyable, a page that turns paid by itself (it polls ``/pay/{order_id}/status``), and
  then the receipt's PDF and signed XML. The 128-bit order id is the only key, as it already
  was for the VietQR image; the page shows no personal data beyond the payer's masked name.
* ``/tra-cuu`` — find one's receipts by dossier code plus the last four digits of the payer's
  phone (or ID number when no phone was given). A wrong second factor gets exactly the same
  answer as an unknown dossier, and the form is rate limited per client IP, so it cannot be
  used to probe which dossiers exist or to guess the digits.
* ``/pay/{order_id}/claim`` — "Tôi đã chuyển khoản nhưng chưa được ghi nhận" (issue 19): the
  citizen states a transfer that did not match; ``payments.usecases.claims`` finds it, proposes
  the match, and every miss gets the same answer (docs/claims.md).
* ``/bang-phi/{agency}`` — the published fee catalogue, searchable, printable, with one QR
  code per procedure for counters to post on the wall.
* ``/`` — a small landing page linking the above and ``/verify``.

Card payments: there is no publishable-key setting, so the page cannot mount Stripe's Payment
Element (Stripe.js needs ``pk_...``). ``POST /pay/{order_id}/card`` creates the PaymentIntent
and returns its ``client_secret``; UNFINISHED: the browser side (Stripe.js from js.stripe.com
confirming that secret) is not wired, because no publishable key exists to test it with.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.downloads import document_response
from api.ratelimit import RateLimited, client_ip, rate_limit
from api.ratelimit import check as check_rate
from api.rendering import render, wants_page
from einvoice.models import Receipt
from payments.card_payments import gateway_from_settings, start_card_payment
from payments.claims import factor_matches, second_factor
from payments.errors import InvalidInput, NotFound, TariffInvalid, UnknownAgency
from payments.models import Agency, FeeItem, PaymentOrder, Procedure
from payments.orders import get_order
from payments.presenters import order_json, receipt_links
from payments.tariffs import describe, tariff_from_json, tariff_of
from payments.usecases.claims import citizen_view, parse_claim_form, submit_claim
from payments.usecases.follow_ups import run_after_commit
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
        claim_state = citizen_view(session, order_id)
    bin_ = order["vietqr"]["bank_bin"] if order["vietqr"] else None
    return render(
        request,
        "pay.html",
        {
            "order": order,
            "bank_name": BANK_NAMES.get(bin_ or ""),  # None: the page shows the BIN
            "poll_ms": POLL_MS,
            "claim_state": claim_state,
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


# --------------------------------------------------------------------------- transfer claim


def _claim_context(session: Session, order_id: str, base_url: str) -> dict[str, Any]:
    order = _public_order(session, get_order(session, order_id), base_url)
    return {"order": order, "claim_state": citizen_view(session, order_id)}


@router.get("/pay/{order_id}/claim", response_class=HTMLResponse)
def claim_form(
    order_id: str, request: Request, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    """The "Tôi đã chuyển khoản nhưng chưa được ghi nhận" form, or the last claim's state."""
    with unit_of_work(engine) as session:
        context = _claim_context(session, order_id, settings.public_base_url)
    return render(request, "portal_claim.html", {**context, "form": {}})


@router.post("/pay/{order_id}/claim")
def claim_submit(
    order_id: str,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    transfer_date: Annotated[str, Form(max_length=32)] = "",
    amount: Annotated[str, Form(max_length=32)] = "",
    bank: Annotated[str, Form(max_length=200)] = "",
    reference: Annotated[str, Form(max_length=128)] = "",
    last4: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Parse, call :func:`submit_claim`, then redirect to the claim's page (POST-redirect-GET):
    the answer is the same 303 whatever was found, and the page says only what is theirs."""
    check_rate(settings, "claim", request, settings.rate_limit_lookup_per_minute)
    with unit_of_work(engine) as session:
        agency_zone = get_order(session, order_id).agency.time_zone
    try:
        body = parse_claim_form(
            transfer_date=transfer_date,
            amount=amount,
            bank=bank,
            reference=reference,
            factor=last4,
            today=local_today(agency_zone),
        )
    except InvalidInput as problem:
        if not wants_page(request):
            raise  # scripts get the problem+json 422
        with unit_of_work(engine) as session:
            context = _claim_context(session, order_id, settings.public_base_url)
        form = {
            "transfer_date": transfer_date,
            "amount": amount,
            "bank": bank,
            "reference": reference,
        }
        return render(
            request,
            "portal_claim.html",
            {**context, "form": form, "error": problem.detail, "error_code": problem.code},
            status_code=422,
        )
    with unit_of_work(engine) as session:
        outcome = submit_claim(session, order_id, body, client_ip=client_ip(request))
    if outcome.rate_limited:
        raise RateLimited(
            "tối đa vài lần khai báo mỗi giờ / only a few claims an hour",
            extra={"retry_after": 3600},
        )
    run_after_commit(outcome.follow_ups)
    return RedirectResponse(f"/pay/{order_id}/claim", status_code=303)


# --------------------------------------------------------------------------- look-up


_second_factor = second_factor  # the rule lives in payments.claims (claims use it too)
_factor_matches = factor_matches


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
