"""Pages: the agency admin (issue 6, item 5) — staff accounts and roles, the fee catalogue,
API clients and bank-feed keys, and the signing certificate's health.

Everything is scoped to the signed-in admin's agency: an id from another agency answers 404,
the same as a missing one, and changes nothing. Every change writes a ``staff_admin_events``
row in the same transaction as the change. Secrets (generated passwords, API keys, callback
and bank-feed secrets) appear once, in the response to the POST that made them, and nowhere
else: not in a redirect URL, not in the audit trail, not in logs.

The pages call the same service functions as the ``motcua`` CLI (``create_staff``,
``import_catalog``, ``add_client``, ``add_bank_feed``), so both paths enforce the same rules.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from cryptography import x509
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.pages.web import page_staff, page_staff_csrf
from api.rendering import render
from api.staff.deps import ClockDep, StaffContext, ensure_same_agency
from api.staff.models import Role, StaffAccount, StaffAdminEvent
from api.staff.sessions import (
    create_staff,
    generate_password,
    is_locked,
    last_sign_ins,
    record_admin_event,
    reset_password,
    set_active,
    set_roles,
)
from payments.catalog import import_catalog, reprice_fee
from payments.credentials import PROVIDERS, add_bank_feed, add_client
from payments.errors import CatalogImportError, InvalidInput
from payments.models import Agency, ApiClient, BankFeedCredential, FeeItem, Procedure
from payments.tariffs import (
    LineInput,
    Tariff,
    describe,
    format_reductions,
    format_tariff,
    headline_price,
    parse_tariff,
    price,
    tariff_of,
)
from payments.usecases.claims import set_auto_approval
from settings.config import Profile
from settings.errors import ProblemError
from signing.certs import assess_certificate
from signing.keys import load_key_source

__all__ = ["CertificateStatus", "certificate_status", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/staff/admin", tags=["pages"], include_in_schema=False)

AdminPage = Annotated[StaffContext, Depends(page_staff(Role.ADMIN))]
AdminPost = Annotated[StaffContext, Depends(page_staff_csrf(Role.ADMIN))]

EXPIRY_WARNING_DAYS = 30
"""A certificate this close to its end gets a warning: renewing one from a CA takes days."""
MAX_CATALOG_BYTES = 2 * 1024 * 1024
"""A district catalogue is a few dozen rows; a bigger upload is a mistake, not a catalogue."""
RECENT_EVENTS = 30


def _not_found() -> ProblemError:
    """The same answer as :func:`ensure_same_agency` gives for another agency's object."""
    return ProblemError(
        "Không tìm thấy / not found",
        code="not_found",
        status=404,
        title_vi="Không tìm thấy",
        title_en="Not found",
    )


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _agency(session: Session, staff: StaffContext) -> Agency:
    agency = session.get(Agency, staff.agency_id)
    if agency is None:  # the account's agency vanished: nothing to administer
        raise _not_found()
    return agency


