"""Pages: one-stop systems that speak PP-DVCQG, on the agency admin (issue 15).

The admin sees the agency's partners (code, dialects, CONFIRM endpoint, IP allow-list, clock
skew, code maps, key prefix), adds one (the secret key is shown once, in the answer to that
POST, as ``motcua onestop-partner add`` prints it), revokes one, and follows every CONFIRM:
its state, attempts and the partner's answers (the outbox's delivery log).

Nothing is decided here: partners are ``payments.onestop_partners``, deliveries are the
callback outbox (``payments.callbacks``). Scoped to the admin's agency (another agency's
partner or delivery is 404), CSRF-checked, every change audited in ``staff_admin_events``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.pages.web import page_staff, page_staff_csrf
from api.rendering import render
from api.staff.deps import ClockDep, StaffContext, ensure_same_agency
from api.staff.models import Role
from api.staff.sessions import record_admin_event
from payments.callback_models import CallbackEvent
from payments.callbacks import PP_CONFIRM, delivery_log
from payments.errors import NotFound
from payments.models import Agency
from payments.onestop_models import OnestopMessage, OnestopPartner
from payments.onestop_partners import (
    PartnerInput,
    add_partner,
    agency_partners,
    confirm_deliveries,
    parse_ip_list,
    parse_map,
)
from payments.onestop_pp import BILL_DIALECTS, REPLY_DIALECTS
from settings.config import Profile
from settings.errors import ProblemError

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/staff/admin/onestop", tags=["pages"], include_in_schema=False)

AdminPage = Annotated[StaffContext, Depends(page_staff(Role.ADMIN))]
AdminPost = Annotated[StaffContext, Depends(page_staff_csrf(Role.ADMIN))]


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _audit(
    session: Session,
    staff: StaffContext,
    action: str,
    partner: OnestopPartner,
    now: datetime,
) -> None:
    detail = {
        "code": partner.code,
        "key_prefix": partner.key_prefix,
        "confirm_url": partner.confirm_url,
        "reply_dialect": partner.reply_dialect,
        "bill_dialect": partner.bill_dialect,
    }
    record_admin_event(
        session,
        agency_id=staff.agency_id,
        actor_id=staff.staff_id,
        actor_username=staff.username,
        action=action,
        target_kind="onestop_partner",
        target_id=partner.id,
        detail=detail,
        now=now,
    )
    log.info(
        "admin change",
        extra={
            "event": "admin_change",
            "action": action,
            "target_kind": "onestop_partner",
            "target_id": partner.id,
            "actor": staff.username,
            "agency": staff.agency_code,
        },
    )


def _context(session: Session, staff: StaffContext) -> dict[str, Any]:
    refused = session.scalar(
        select(func.count())
        .select_from(OnestopMessage)
        .where(OnestopMessage.agency_id == staff.agency_id, OnestopMessage.outcome == "refused")
    )
    recent = list(
        session.scalars(
            select(OnestopMessage)
            .where(OnestopMessage.agency_id == staff.agency_id)
            .order_by(OnestopMessage.id.desc())
            .limit(20)
        )
    )
    return {
        "partners": agency_partners(session, staff.agency_id),
        "deliveries": confirm_deliveries(session, staff.agency_id),
        "messages": recent,
        "refused_count": int(refused or 0),
        "reply_dialects": REPLY_DIALECTS,
        "bill_dialects": BILL_DIALECTS,
        "form": {},
        "error": None,
        "done": None,
    }


@router.get("", response_class=HTMLResponse)
def onestop_page(request: Request, staff: AdminPage, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        ctx = _context(session, staff)
        ctx["done"] = request.query_params.get("done")
        return render(request, "admin_onestop_partners.html", ctx)


@router.post("/partners", response_class=HTMLResponse)
def create_partner(
    request: Request,
    staff: AdminPost,
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
    code: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=255)] = "",
    confirm_url: Annotated[str, Form(max_length=1000)] = "",
    reply_dialect: Annotated[str, Form(max_length=16)] = "maloi",
    bill_dialect: Annotated[str, Form(max_length=16)] = "url",
    allowed_ips: Annotated[str, Form(max_length=2000)] = "",
    clock_skew_seconds: Annotated[int, Form(ge=30, le=30 * 86_400)] = 300,
    fee_map: Annotated[str, Form(max_length=5000)] = "",
    procedure_map: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    """``add_partner``, as ``motcua onestop-partner add``; the key is in this answer only."""
    now = clock()
    form = {
        "code": code,
        "name": name,
        "confirm_url": confirm_url,
        "reply_dialect": reply_dialect,
        "bill_dialect": bill_dialect,
        "allowed_ips": allowed_ips,
        "clock_skew_seconds": clock_skew_seconds,
        "fee_map": fee_map,
        "procedure_map": procedure_map,
    }
    try:
        with unit_of_work(engine) as session:
            agency = session.get(Agency, staff.agency_id)
            if agency is None:
                raise NotFound("no agency")
            issued = add_partner(
                session,
                agency,
                PartnerInput(
                    code=code,
                    confirm_url=confirm_url.strip(),
                    name=name,
                    reply_dialect=reply_dialect,
                    bill_dialect=bill_dialect,
                    allowed_ips=parse_ip_list(allowed_ips),
                    clock_skew_seconds=clock_skew_seconds,
                    fee_map=parse_map(fee_map, "fee map"),
                    procedure_map=parse_map(procedure_map, "procedure map"),
                ),
                allow_loopback=settings.profile is Profile.EMBEDDED,
            )
            _audit(session, staff, "onestop_partner_created", issued.partner, now)
            shown = {
                "id": issued.partner.id,
                "code": issued.partner.code,
                "name": issued.partner.name,
                "key_prefix": issued.partner.key_prefix,
            }
    except ProblemError as exc:
        with unit_of_work(engine) as session:
            ctx = _context(session, staff)
        ctx["form"] = form
        ctx["error"] = exc.detail or exc.title_vi
        return render(request, "admin_onestop_partners.html", ctx, status_code=exc.status)
    return render(request, "admin_onestop_secret.html", {"partner": shown, "secret": issued.secret})


@router.post("/partners/{partner_id}/revoke", response_class=HTMLResponse)
def revoke_partner(
    partner_id: str, staff: AdminPost, engine: EngineDep, clock: ClockDep
) -> Response:
    """Messages with its code are refused from the next one on; pending CONFIRMs fail."""
    now = clock()
    with unit_of_work(engine) as session:
        partner = ensure_same_agency(staff, session.get(OnestopPartner, partner_id[:64]))
        if partner.active:
            partner.active = False
            _audit(session, staff, "onestop_partner_revoked", partner, now)
    return _redirect("/staff/admin/onestop?done=partner_revoked")


@router.get("/deliveries/{delivery_id}", response_class=HTMLResponse)
def delivery_page(
    delivery_id: str, request: Request, staff: AdminPage, engine: EngineDep
) -> Response:
    """One CONFIRM: its body (what the partner was sent) and every attempt with the answer."""
    with unit_of_work(engine) as session:
        event = session.get(CallbackEvent, delivery_id[:64])
        partner = (
            session.get(OnestopPartner, event.partner_id)
            if event is not None and event.kind == PP_CONFIRM and event.partner_id
            else None
        )
        partner = ensure_same_agency(staff, partner)
        assert event is not None
        return render(
            request,
            "admin_onestop_delivery.html",
            {
                "event": event,
                "partner": partner,
                "body": event.body.decode("utf-8", errors="replace"),
                "attempts": delivery_log(session, event.id),
            },
        )
