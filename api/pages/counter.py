"""Pages: the counter screen (issue 6 item 2) for the one-stop clerk (role ``clerk``).

The clerk creates an order for a dossier from the agency's published catalogue, shows its
VietQR (large, and on a second screen facing the citizen), watches the transfer arrive without
reloading, or takes cash and prints the signed receipt at once. Receipt errors go the two
lawful ways (replacement or error notice 04/SS-CTĐT), always with a recorded reason. The till
page totals what the clerk took today, on the agency's local business day.

Every route is scoped to the signed-in clerk's agency: another agency's order or receipt is
answered 404, exactly like a missing one, so ids cannot be probed. The pages call the same
service functions as the API (``payments.orders``, ``payments.cash``, ``einvoice.lifecycle``);
no money rule lives here.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.downloads import document_response
from api.pages.web import page_staff, page_staff_csrf
from api.rendering import render, vnd
from api.schemas import PaymentOrderIn
from api.staff.deps import ClockDep, StaffContext
from einvoice.lifecycle import REASON_MAX, REASON_MIN, error_notices_for, original_content
from einvoice.models import ErrorNotice, Receipt
from payments import idempotency
from payments.errors import InvalidInput
from payments.models import Agency, FeeItem, PaymentOrder, Procedure
from payments.order_draft import FeeRequest, FeeSpec, OrderRequest, price_fee
from payments.orders import get_order
from payments.presenters import mask, order_json
from payments.states import OrderStatus
from payments.tariffs import Priced, Tariff, TariffKind, describe, tariff_of
from payments.usecases.follow_ups import run_after_commit
from payments.usecases.orders import (
    Answer,
    TakeCash,
    issue_at_once,
    place_order,
    run_once,
)
from payments.usecases.orders import cancel as cancel_order
from payments.usecases.orders import take_cash as record_cash_taken
from payments.usecases.receipts import (
    LineCorrection,
    ReplaceReceipt,
    SendErrorNotice,
    agency_receipt,
    display_copy,
    display_copy_name,
    order_of_receipt,
    receipt_chain,
    send_error_notice,
)
from payments.usecases.receipts import replace as replace_receipt
from payments.vietqr import bank_name
from reconciliation.day import BusinessDay
from settings.clock import local_today
from settings.config import Settings
from settings.errors import ProblemError

__all__ = ["router"]

router = APIRouter(prefix="/staff/counter", tags=["pages"], include_in_schema=False)

Clerk = Annotated[StaffContext, Depends(page_staff("clerk"))]
ClerkPost = Annotated[StaffContext, Depends(page_staff_csrf("clerk"))]

CREATE_SCOPE = "counter.create_order"
"""Scope of the one-time form tokens in ``idempotency_records`` (client_id = the staff id):
distinct from every API scope, so a staff id can never collide with an API client's keys."""
MAX_LINES = 50
RECENT_ORDERS = 30
POLL_MS = 1500


STATUS_LABELS = {
    "pending": ("Chờ thanh toán", "Awaiting payment", "badge-warn"),
    "succeeded": ("Đã thanh toán", "Paid", "badge-ok"),
    "cancelled": ("Đã hủy", "Cancelled", "badge-bad"),
    "expired": ("Đã hết hạn", "Expired", "badge-bad"),
    "failed": ("Không thành công", "Failed", "badge-bad"),
}
METHOD_LABELS = {
    "cash": ("Tiền mặt", "Cash"),
    "transfer": ("Chuyển khoản", "Bank transfer"),
    "card": ("Thẻ", "Card"),
    "exempt": ("Miễn toàn bộ", "Fully exempt"),
}


class OrderFormInvalid(ProblemError):
    """A new-order form the service would refuse; the form is shown again with the reasons."""

    code = "invalid_input"
    status = 422
    title_vi = "Thông tin chưa hợp lệ"
    title_en = "Some fields are not valid"


# --------------------------------------------------------------------------- small helpers


def _ids_mask(value: Any) -> str | None:
    """ID numbers and phones on counter pages show only their last 3 characters."""
    return mask(str(value), keep=3) if value else None


def _email_mask(value: Any) -> str | None:
    if not value or "@" not in str(value):
        return None
    local, _, domain = str(value).partition("@")
    return f"{local[:1]}***@{domain}"


def _bank_name(bin_code: str) -> str:
    return bank_name(bin_code)


def _receipt_label(receipt: Receipt) -> str:
    """How the counter reads a receipt number: template, series and the number as stored."""
    return f"{receipt.template} · {receipt.series} · {receipt.number}"