def _audit(
    session: Session,
    staff: StaffContext,
    action: str,
    target_kind: str,
    target_id: str,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    record_admin_event(
        session,
        agency_id=staff.agency_id,
        actor_id=staff.staff_id,
        actor_username=staff.username,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        detail=detail,
        now=now,
    )
    # structured, for log shippers; ids and names only, never a secret
    log.info(
        "admin change",
        extra={
            "event": "admin_change",
            "action": action,
            "target_kind": target_kind,
            "target_id": target_id,
            "actor": staff.username,
            "agency": staff.agency_code,
        },
    )


def _local_today(agency: Agency, now: datetime) -> date:
    return now.astimezone(ZoneInfo(agency.time_zone)).date()


def _parse_date(value: str, field_vi: str, field_en: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(
            f"{field_vi} phải có dạng YYYY-MM-DD / {field_en} must be YYYY-MM-DD"
        ) from exc


def _parse_vnd(value: str) -> int:
    """Accepts what people type for đồng: ``1250000``, ``1.250.000``, ``1 250 000 đ``."""
    text = re.sub(r"[\s.,_]|đ$|VND$", "", value.strip(), flags=re.IGNORECASE)
    if not re.fullmatch(r"\d{1,13}", text):
        raise InvalidInput(
            "Số tiền phải là số nguyên đồng, ví dụ 1.250.000 / "
            "the amount must be a whole number of đồng, e.g. 1.250.000"
        )
    return int(text)


# --- Home -----------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def admin_home(request: Request, staff: AdminPage, engine: EngineDep, clock: ClockDep) -> Response:
    """One screen to see the agency's set-up at a glance, and what changed lately."""
    now = clock()
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        counts = {
            "staff": session.scalar(
                select(func.count()).where(
                    StaffAccount.agency_id == agency.id, StaffAccount.active.is_(True)
                )
            )
            or 0,
            "procedures": session.scalar(
                select(func.count()).where(Procedure.agency_id == agency.id)
            )
            or 0,
            "clients": session.scalar(
                select(func.count()).where(
                    ApiClient.agency_id == agency.id, ApiClient.active.is_(True)
                )
            )
            or 0,
            "feeds": session.scalar(
                select(func.count()).where(
                    BankFeedCredential.agency_id == agency.id, BankFeedCredential.active.is_(True)
                )
            )
            or 0,
        }
        events = list(
            session.scalars(
                select(StaffAdminEvent)
                .where(StaffAdminEvent.agency_id == agency.id)
                .order_by(StaffAdminEvent.at.desc(), StaffAdminEvent.id.desc())
                .limit(RECENT_EVENTS)
            )
        )
        cert = certificate_status(agency, now)
        ctx = {"agency": agency, "counts": counts, "events": events, "cert": cert}
        return render(request, "admin_home.html", ctx)


# --- Citizens' transfer claims (issue 19) ------------------------------------------------


@router.post("/claims")
def claims_setting(
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    days: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Automatic approval of exact transfer claims: ``days`` 1-90, or 0 for off."""
    text = days.strip()
    if not text.isdigit():
        raise InvalidInput("days: 0 (tắt / off) hoặc 1-90 ngày / days")
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        before = agency.claim_auto_approve_days
        set_auto_approval(session, agency.id, int(text) or None)
        _audit(
            session,
            staff,
            "claim_auto_approve_set",
            "agency",
            agency.id,
            {"before": before, "after": agency.claim_auto_approve_days},
            clock(),
        )
    return _redirect("/staff/admin#claims-setting")


# --- Staff accounts -------------------------------------------------------------------


def _users_context(session: Session, staff: StaffContext, now: datetime) -> dict[str, Any]:
    accounts = list(
        session.scalars(
            select(StaffAccount)
            .where(StaffAccount.agency_id == staff.agency_id)
            .order_by(StaffAccount.username)
        )
    )
    seen = last_sign_ins(session, [a.username for a in accounts])
    rows = [
        {
            "account": a,
            "roles": sorted(a.role_set),
            "last_sign_in": seen.get(a.username),
            "locked": is_locked(session, a.username, now),
        }
        for a in accounts
    ]
    return {"rows": rows, "all_roles": list(Role), "form": {}, "error": None}


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, staff: AdminPage, engine: EngineDep, clock: ClockDep) -> Response:
    with unit_of_work(engine) as session:
        ctx = _users_context(session, staff, clock())
        ctx["done"] = request.query_params.get("done")
        return render(request, "admin_users.html", ctx)


@router.post("/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    username: Annotated[str, Form(max_length=200)] = "",
    display_name: Annotated[str, Form(max_length=255)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Creates an account with ``create_staff`` (the CLI's rules); a blank password field
    means "generate one", which is then shown once on the answer page."""
    now = clock()
    generated = None if password else generate_password()
    try:
        with unit_of_work(engine) as session:
            account = create_staff(
                session,
                staff.agency_id,
                username,
                display_name,
                password or generated or "",
                roles or [],
            )
            _audit(
                session,
                staff,
                "staff_created",
                "staff",
                account.id,
                {"username": account.username, "roles": account.roles},
                now,
            )
            created = {
                "id": account.id,
                "username": account.username,
                "display_name": account.display_name,
            }
    except ProblemError as exc:
        with unit_of_work(engine) as session:
            ctx = _users_context(session, staff, now)
        ctx["error"] = exc.detail
        ctx["form"] = {"username": username, "display_name": display_name, "roles": roles or []}
        return render(request, "admin_users.html", ctx, status_code=exc.status)
    if generated is None:
        return _redirect("/staff/admin/users?done=created")
    return render(
        request,
        "admin_secret.html",
        {"kind": "password", "account": created, "secrets": [("password", generated)]},
    )


def _account(session: Session, staff: StaffContext, staff_id: str) -> StaffAccount:
    return ensure_same_agency(staff, session.get(StaffAccount, staff_id[:64]))


def _user_page(
    request: Request,
    session: Session,
    staff: StaffContext,
    account: StaffAccount,
    now: datetime,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    events = list(
        session.scalars(
            select(StaffAdminEvent)
            .where(
                StaffAdminEvent.agency_id == staff.agency_id,
                StaffAdminEvent.target_kind == "staff",
                StaffAdminEvent.target_id == account.id,
            )
            .order_by(StaffAdminEvent.at.desc(), StaffAdminEvent.id.desc())
            .limit(RECENT_EVENTS)
        )
    )
    ctx = {
        "account": account,
        "roles": sorted(account.role_set),
        "all_roles": list(Role),
        "is_self": account.id == staff.staff_id,
        "last_sign_in": last_sign_ins(session, [account.username]).get(account.username),
        "locked": is_locked(session, account.username, now),
        "events": events,
        "error": error,
        "done": request.query_params.get("done"),
    }
    return render(request, "admin_user.html", ctx, status_code=status_code)


@router.get("/users/{staff_id}", response_class=HTMLResponse)
def user_page(
    request: Request, staff_id: str, staff: AdminPage, engine: EngineDep, clock: ClockDep
) -> Response:
    with unit_of_work(engine) as session:
        return _user_page(request, session, staff, _account(session, staff, staff_id), clock())


def _user_refusal(
    request: Request,
    engine: EngineDep,
    staff: StaffContext,
    staff_id: str,
    exc: ProblemError,
    now: datetime,
) -> Response:
    """The account page again with the reason; the failed change was rolled back."""
    with unit_of_work(engine) as session:
        account = _account(session, staff, staff_id)
        return _user_page(
            request, session, staff, account, now, error=exc.detail, status_code=exc.status
        )


@router.post("/users/{staff_id}/roles", response_class=HTMLResponse)
def change_roles(
    request: Request,
    staff_id: str,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    now = clock()
    try:
        with unit_of_work(engine) as session:
            account = _account(session, staff, staff_id)
            before, after = set_roles(session, account, roles or [], actor_id=staff.staff_id)
            if before != after:
                _audit(
                    session,
                    staff,
                    "staff_roles_changed",
                    "staff",
                    account.id,
                    {"username": account.username, "before": before, "after": after},
                    now,
                )
    except ProblemError as exc:
        if exc.status == 404:
            raise
        return _user_refusal(request, engine, staff, staff_id, exc, now)
    return _redirect(f"/staff/admin/users/{staff_id}?done=roles")


def _set_active(
    request: Request,
    staff_id: str,
    staff: StaffContext,
    engine: EngineDep,
    now: datetime,
    active: bool,
) -> Response:
    try:
        with unit_of_work(engine) as session:
            account = _account(session, staff, staff_id)
            if account.active != active:
                set_active(session, account, active, actor_id=staff.staff_id)
                _audit(
                    session,
                    staff,
                    "staff_enabled" if active else "staff_disabled",
                    "staff",
                    account.id,
                    {"username": account.username},
                    now,
                )
    except ProblemError as exc:
        if exc.status == 404:
            raise
        return _user_refusal(request, engine, staff, staff_id, exc, now)
    return _redirect(f"/staff/admin/users/{staff_id}?done={'enabled' if active else 'disabled'}")


@router.post("/users/{staff_id}/disable", response_class=HTMLResponse)
def disable_user(
    request: Request, staff_id: str, staff: AdminPost, engine: EngineDep, clock: ClockDep
) -> Response:
    """Signs the member out everywhere at once (their sessions are deleted)."""
    return _set_active(request, staff_id, staff, engine, clock(), False)


@router.post("/users/{staff_id}/enable", response_class=HTMLResponse)
def enable_user(
    request: Request, staff_id: str, staff: AdminPost, engine: EngineDep, clock: ClockDep
) -> Response:
    return _set_active(request, staff_id, staff, engine, clock(), True)


@router.post("/users/{staff_id}/password", response_class=HTMLResponse)
def reset_user_password(
    request: Request,
    staff_id: str,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """A blank field generates a password, shown once; either way the member is signed out."""
    now = clock()
    try:
        with unit_of_work(engine) as session:
            account = _account(session, staff, staff_id)
            generated = reset_password(session, account, password or None, actor_id=staff.staff_id)
            _audit(
                session,
                staff,
                "staff_password_reset",
                "staff",
                account.id,
                {"username": account.username, "generated": generated is not None},
                now,
            )
            target = {
                "id": account.id,
                "username": account.username,
                "display_name": account.display_name,
            }
    except ProblemError as exc:
        if exc.status == 404:
            raise
        return _user_refusal(request, engine, staff, staff_id, exc, now)
    if generated is None:
        return _redirect(f"/staff/admin/users/{staff_id}?done=password")
    return render(
        request,
        "admin_secret.html",
        {"kind": "password", "account": target, "secrets": [("password", generated)]},
    )


# --- Fee catalogue --------------------------------------------------------------------


def _catalog_context(
    session: Session, agency: Agency, now: datetime, q: str = ""
) -> dict[str, Any]:
    query = (
        select(FeeItem, Procedure)
        .join(Procedure, FeeItem.procedure_id == Procedure.id)
        .where(Procedure.agency_id == agency.id)
        .order_by(Procedure.code, FeeItem.code, FeeItem.effective_from.desc())
    )
    needle = q.strip()
    if needle:
        like = f"%{needle}%"
        query = query.where(
            Procedure.code.ilike(like)
            | Procedure.name.ilike(like)
            | FeeItem.code.ilike(like)
            | FeeItem.name.ilike(like)
        )
    groups: list[dict[str, Any]] = []
    for item, proc in session.execute(query):
        if not groups or groups[-1]["procedure"].id != proc.id:
            groups.append({"procedure": proc, "fees": []})
        groups[-1]["fees"].append(item)
    today = _local_today(agency, now)
    return {
        "groups": groups,
        "q": needle,
        "today": today,
        "error": None,
        "errors": [],
        "result": None,
        "effective_from": today.isoformat(),
    }


@router.get("/catalog", response_class=HTMLResponse)
def catalog_page(
    request: Request, staff: AdminPage, engine: EngineDep, clock: ClockDep, q: str = ""
) -> Response:
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        ctx = _catalog_context(session, agency, clock(), q[:100])
        ctx["done"] = request.query_params.get("done")
        return render(request, "admin_catalog.html", ctx)


@router.post("/catalog/import", response_class=HTMLResponse)
async def catalog_import(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    file: Annotated[UploadFile, File()],
    effective_from: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """``import_catalog``, as ``motcua catalog import``: any bad row rejects the whole file,
    and the page lists every bad line."""
    data = await file.read(MAX_CATALOG_BYTES + 1)
    return await run_in_threadpool(
        _catalog_import,
        request,
        staff,
        engine,
        clock(),
        data,
        effective_from,
        file.filename or "",
    )


def _catalog_import(
    request: Request,
    staff: StaffContext,
    engine: EngineDep,
    now: datetime,
    data: bytes,
    effective_from: str,
    filename: str,
) -> Response:
    try:
        if len(data) > MAX_CATALOG_BYTES:
            raise InvalidInput(
                "Tệp danh mục quá lớn (tối đa 2 MB) / the catalogue file is too large (2 MB max)"
            )
        with unit_of_work(engine) as session:
            agency = _agency(session, staff)
            day = (
                _parse_date(effective_from, "Ngày hiệu lực", "effective from")
                if effective_from.strip()
                else _local_today(agency, now)
            )
            result = import_catalog(session, agency, data, effective_from=day)
            _audit(
                session,
                staff,
                "catalog_imported",
                "catalog",
                agency.id,
                {
                    "file": filename[:200],
                    "effective_from": day.isoformat(),
                    "procedures_created": result.procedures_created,
                    "procedures_updated": result.procedures_updated,
                    "fees_created": result.fees_created,
                    "fees_repriced": result.fees_repriced,
                    "fees_unchanged": result.fees_unchanged,
                },
                now,
            )
            ctx = _catalog_context(session, agency, now)
            ctx["result"] = result
            ctx["effective_from"] = day.isoformat()
            return render(request, "admin_catalog.html", ctx)
    except ProblemError as exc:
        with unit_of_work(engine) as session:
            ctx = _catalog_context(session, _agency(session, staff), now)
        ctx["error"] = exc.detail
        ctx["errors"] = exc.errors if isinstance(exc, CatalogImportError) else []
        ctx["effective_from"] = effective_from
        return render(request, "admin_catalog.html", ctx, status_code=exc.status)


def _fee(session: Session, staff: StaffContext, fee_id: str) -> FeeItem:
    item = session.get(FeeItem, fee_id[:64])
    if item is None or item.procedure.agency_id != staff.agency_id:
        raise _not_found()
    return item


def _fee_page(
    request: Request,
    session: Session,
    staff: StaffContext,
    item: FeeItem,
    now: datetime,
    *,
    error: str | None = None,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    tariff_form: dict[str, str] | None = None,
    preview: dict[str, Any] | None = None,
) -> Response:
    agency = _agency(session, staff)
    history = list(
        session.scalars(
            select(FeeItem)
            .where(FeeItem.procedure_id == item.procedure_id, FeeItem.code == item.code)
            .order_by(FeeItem.effective_from.desc())
        )
    )
    today = _local_today(agency, now)
    current = tariff_of(item)
    ctx = {
        "tariff_words": {"vi": describe(current, "vi"), "en": describe(current, "en")},
        "tariff_form": tariff_form
        or {
            "tariff": format_tariff(current),
            "reductions": format_reductions(current),
            "effective_from": today.isoformat(),
            "quantity": "3" if current.tiers else "",
            "copies": "1",
            "declared_value": "",
            "reduction": "",
        },
        "preview": preview,
        "item": item,
        "procedure": item.procedure,
        "history": history,
        "latest": history[0] if history else item,
        "today": today,
        "error": error,
        "done": request.query_params.get("done"),
        "form": form or {"effective_from": today.isoformat(), "amount": ""},
    }
    return render(request, "admin_fee.html", ctx, status_code=status_code)


@router.get("/catalog/fees/{fee_id}", response_class=HTMLResponse)
def fee_page(
    request: Request, fee_id: str, staff: AdminPage, engine: EngineDep, clock: ClockDep
) -> Response:
    with unit_of_work(engine) as session:
        return _fee_page(request, session, staff, _fee(session, staff, fee_id), clock())


@router.post("/catalog/fees/{fee_id}/price", response_class=HTMLResponse)
def reprice(
    request: Request,
    fee_id: str,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    amount: Annotated[str, Form(max_length=40)] = "",
    effective_from: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """A new effective-dated price row (``reprice_fee``); history is never overwritten.

    The new price may not start before today (the agency's date): a back-dated price would
    rewrite what the catalogue said on days whose orders were already priced.
    """
    now = clock()
    try:
        with unit_of_work(engine) as session:
            item = _fee(session, staff, fee_id)
            agency = _agency(session, staff)
            day = _parse_date(effective_from, "Ngày hiệu lực", "effective from")
            if day < _local_today(agency, now):
                raise InvalidInput(
                    "Giá mới không được hiệu lực từ một ngày đã qua / "
                    "a new price cannot start on a past day"
                )
            old, new = reprice_fee(session, agency, item.id, _parse_vnd(amount), effective_from=day)
            _audit(
                session,
                staff,
                "fee_repriced",
                "fee_item",
                new.id,
                {
                    "procedure_code": item.procedure.code,
                    "fee_code": item.code,
                    "old_amount": old.amount,
                    "new_amount": new.amount,
                    "effective_from": day.isoformat(),
                    "previous_item": old.id,
                },
                now,
            )
            new_id = new.id
    except ProblemError as exc:
        if exc.status == 404:
            raise
        with unit_of_work(engine) as session:
            return _fee_page(
                request,
                session,
                staff,
                _fee(session, staff, fee_id),
                now,
                error=exc.detail,
                status_code=exc.status,
                form={"amount": amount, "effective_from": effective_from},
            )
    return _redirect(f"/staff/admin/catalog/fees/{new_id}?done=repriced")


def _parse_tariff_form(item: FeeItem, text: str, reductions: str) -> Tariff:
    """The tariff as typed (README, "How fees are priced": the catalogue's text form)."""
    tariff = parse_tariff(text, reductions)
    if tariff.unit is None and item.unit is not None and tariff.tiers:
        tariff = replace(tariff, unit=item.unit)
    return tariff


def _preview_input(form: dict[str, str]) -> LineInput:
    def whole(name: str) -> int | None:
        text = form[name].strip()
        return _parse_vnd(text) if text else None

    return LineInput(
        quantity=whole("quantity"),
        copies=whole("copies") or 1,
        declared_value=whole("declared_value"),
        reduction=form["reduction"].strip() or None,
    )


@router.post("/catalog/fees/{fee_id}/tariff", response_class=HTMLResponse)
def edit_tariff(
    request: Request,
    fee_id: str,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    tariff: Annotated[str, Form(max_length=2000)] = "",
    reductions: Annotated[str, Form(max_length=4000)] = "",
    effective_from: Annotated[str, Form(max_length=20)] = "",
    quantity: Annotated[str, Form(max_length=20)] = "",
    copies: Annotated[str, Form(max_length=20)] = "",
    declared_value: Annotated[str, Form(max_length=20)] = "",
    reduction: Annotated[str, Form(max_length=32)] = "",
    action: Annotated[str, Form(max_length=10)] = "preview",
) -> Response:
    """Edits a tariff in its text form. ``preview`` prices a sample line by the typed tariff
    (``payments.tariffs.price``, the arithmetic of every order: "3 trang → 5.000 đ") and saves
    nothing; ``save`` (offered with the preview) adds the tariff as a new effective-dated row
    (``reprice_fee(..., tariff=...)``), like a new price: history is never overwritten."""
    now = clock()
    form = {
        "tariff": tariff,
        "reductions": reductions,
        "effective_from": effective_from,
        "quantity": quantity,
        "copies": copies,
        "declared_value": declared_value,
        "reduction": reduction,
    }
    preview: dict[str, Any] | None = None
    try:
        with unit_of_work(engine) as session:
            item = _fee(session, staff, fee_id)
            agency = _agency(session, staff)
            parsed = _parse_tariff_form(item, tariff, reductions)
            if action != "save":
                line = _preview_input(form)
                priced = price(parsed, line)
                preview = {
                    "words": {"vi": describe(parsed, "vi"), "en": describe(parsed, "en")},
                    "amount": priced.amount,
                    "text": {"vi": priced.text_vi, "en": priced.text_en},
                    "headline": headline_price(parsed),
                }
                return _fee_page(
                    request, session, staff, item, now, tariff_form=form, preview=preview
                )
            day = _parse_date(effective_from, "Ngày hiệu lực", "effective from")
            if day < _local_today(agency, now):
                raise InvalidInput(
                    "Biểu mới không được hiệu lực từ một ngày đã qua / "
                    "a new tariff cannot start on a past day"
                )
            old, new = reprice_fee(
                session, agency, item.id, headline_price(parsed), effective_from=day, tariff=parsed
            )
            _audit(
                session,
                staff,
                "fee_tariff_changed",
                "fee_item",
                new.id,
                {
                    "procedure_code": item.procedure.code,
                    "fee_code": item.code,
                    "old_tariff": format_tariff(tariff_of(old)),
                    "new_tariff": format_tariff(parsed),
                    "old_amount": old.amount,
                    "new_amount": new.amount,
                    "effective_from": day.isoformat(),
                    "previous_item": old.id,
                },
                now,
            )
            new_id = new.id
    except ProblemError as exc:
        if exc.status == 404:
            raise
        with unit_of_work(engine) as session:
            return _fee_page(
                request,
                session,
                staff,
                _fee(session, staff, fee_id),
                now,
                error=exc.detail,
                status_code=exc.status,
                tariff_form=form,
            )
    return _redirect(f"/staff/admin/catalog/fees/{new_id}?done=tariff")


# --- API clients and bank-feed keys ---------------------------------------------------


def _keys_context(session: Session, staff: StaffContext) -> dict[str, Any]:
    clients = list(
        session.scalars(
            select(ApiClient)
            .where(ApiClient.agency_id == staff.agency_id)
            .order_by(ApiClient.active.desc(), ApiClient.created_at.desc())
        )
    )
    feeds = list(
        session.scalars(
            select(BankFeedCredential)
            .where(BankFeedCredential.agency_id == staff.agency_id)
            .order_by(BankFeedCredential.active.desc(), BankFeedCredential.created_at.desc())
        )
    )
    return {"clients": clients, "feeds": feeds, "providers": PROVIDERS, "error": None, "form": {}}


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request, staff: AdminPage, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        ctx = _keys_context(session, staff)
        ctx["done"] = request.query_params.get("done")
        return render(request, "admin_keys.html", ctx)


def _keys_refusal(
    request: Request,
    engine: EngineDep,
    staff: StaffContext,
    exc: ProblemError,
    form: dict[str, str],
) -> Response:
    with unit_of_work(engine) as session:
        ctx = _keys_context(session, staff)
    ctx["error"] = exc.detail
    ctx["form"] = form
    return render(request, "admin_keys.html", ctx, status_code=exc.status)


@router.post("/keys/clients", response_class=HTMLResponse)
def create_client(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
    name: Annotated[str, Form(max_length=255)] = "",
    callback_url: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """``add_client``, as ``motcua client add``; the key and callback secret are in this
    response only (stored: the key's SHA-256 and prefix; the callback secret, to sign with)."""
    now = clock()
    try:
        with unit_of_work(engine) as session:
            issued = add_client(
                session,
                _agency(session, staff),
                name,
                callback_url.strip() or None,
                allow_loopback=settings.profile is Profile.EMBEDDED,
            )
            _audit(
                session,
                staff,
                "api_client_created",
                "api_client",
                issued.client.id,
                {
                    "name": issued.client.name,
                    "key_prefix": issued.client.key_prefix,
                    "callback_url": issued.client.callback_url,
                },
                now,
            )
            shown = {
                "id": issued.client.id,
                "name": issued.client.name,
                "key_prefix": issued.client.key_prefix,
            }
            secrets_ = [("api_key", issued.api_key), ("callback_secret", issued.callback_secret)]
    except ProblemError as exc:
        return _keys_refusal(
            request, engine, staff, exc, {"name": name, "callback_url": callback_url}
        )
    return render(
        request, "admin_secret.html", {"kind": "api_client", "account": shown, "secrets": secrets_}
    )


@router.post("/keys/clients/{client_id}/revoke", response_class=HTMLResponse)
def revoke_client(client_id: str, staff: AdminPost, engine: EngineDep, clock: ClockDep) -> Response:
    """The key stops working within the API's 30 s key cache (``api.deps``)."""
    now = clock()
    with unit_of_work(engine) as session:
        client = ensure_same_agency(staff, session.get(ApiClient, client_id[:64]))
        if client.active:
            client.active = False
            _audit(
                session,
                staff,
                "api_client_revoked",
                "api_client",
                client.id,
                {"name": client.name, "key_prefix": client.key_prefix},
                now,
            )
    return _redirect("/staff/admin/keys?done=client_revoked")


@router.post("/keys/feeds", response_class=HTMLResponse)
def create_feed(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    clock: ClockDep,
    provider: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """``add_bank_feed``, as ``motcua bank-feed add``; the key is in this response only."""
    now = clock()
    try:
        with unit_of_work(engine) as session:
            cred, key = add_bank_feed(session, _agency(session, staff), provider.strip())
            _audit(
                session,
                staff,
                "bank_feed_created",
                "bank_feed",
                cred.id,
                {"provider": cred.provider, "key_prefix": cred.key_prefix},
                now,
            )
            shown = {"id": cred.id, "name": cred.provider, "key_prefix": cred.key_prefix}
    except ProblemError as exc:
        return _keys_refusal(request, engine, staff, exc, {"provider": provider})
    return render(
        request,
        "admin_secret.html",
        {"kind": "bank_feed", "account": shown, "secrets": [("feed_key", key)]},
    )


@router.post("/keys/feeds/{feed_id}/revoke", response_class=HTMLResponse)
def revoke_feed(feed_id: str, staff: AdminPost, engine: EngineDep, clock: ClockDep) -> Response:
    now = clock()
    with unit_of_work(engine) as session:
        cred = ensure_same_agency(staff, session.get(BankFeedCredential, feed_id[:64]))
        if cred.active:
            cred.active = False
            _audit(
                session,
                staff,
                "bank_feed_revoked",
                "bank_feed",
                cred.id,
                {"provider": cred.provider, "key_prefix": cred.key_prefix},
                now,
            )
    return _redirect("/staff/admin/keys?done=feed_revoked")


# --- Signing certificate --------------------------------------------------------------


@dataclass(frozen=True)
class CertificateStatus:
    """What an admin needs to know about the agency's signing certificate, with one verdict.

    ``level`` is ``ok``, ``warn`` (development certificate, or ending within 30 days) or
    ``bad`` (missing, unreadable, expired, not yet valid, wrong MST, unusable key usage).
    ``problems`` are (Vietnamese, English) sentences, worst first.
    """

    configured: bool
    level: str
    problems: tuple[tuple[str, str], ...]
    key_kind: str = ""
    subject: str = ""
    issuer: str = ""
    serial: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    days_left: int | None = None
    tax_code: str | None = None
    agency_tax_code: str = ""
    tax_code_matches: bool = False
    development: bool = False
    key_usage_ok: bool = False


def _describe(
    cert: x509.Certificate, agency: Agency, now: datetime, kind: str
) -> CertificateStatus:
    """The issuer's own assessment (:func:`signing.certs.assess_certificate`), shown whole."""
    assessment = assess_certificate(cert, agency.tax_code, now)
    return CertificateStatus(
        configured=True,
        level=assessment.level,
        problems=tuple((f.message_vi, f.message_en) for f in assessment.findings),
        key_kind=kind,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        days_left=assessment.days_left,
        tax_code=assessment.tax_code,
        agency_tax_code=agency.tax_code,
        tax_code_matches=assessment.tax_code_matches,
        development=assessment.development,
        key_usage_ok=assessment.key_usage_ok,
    )


def certificate_status(agency: Agency, now: datetime) -> CertificateStatus:
    """Reads the certificate behind the agency's key reference; never raises for a bad key.

    The key reference itself is not shown: it may name a token or a password variable.
    """
    ref = agency.signing_key_ref
    if not ref:
        return CertificateStatus(
            configured=False,
            level="bad",
            agency_tax_code=agency.tax_code,
            problems=(
                (
                    "Đơn vị chưa có khóa ký số: biên lai không thể được ký",
                    "The agency has no signing key: receipts cannot be signed",
                ),
            ),
        )
    kind = ref.split(":", 1)[0].lower()
    try:
        cert = load_key_source(ref).certificate
    except ProblemError as exc:
        message = getattr(exc, "message_vi", exc.detail)
        return CertificateStatus(
            configured=True,
            level="bad",
            key_kind=kind,
            agency_tax_code=agency.tax_code,
            problems=(
                (
                    f"Không đọc được chứng thư số: {message}",
                    f"Cannot read the certificate: {exc.detail}",
                ),
            ),
        )
    return _describe(cert, agency, now, kind)


@router.get("/certificate", response_class=HTMLResponse)
def certificate_page(
    request: Request, staff: AdminPage, engine: EngineDep, clock: ClockDep
) -> Response:
    with unit_of_work(engine) as session:
        agency = _agency(session, staff)
        status = certificate_status(agency, clock())
        return render(
            request,
            "admin_certificate.html",
            {"agency": agency, "cert": status, "warning_days": EXPIRY_WARNING_DAYS},
        )