def _agency(session: Session, staff: StaffContext) -> Agency:
    agency = session.get(Agency, staff.agency_id)
    if agency is None:  # pragma: no cover - a staff account always has its agency
        raise ProblemError("no agency", code="not_found", status=404)
    return agency


def _receipt(session: Session, staff: StaffContext, receipt_id: str) -> Receipt:
    return agency_receipt(session, receipt_id, staff.agency_id)


def _order(
    session: Session, staff: StaffContext, order_id: str, *, lock: bool = False
) -> PaymentOrder:
    """The order if it is this clerk's agency's; 404 (``order_not_found``) otherwise."""
    return get_order(session, order_id, agency_id=staff.agency_id, lock=lock)


def _redirect(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def _text(form: Any, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class FeeChoice:
    """A fee line offered on the form, with what the clerk typed into it so far."""

    index: int
    code: str
    name: str
    kind: str
    unit: str | None
    unit_price: int
    max_amount: int | None
    legal_basis: str
    quantity: int
    tariff: Tariff
    exempt: bool = False
    exempt_category: str = ""
    exempt_basis: str = ""
    copies: int = 1
    declared_value: int | None = None
    reduction: str = ""
    priced: Priced | None = None
    """The line priced by :func:`payments.order_draft.price_fee`, the arithmetic of the order
    itself (``None``: left out, or the input does not fit the tariff: see ``error``)."""
    error: str | None = None

    @property
    def amount(self) -> int:
        """The preview of the line: the same pricing as the order, 0 if exempt or left out.

        Only a preview: the order's amount is always recomputed by the service.
        """
        if self.exempt or self.priced is None:
            return 0
        return self.priced.amount

    @property
    def per_copy(self) -> bool:
        return self.tariff.kind is TariffKind.COPY

    @property
    def by_value(self) -> bool:
        return self.tariff.kind is TariffKind.VALUE

    def words(self, lang: str) -> str:
        """The tariff in words (:func:`payments.tariffs.describe`)."""
        return describe(self.tariff, lang)

    def breakdown(self, lang: str) -> str | None:
        """How the amount is reached, when it says more than quantity × unit price."""
        if self.exempt or self.priced is None or self.priced.simple:
            return None
        return self.priced.text_en if lang == "en" else self.priced.text_vi


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _procedures(session: Session, agency_id: str) -> list[Procedure]:
    return list(
        session.scalars(
            select(Procedure).where(Procedure.agency_id == agency_id).order_by(Procedure.code)
        )
    )


def _find_procedure(
    session: Session, agency_id: str, text: str
) -> tuple[Procedure | None, list[Procedure]]:
    """A code picks its procedure; otherwise words of the name are searched (no-script path)."""
    text = text.strip()
    if not text:
        return None, []
    code = text.split(" ", 1)[0]
    exact = session.scalar(
        select(Procedure).where(Procedure.agency_id == agency_id, Procedure.code == code)
    )
    if exact is not None:
        return exact, []
    matches = list(
        session.scalars(
            select(Procedure)
            .where(
                Procedure.agency_id == agency_id,
                func.lower(Procedure.name).contains(text.lower(), autoescape=True),
            )
            .order_by(Procedure.code)
            .limit(20)
        )
    )
    if len(matches) == 1:
        return matches[0], []
    return None, matches


def _fee_items(session: Session, procedure: Procedure, day: date) -> list[FeeItem]:
    """The procedure's fee items in force on ``day`` (latest effective price per code)."""
    items = session.scalars(
        select(FeeItem)
        .where(
            FeeItem.procedure_id == procedure.id,
            FeeItem.effective_from <= day,
            (FeeItem.effective_to.is_(None)) | (FeeItem.effective_to >= day),
        )
        .order_by(FeeItem.code, FeeItem.effective_from.desc())
    )
    by_code: dict[str, FeeItem] = {}
    for item in items:
        by_code.setdefault(item.code, item)
    return list(by_code.values())


def _choices(
    items: list[FeeItem], typed: dict[str, dict[str, Any]] | None = None
) -> list[FeeChoice]:
    typed = typed or {}
    result = []
    for index, item in enumerate(items):
        given = typed.get(item.code, {})
        quantity = int(given.get("quantity", 1))
        given_copies = _optional_int(given.get("copies"))
        copies = 1 if given_copies is None else given_copies
        declared_value = _optional_int(given.get("declared_value"))
        reduction = str(given.get("reduction", ""))
        priced: Priced | None = None
        error: str | None = None
        if quantity > 0:
            try:
                _, priced, _ = price_fee(
                    FeeSpec.of(item),
                    FeeRequest(
                        fee_code=item.code,
                        quantity=quantity,
                        copies=copies,
                        declared_value=declared_value,
                        reduction=reduction or None,
                    ),
                )
            except ProblemError as exc:
                error = exc.detail
        result.append(
            FeeChoice(
                index=index,
                code=item.code,
                name=item.name,
                kind=item.kind,
                unit=item.unit,
                unit_price=item.amount,
                max_amount=item.max_amount,
                legal_basis=item.legal_basis,
                quantity=quantity,
                tariff=tariff_of(item),
                exempt=bool(given.get("exempt", False)),
                exempt_category=str(given.get("exempt_category", "")),
                exempt_basis=str(given.get("exempt_basis", "")),
                copies=copies,
                declared_value=declared_value,
                reduction=reduction,
                priced=priced,
                error=error,
            )
        )
    return result


# --------------------------------------------------------------------------- home


@router.get("", response_class=HTMLResponse)
def home(
    request: Request,
    staff: Clerk,
    engine: EngineDep,
    q: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    """Search by dossier code or transfer reference; without a query, the latest orders."""
    query = q.strip()
    with unit_of_work(engine) as session:
        stmt = select(PaymentOrder).where(PaymentOrder.agency_id == staff.agency_id)
        if query:
            stmt = stmt.where(
                or_(
                    PaymentOrder.dossier_code == query,
                    PaymentOrder.dossier_code.startswith(query, autoescape=True),
                    PaymentOrder.reference == query.upper(),
                )
            )
        orders = list(
            session.scalars(stmt.order_by(PaymentOrder.created_at.desc()).limit(RECENT_ORDERS))
        )
        rows = [
            {
                "id": o.id,
                "dossier_code": o.dossier_code,
                "reference": o.reference,
                "procedure_name": o.procedure_name,
                "payer_name": o.payer.get("name", ""),
                "amount": o.amount,
                "status": o.status,
                "created_at": o.created_at,
            }
            for o in orders
        ]
    return render(
        request,
        "counter_home.html",
        {"q": query, "rows": rows, "labels": STATUS_LABELS},
    )


# --------------------------------------------------------------------------- new order


def _form_context(
    session: Session,
    staff: StaffContext,
    *,
    procedure_text: str,
    values: dict[str, str],
    typed: dict[str, dict[str, Any]] | None,
    form_token: str,
    errors: list[str],
) -> dict[str, Any]:
    agency = _agency(session, staff)
    day = local_today(agency.time_zone)
    procedure, matches = _find_procedure(session, staff.agency_id, procedure_text)
    choices = _choices(_fee_items(session, procedure, day), typed) if procedure else []
    return {
        "procedures": [
            {"code": p.code, "name": p.name} for p in _procedures(session, staff.agency_id)
        ],
        "procedure": {"code": procedure.code, "name": procedure.name} if procedure else None,
        "procedure_text": procedure_text,
        "matches": [{"code": p.code, "name": p.name} for p in matches],
        "choices": choices,
        "total": sum(c.amount for c in choices),
        "values": values,
        "form_token": form_token,
        "errors": errors,
        "catalogue_day": day,
    }


@router.get("/new", response_class=HTMLResponse)
def new_order_form(
    request: Request,
    staff: Clerk,
    engine: EngineDep,
    procedure: Annotated[str, Query(max_length=600)] = "",
    dossier_code: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    """A fresh one-time form token per render: submitting the same form twice makes one order."""
    with unit_of_work(engine) as session:
        context = _form_context(
            session,
            staff,
            procedure_text=procedure,
            values={"dossier_code": dossier_code},
            typed=None,
            form_token=secrets.token_hex(16),
            errors=[],
        )
    return render(request, "counter_new.html", context)


@router.get("/new/lines", response_class=HTMLResponse)
def new_order_lines(
    request: Request,
    staff: Clerk,
    engine: EngineDep,
    procedure: Annotated[str, Query(max_length=600)] = "",
) -> HTMLResponse:
    """The fee-line part of the form for a procedure, for the script to swap in without reload."""
    with unit_of_work(engine) as session:
        context = _form_context(
            session,
            staff,
            procedure_text=procedure,
            values={},
            typed=None,
            form_token="",
            errors=[],
        )
    return render(request, "counter_lines.html", context)


@router.get("/new/price")
def new_order_price(request: Request, staff: Clerk, engine: EngineDep) -> JSONResponse:
    """Totals as you type: the form's fee lines (``line-N-*`` and ``procedure_code`` as query
    parameters; never the payer's details) priced by :func:`payments.order_draft.price_fee`,
    the very function that prices the order, so the screen has no arithmetic of its own."""
    parsed = _parse_order_form(request.query_params)
    with unit_of_work(engine) as session:
        context = _form_context(
            session,
            staff,
            procedure_text=parsed.values["procedure_code"] or parsed.values["procedure"],
            values={},
            typed=parsed.typed,
            form_token="",
            errors=[],
        )
    choices: list[FeeChoice] = context["choices"]
    return JSONResponse(
        {
            "lines": [
                {
                    "index": c.index,
                    "fee_code": c.code,
                    "amount": c.amount,
                    "amount_text": vnd(c.amount),
                    "breakdown": (
                        {"vi": c.breakdown("vi"), "en": c.breakdown("en")}
                        if c.breakdown("vi")
                        else None
                    ),
                    "error": c.error,
                }
                for c in choices
            ],
            "total": context["total"],
            "total_text": vnd(context["total"]),
            "errors": parsed.errors,
        },
        headers={"Cache-Control": "no-store"},
    )


_FIELD_NAMES = {
    "dossier_code": ("Mã hồ sơ", "Dossier code"),
    "procedure_code": ("Thủ tục", "Procedure"),
    "name": ("Họ tên người nộp", "Payer name"),
    "id_number": (
        "Số định danh (CCCD) – 6 đến 20 chữ số/chữ cái",
        "ID number – 6 to 20 letters/digits",
    ),
    "email": ("Thư điện tử", "E-mail"),
    "phone": ("Số điện thoại", "Phone"),
    "address": ("Địa chỉ", "Address"),
    "fees": (
        "Khoản phí, lệ phí (chọn ít nhất một, số lượng ≥ 1)",
        "Fee lines (at least one, quantity ≥ 1)",
    ),
    "quantity": ("Số lượng (1 đến 100.000)", "Quantity (1 to 100,000)"),
    "copies": ("Số bản (1 đến 1.000)", "Copies (1 to 1,000)"),
    "declared_value": ("Giá trị khai báo (đồng)", "Declared value (VND)"),
    "reduction": ("Mức giảm", "Reduction"),
    "category": ("Đối tượng miễn", "Exemption category"),
    "legal_basis": ("Căn cứ miễn", "Exemption legal basis"),
}


def _validation_messages(exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = next((p for p in reversed(loc) if p in _FIELD_NAMES), loc[-1] if loc else "")
        vi, en = _FIELD_NAMES.get(field, (field, field))
        messages.append(f"{vi} / {en}: {error['msg']}")
    return messages


@dataclass
class ParsedOrderForm:
    values: dict[str, str]
    typed: dict[str, dict[str, Any]]
    body: dict[str, Any]
    errors: list[str]


def _parse_order_form(form: Any) -> ParsedOrderForm:
    """Reads the form into the API's ``PaymentOrderIn`` shape (the API's own validation)."""
    values = {
        name: _text(form, name, 600)
        for name in (
            "procedure",
            "procedure_code",
            "dossier_code",
            "payer_name",
            "payer_id_number",
            "payer_phone",
            "payer_email",
            "payer_address",
        )
    }
    errors: list[str] = []
    typed: dict[str, dict[str, Any]] = {}
    fees: list[dict[str, Any]] = []
    for index in range(MAX_LINES):
        prefix = f"line-{index}-"
        code = _text(form, prefix + "fee_code", 32)
        if not code:
            break
        raw_quantity = _text(form, prefix + "quantity", 12) or "0"
        exempt = form.get(prefix + "exempt") == "1"
        category = _text(form, prefix + "exempt_category", 255)
        basis = _text(form, prefix + "exempt_basis", 500)
        try:
            quantity = int(raw_quantity)
        except ValueError:
            errors.append(f"Số lượng không hợp lệ / invalid quantity: {code} = {raw_quantity!r}")
            quantity = 0
        extra: dict[str, Any] = {}
        for name, label in (("copies", "số bản / copies"), ("declared_value", "giá trị / value")):
            raw = _text(form, prefix + name, 20).replace(".", "").replace(" ", "")
            if not raw:
                continue
            try:
                extra[name] = int(raw)
            except ValueError:
                errors.append(f"Không hợp lệ / invalid {label}: {code} = {raw!r}")
        reduction = _text(form, prefix + "reduction", 32)
        if reduction:
            extra["reduction"] = reduction
        typed[code] = {
            "quantity": max(quantity, 0),
            "exempt": exempt,
            "exempt_category": category,
            "exempt_basis": basis,
            **extra,
        }
        if quantity <= 0:
            continue  # 0 leaves the line out of the order
        line: dict[str, Any] = {"fee_code": code, "quantity": quantity, **extra}
        if exempt:
            if not category or not basis:
                errors.append(
                    f"Miễn cho {code}: cần đối tượng miễn và căn cứ pháp lý / "
                    f"exemption of {code} needs a category and a legal basis"
                )
            line["exemption"] = {"category": category, "legal_basis": basis}
        fees.append(line)
    payer: dict[str, Any] = {"name": values["payer_name"]}
    for key in ("id_number", "phone", "email", "address"):
        if values[f"payer_{key}"]:
            payer[key] = values[f"payer_{key}"]
    body = {
        "dossier_code": values["dossier_code"],
        "procedure_code": values["procedure_code"],
        "payer": payer,
        "fees": fees,
    }
    return ParsedOrderForm(values=values, typed=typed, body=body, errors=errors)


def _create_from_form(
    staff: StaffContext, engine: Any, settings: Settings, form: Any
) -> tuple[str | None, bool, dict[str, Any] | None]:
    """(order id, was it a repeat of an already used form token, context to re-render)."""
    token = idempotency.check_key(_text(form, "form_token", 255) or None)
    parsed = _parse_order_form(form)
    with unit_of_work(engine) as session:
        seen = idempotency.find_any(session, staff.staff_id, CREATE_SCOPE, token)
    if seen is not None:
        return str(seen[1]["order_id"]), True, None
    errors = list(parsed.errors)
    body: PaymentOrderIn | None = None
    if not errors:
        try:
            body = PaymentOrderIn.model_validate(parsed.body)
        except ValidationError as exc:
            errors.extend(_validation_messages(exc))
    if body is not None and not errors:
        request = OrderRequest(
            dossier_code=body.dossier_code,
            procedure_code=body.procedure_code,
            payer=body.payer.model_dump(mode="json", exclude_none=True),
            fees=tuple(f.fee_request() for f in body.fees),
        )

        def action(session: Session) -> Answer:
            placed = place_order(
                session, settings, _agency(session, staff), request, client_id=None
            )
            return Answer(303, {"order_id": placed.order.id}, False, placed.follow_ups)

        try:
            # The token and the order commit together; a double submit lands on the same order.
            answer = run_once(
                engine,
                client_id=staff.staff_id,
                scope=CREATE_SCOPE,
                key=token,
                digest=idempotency.body_hash(json.dumps(parsed.body, sort_keys=True).encode()),
                action=action,
                same_body=False,
            )
        except ProblemError as exc:
            errors.append(f"{exc.title_vi} / {exc.title_en}: {exc.detail}")
        else:
            run_after_commit(answer.follow_ups)
            return str(answer.payload["order_id"]), answer.replayed, None
    with unit_of_work(engine) as session:
        context = _form_context(
            session,
            staff,
            procedure_text=parsed.values["procedure_code"] or parsed.values["procedure"],
            values=parsed.values,
            typed=parsed.typed,
            form_token=token,  # nothing was stored: the same token stays valid for the retry
            errors=errors,
        )
    return None, False, context


@router.post("/orders", response_class=HTMLResponse)
async def create(
    request: Request, staff: ClerkPost, engine: EngineDep, settings: SettingsDep
) -> Response:
    """Creates the order once per form token; a double submit lands on the same order."""
    form = await request.form()
    order_id, repeated, context = await run_in_threadpool(
        _create_from_form, staff, engine, settings, form
    )
    if order_id is None:
        assert context is not None
        return render(request, "counter_new.html", context, status_code=422)
    return _redirect(f"/staff/counter/orders/{order_id}", done="repeat" if repeated else "created")


# --------------------------------------------------------------------------- the order


def _status_payload(session: Session, order: PaymentOrder) -> dict[str, Any]:
    chain = receipt_chain(session, order.receipt_id)
    current = chain[-1] if chain else None
    vi, en, badge = STATUS_LABELS.get(order.status, (order.status, order.status, ""))
    method = METHOD_LABELS.get(order.payment_method or "", ("", ""))
    return {
        "id": order.id,
        "status": order.status,
        "paid": order.status == OrderStatus.SUCCEEDED.value,
        "label_vi": vi,
        "label_en": en,
        "badge": badge,
        "amount": order.amount,
        "payment_method": order.payment_method,
        "method_vi": method[0],
        "method_en": method[1],
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
        "receipt": (
            {
                "id": current.id,
                "number": current.number,
                "label": _receipt_label(current),
                "pdf_url": f"/staff/counter/receipts/{current.id}/pdf",
            }
            if current is not None
            else None
        ),
        "receipt_error": order.receipt_error,
    }


def _order_context(session: Session, order: PaymentOrder, settings: Settings) -> dict[str, Any]:
    chain = receipt_chain(session, order.receipt_id)
    current = chain[-1] if chain else None
    data = order_json(order, current, settings.public_base_url)
    payer = dict(order.payer)
    notices = [{"notice": n, "receipt": r} for r in chain for n in error_notices_for(session, r.id)]
    return {
        "order": order,
        "data": data,
        "payer": {
            "name": payer.get("name", ""),
            "id_number": _ids_mask(payer.get("id_number")),
            "phone": _ids_mask(payer.get("phone")),
            "email": _email_mask(payer.get("email")),
            "address": payer.get("address"),
        },
        "chain": chain,
        "current": current,
        "notices": notices,
        "bank_name": _bank_name(order.agency.bank_bin),
        "status": _status_payload(session, order),
        "labels": STATUS_LABELS,
        "methods": METHOD_LABELS,
        "poll_ms": POLL_MS,
        "receipt_label": _receipt_label,
    }


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(
    request: Request,
    order_id: str,
    staff: Clerk,
    engine: EngineDep,
    settings: SettingsDep,
    done: Annotated[str, Query(max_length=32)] = "",
    notice: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    with unit_of_work(engine) as session:
        order = _order(session, staff, order_id)
        context = _order_context(session, order, settings)
        flash_notice = None
        if notice:
            found = session.get(ErrorNotice, notice)
            if found is not None and found.agency_id == staff.agency_id:
                flash_notice = {"id": found.id, "status": found.status}
        context.update({"done": done, "flash_notice": flash_notice})
        return render(request, "counter_order.html", context)


@router.get("/orders/{order_id}/screen", response_class=HTMLResponse)
def second_screen(
    request: Request, order_id: str, staff: Clerk, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    """Faces the citizen: amount, QR, account and memo; turns into "paid" with the receipt."""
    with unit_of_work(engine) as session:
        order = _order(session, staff, order_id)
        return render(request, "counter_screen.html", _order_context(session, order, settings))


@router.get("/orders/{order_id}/status")
def order_status(order_id: str, staff: Clerk, engine: EngineDep) -> JSONResponse:
    """Polled every ~1.5 s by the order page and the second screen."""
    with unit_of_work(engine) as session:
        payload = _status_payload(session, _order(session, staff, order_id))
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})


def _take_cash(
    staff: StaffContext, engine: Any, settings: Settings, order_id: str, raw: str
) -> str:
    digits = raw.replace(".", "").replace(",", "").replace(" ", "").removesuffix("đ")
    if not digits.isdigit():
        raise InvalidInput(
            "Số tiền phải là số nguyên đồng / the amount must be a whole number of VND",
            code="amount_invalid",
        )
    with unit_of_work(engine) as session:
        _, repeat = record_cash_taken(
            session,
            TakeCash(
                order_id,
                staff.agency_id,
                amount=int(digits),
                clerk=staff.username,
                repeat_is_ok=True,
            ),
        )
    if repeat:
        return "cash_repeat"  # a double click: the cash is recorded once
    issue_at_once(engine, settings, order_id)
    return "cash"


@router.post("/orders/{order_id}/cash")
async def take_cash(
    request: Request, order_id: str, staff: ClerkPost, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The amount handed over must equal the total; the receipt is issued at once."""
    form = await request.form()
    done = await run_in_threadpool(
        _take_cash, staff, engine, settings, order_id, _text(form, "amount", 20)
    )
    return _redirect(f"/staff/counter/orders/{order_id}", done=done)


@router.post("/orders/{order_id}/cancel")
def cancel(order_id: str, staff: ClerkPost, engine: EngineDep) -> Response:
    """Withdraws a pending order (cancelling twice is a no-op); a paid one answers 409."""
    with unit_of_work(engine) as session:
        cancel_order(session, order_id, staff.agency_id)
    return _redirect(f"/staff/counter/orders/{order_id}", done="cancelled")


# --------------------------------------------------------------------------- receipts


@router.get("/receipts/{receipt_id}/pdf")
def receipt_pdf_page(
    receipt_id: str, staff: Clerk, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The same signed PDF display copy as ``/api/v1/receipts/{id}/pdf``, for this agency only."""
    with unit_of_work(engine) as session:
        receipt = _receipt(session, staff, receipt_id)
        body = display_copy(session, settings, receipt)
        name = display_copy_name(receipt, "pdf")
    return document_response(body, "application/pdf", name, private=True)


def _reason_error(reason: str) -> str | None:
    size = len(" ".join(reason.split()))
    if REASON_MIN <= size <= REASON_MAX:
        return None
    return (
        f"Lý do là bắt buộc, từ {REASON_MIN} đến {REASON_MAX} ký tự / "
        f"a reason of {REASON_MIN} to {REASON_MAX} characters is required"
    )


def _replace_context(session: Session, receipt: Receipt) -> dict[str, Any]:
    parsed = original_content(receipt)
    return {
        "receipt": receipt,
        "receipt_label": _receipt_label(receipt),
        "parsed": parsed,
        "id_hint": _ids_mask(parsed.payer_id_number),
        "order": order_of_receipt(session, receipt),
    }


@router.get("/receipts/{receipt_id}/replace", response_class=HTMLResponse)
def replace_form(
    request: Request, receipt_id: str, staff: Clerk, engine: EngineDep
) -> HTMLResponse:
    with unit_of_work(engine) as session:
        receipt = _receipt(session, staff, receipt_id)
        context = _replace_context(session, receipt)
        context.update({"errors": [], "values": {}})
        return render(request, "counter_replace.html", context)


def _int_field(form: Any, name: str, label: str, errors: list[str], *, low: int = 0) -> int | None:
    raw = _text(form, name, 20).replace(".", "").replace(",", "")
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < low or int(raw) >= 10**13:
        errors.append(f"{label}: số nguyên không hợp lệ / not a valid whole number")
        return None
    return int(raw)


def _replace(
    staff: StaffContext, engine: Any, settings: Settings, receipt_id: str, form: Any
) -> tuple[str | None, dict[str, Any] | None]:
    """(id of the replacement, or the form context to show again with the errors)."""
    reason = _text(form, "reason", 2000)
    errors: list[str] = []
    if (problem := _reason_error(reason)) is not None:
        errors.append(problem)
    with unit_of_work(engine) as session:
        parsed = original_content(_receipt(session, staff, receipt_id))
    payer = {
        field: value
        for field, limit in (("name", 255), ("address", 400), ("id_number", 20))
        if (value := _text(form, f"payer_{field}", limit))
    }
    lines: list[LineCorrection] = []
    for index, line in enumerate(parsed.lines):
        lines.append(
            LineCorrection(
                fee_code=line.fee_code,
                quantity=_int_field(form, f"line-{index}-quantity", line.fee_code, errors, low=1),
                unit_price=_int_field(form, f"line-{index}-unit_price", line.fee_code, errors),
                amount=_int_field(form, f"line-{index}-amount", line.fee_code, errors),
            )
        )
    if not errors:
        try:
            with unit_of_work(engine) as session:
                replacement = replace_receipt(
                    session,
                    settings,
                    ReplaceReceipt(
                        receipt_id=receipt_id,
                        agency_id=staff.agency_id,
                        reason=reason,
                        actor=staff.username,
                        payer=payer,
                        lines=tuple(lines),
                    ),
                )
                return replacement.id, None
        except ProblemError as exc:
            errors.append(f"{exc.title_vi} / {exc.title_en}: {exc.detail}")
    with unit_of_work(engine) as session:
        context = _replace_context(session, _receipt(session, staff, receipt_id))
    values = {k: _text(form, k, 2000) for k in form if isinstance(k, str) and k != "csrf_token"}
    context.update({"errors": errors, "values": values})
    return None, context


@router.post("/receipts/{receipt_id}/replace", response_class=HTMLResponse)
async def replace(
    request: Request, receipt_id: str, staff: ClerkPost, engine: EngineDep, settings: SettingsDep
) -> Response:
    """Issues the replacement (new number, the original stays signed); the reason is recorded."""
    form = await request.form()
    new_id, context = await run_in_threadpool(_replace, staff, engine, settings, receipt_id, form)
    if new_id is None:
        assert context is not None
        return render(request, "counter_replace.html", context, status_code=422)
    with unit_of_work(engine) as session:
        order = order_of_receipt(session, _receipt(session, staff, new_id))
    if order is None:  # pragma: no cover - counter receipts always come from an order
        return _redirect("/staff/counter")
    return _redirect(f"/staff/counter/orders/{order.id}", done="replaced")


@router.get("/receipts/{receipt_id}/error-notice", response_class=HTMLResponse)
def notice_form(request: Request, receipt_id: str, staff: Clerk, engine: EngineDep) -> HTMLResponse:
    with unit_of_work(engine) as session:
        receipt = _receipt(session, staff, receipt_id)
        context = _replace_context(session, receipt)
        context.update({"errors": [], "values": {}, "form_token": secrets.token_hex(16)})
        return render(request, "counter_notice.html", context)


def _notice(
    staff: StaffContext, engine: Any, settings: Settings, receipt_id: str, form: Any
) -> tuple[str | None, str | None, dict[str, Any] | None]:
    reason = _text(form, "reason", 2000)
    authority = _text(form, "tax_authority_name", 400)
    token = idempotency.check_key(_text(form, "form_token", 255) or None)
    errors: list[str] = []
    if (problem := _reason_error(reason)) is not None:
        errors.append(problem)
    if len(authority) < 3:
        errors.append("Cần tên cơ quan thuế quản lý / the tax office's name is required")
    if not errors:
        try:
            with unit_of_work(engine) as session:
                notice = send_error_notice(
                    session,
                    settings,
                    SendErrorNotice(
                        receipt_ids=(_receipt(session, staff, receipt_id).id,),
                        agency_id=staff.agency_id,
                        reason=reason,
                        actor=staff.username,
                        tax_authority_name=authority,
                        tax_authority_code=_text(form, "tax_authority_code", 50) or None,
                        place=_text(form, "place", 100) or None,
                        source_key=f"counter-notice:{staff.staff_id}:{token}",
                    ),
                )
                order = order_of_receipt(session, _receipt(session, staff, receipt_id))
                return notice.id, order.id if order is not None else None, None
        except ProblemError as exc:
            errors.append(f"{exc.title_vi} / {exc.title_en}: {exc.detail}")
    with unit_of_work(engine) as session:
        context = _replace_context(session, _receipt(session, staff, receipt_id))
    values = {k: _text(form, k, 2000) for k in form if isinstance(k, str) and k != "csrf_token"}
    context.update({"errors": errors, "values": values, "form_token": token})
    return None, None, context


@router.post("/receipts/{receipt_id}/error-notice", response_class=HTMLResponse)
async def notice(
    request: Request, receipt_id: str, staff: ClerkPost, engine: EngineDep, settings: SettingsDep
) -> Response:
    """Signs and queues a 04/SS-CTĐT for the tax office; the receipt itself is not reissued."""
    form = await request.form()
    notice_id, order_id, context = await run_in_threadpool(
        _notice, staff, engine, settings, receipt_id, form
    )
    if notice_id is None:
        assert context is not None
        return render(request, "counter_notice.html", context, status_code=422)
    if order_id is None:  # pragma: no cover
        return _redirect("/staff/counter")
    return _redirect(f"/staff/counter/orders/{order_id}", done="notice", notice=notice_id)


# --------------------------------------------------------------------------- till


@router.get("/till", response_class=HTMLResponse)
def till(request: Request, staff: Clerk, engine: EngineDep, clock: ClockDep) -> HTMLResponse:
    """Today's takings on the agency's local day: cash this clerk took, and (labelled as such)
    the agency-wide transfers and card payments, since orders do not record who created them."""
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        bday = BusinessDay.containing(clock(), ZoneInfo(agency.time_zone))
        day, start, end = bday.day, bday.start_utc, bday.end_utc
        paid_today = (
            PaymentOrder.agency_id == staff.agency_id,
            PaymentOrder.status == OrderStatus.SUCCEEDED.value,
            PaymentOrder.paid_at >= start,
            PaymentOrder.paid_at < end,
        )
        cash_orders = list(
            session.scalars(
                select(PaymentOrder)
                .where(
                    *paid_today,
                    PaymentOrder.payment_method == "cash",
                    PaymentOrder.collected_by == staff.username,
                )
                .order_by(PaymentOrder.paid_at)
            )
        )
        cash_rows = []
        for order in cash_orders:
            chain = receipt_chain(session, order.receipt_id)
            cash_rows.append(
                {
                    "id": order.id,
                    "paid_at": order.paid_at,
                    "dossier_code": order.dossier_code,
                    "payer_name": order.payer.get("name", ""),
                    "amount": order.amount,
                    "receipt": _receipt_label(chain[-1]) if chain else None,
                }
            )
        agency_wide = {
            method: (int(count or 0), int(total or 0))
            for method, count, total in session.execute(
                select(
                    PaymentOrder.payment_method,
                    func.count(PaymentOrder.id),
                    func.coalesce(func.sum(PaymentOrder.amount), 0),
                )
                .where(*paid_today, PaymentOrder.payment_method.in_(("transfer", "card")))
                .group_by(PaymentOrder.payment_method)
            )
        }
        zone = ZoneInfo(agency.time_zone)
        context = {
            "day": day,
            "zone": agency.time_zone,
            "start_local": start.astimezone(zone),
            "end_local": end.astimezone(zone),
            "start_utc": start,
            "end_utc": end,
            "cash_rows": cash_rows,
            "cash_count": len(cash_rows),
            "cash_total": sum(r["amount"] for r in cash_rows),
            "transfer": agency_wide.get("transfer", (0, 0)),
            "card": agency_wide.get("card", (0, 0)),
            "agency_name": agency.name,
        }
    return render(request, "counter_till.html", context)
