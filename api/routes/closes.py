"""The daily close and revenue reports over HTTP (the accountant's "close the day" button).

These are staff actions: every route needs a signed-in member with the ``accountant`` role,
scoped to that member's agency (another agency's break or correction answers 404, as a missing
one does), and state-changing routes also need the session's CSRF token. The person recorded
on a close, a correction or an approval is the signed-in username, never a body field, so the
four-eyes rule compares two real accounts. The one-stop client's API key is not accepted here.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.staff.deps import StaffContext, require_csrf, require_role
from api.staff.models import Role
from payments.models import Agency
from payments.presenters import iso
from reconciliation.close import latest_close
from reconciliation.corrections import ACTIONS, approve_correction, request_correction
from reconciliation.day import BusinessDay
from reconciliation.errors import BreakNotFound, DayInFuture
from reconciliation.exports import revenue_csv, revenue_pdf, revenue_xlsx
from reconciliation.models import Correction, DailyClose, ReconBreak
from reconciliation.revenue import revenue_for
from reconciliation.service import close_day
from settings.clock import utcnow
from settings.worker import dispatch
from signing.keys import load_key_source

__all__ = [
    "EXPORT_TYPES",
    "AccountantCsrfDep",
    "AccountantDep",
    "attachment",
    "breaks_of",
    "close_json",
    "correction_json",
    "issue_after_correction",
    "revenue_export",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["daily close"])

AccountantDep = Annotated[StaffContext, Depends(require_role(Role.ACCOUNTANT))]
"""Reading the close, breaks and reports: a signed-in accountant of the agency."""


async def _accountant_csrf(request: Request, staff: AccountantDep) -> StaffContext:
    return await require_csrf(request, staff)


AccountantCsrfDep = Annotated[StaffContext, Depends(_accountant_csrf)]
"""Changing anything (close, correct, approve, resolve): an accountant plus the CSRF token."""

EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "xml": "application/xml",
}


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(pattern="^(" + "|".join(ACTIONS) + ")$")
    reason: str = Field(min_length=5, max_length=500)
    params: dict[str, Any] = Field(default_factory=dict)


class ApproveIn(BaseModel):
    """Nothing to say: the approver is whoever is signed in."""

    model_config = ConfigDict(extra="forbid")


def attachment(name: str, fallback: str) -> str:
    """``Content-Disposition`` with the Vietnamese name (RFC 6266 ``filename*``) and an ASCII
    fallback for old clients, so a saved file keeps its diacritics where the browser can."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in fallback)
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(name, safe='')}"


def _break_json(b: ReconBreak, now: datetime) -> dict[str, Any]:
    return {
        "id": b.id,
        "kind": b.kind,
        "ref": b.ref,
        "amount": b.amount,
        "detail": b.detail,
        "state": b.state,
        "owner": b.owner,
        "age_hours": round((now - b.first_seen_at).total_seconds() / 3600, 1),
        "first_seen_at": iso(b.first_seen_at),
        "resolved_at": iso(b.resolved_at),
    }


def close_json(close: DailyClose, agency: Agency, breaks: list[ReconBreak]) -> dict[str, Any]:
    bday = BusinessDay(close.business_day, ZoneInfo(agency.time_zone))
    now = utcnow()
    return {
        "object": "daily_close",
        "business_day": close.business_day.isoformat(),
        "window": {
            "local": [bday.start_local.isoformat(), bday.end_local.isoformat()],
            "utc": [iso(bday.start_utc), iso(bday.end_utc)],
            "described": bday.describe(),
        },
        "version": close.version,
        "status": close.status,
        "watermark": iso(close.watermark),
        "reopened_at": iso(close.reopened_at),
        "locked": close.locked,
        "actor": close.actor,
        "totals": close.totals,
        "diff": close.diff,
        "breaks": [_break_json(b, now) for b in breaks],
        "signed": close.document is not None,
    }


def breaks_of(session: Session, agency_id: str, day: date) -> list[ReconBreak]:
    """Every break ever found for the day (open first by state name order), for one agency."""
    return list(
        session.scalars(
            select(ReconBreak)
            .where(ReconBreak.agency_id == agency_id, ReconBreak.business_day == day)
            .order_by(ReconBreak.state, ReconBreak.kind, ReconBreak.ref)
        )
    )


def correction_json(c: Correction) -> dict[str, Any]:
    return {
        "id": c.id,
        "break_id": c.break_id,
        "action": c.action,
        "moves_money": c.moves_money,
        "state": c.state,
        "reason": c.reason,
        "requested_by": c.requested_by,
        "requested_at": iso(c.requested_at),
        "approved_by": c.approved_by,
        "approved_at": iso(c.approved_at),
        "outcome": c.outcome,
    }


def issue_after_correction(action: str, state: str, params: dict[str, Any]) -> None:
    """A credit matched to an order by an approved correction makes the order paid; its receipt
    is issued like any payment's (after the commit, by the worker), or the next close would
    report a payment without a receipt."""
    if action == "match_to_order" and state == "applied" and params.get("order_id"):
        from payments.tasks import issue_receipt

        dispatch(issue_receipt, str(params["order_id"]))


def revenue_export(
    session: Session, agency: Agency, date_from: date, last: date, fmt: str
) -> Response | dict[str, Any]:
    """The revenue report of agency-local days ``date_from..last`` as JSON or a download."""
    if last < date_from:
        raise DayInFuture("'to' is before 'from'", code="invalid_range", status=422)
    if (last - date_from).days > 366:
        raise DayInFuture("a report covers at most 367 days", code="invalid_range", status=422)
    zone = ZoneInfo(agency.time_zone)
    start = datetime.combine(date_from, time(0), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
    report = revenue_for(session, agency.id, start, end)
    period = str(date_from) if last == date_from else f"{date_from} đến {last}"
    name = f"Báo cáo thu phí lệ phí {agency.code} {period}"
    fallback = f"doanh-thu-{agency.code}-{date_from}-{last}"
    if fmt == "csv":
        body = revenue_csv(report)
    elif fmt == "xlsx":
        body = revenue_xlsx(report, agency_name=agency.name)
    elif fmt == "pdf":
        if not agency.signing_key_ref:
            raise BreakNotFound("the agency has no signing key", code="no_signing_key", status=503)
        body = revenue_pdf(
            report,
            agency_name=agency.name,
            tax_code=agency.tax_code,
            key=load_key_source(agency.signing_key_ref),
            zone=zone,
        )
    else:
        return report.as_json()
    return Response(
        body,
        media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": attachment(f"{name}.{fmt}", f"{fallback}.{fmt}")},
    )


def _agency(session: Session, staff: StaffContext) -> Agency:
    agency = session.get(Agency, staff.agency_id)
    assert agency is not None  # a session's account always belongs to an agency
    return agency


@router.post("/closes", summary="Close a business day: send the summary, reconcile, sign")
def run(
    body: CloseIn, staff: AccountantCsrfDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        report = close_day(session, settings, staff.agency_code, body.date, actor=staff.username)
        return close_json(
            report.result.close, report.agency, breaks_of(session, report.agency.id, body.date)
        )


@router.get("/closes/{day}", summary="The latest close of a day, with every break and its state")
def read(day: date, staff: AccountantDep, engine: EngineDep) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        close = latest_close(session, staff.agency_id, day)
        if close is None:
            raise BreakNotFound(f"{day} has not been closed", code="close_not_found")
        return close_json(close, _agency(session, staff), breaks_of(session, staff.agency_id, day))


@router.get(
    "/closes/{day}/document", summary="The signed close report (XML)", response_class=Response
)
def document(day: date, staff: AccountantDep, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        close = latest_close(session, staff.agency_id, day)
        if close is None or close.document is None:
            raise BreakNotFound(f"no signed close for {day}", code="close_not_found")
        return Response(close.document, media_type="application/xml")


@router.post(
    "/breaks/{break_id}/corrections", summary="Correct a break (audited; money needs 4 eyes)"
)
def correct(
    break_id: str, body: CorrectionIn, staff: AccountantCsrfDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        c = request_correction(
            session,
            break_id,
            agency_id=staff.agency_id,
            action=body.action,
            reason=body.reason,
            actor=staff.username,
            params=body.params,
        )
        result = correction_json(c)
        params = dict(c.params)
    issue_after_correction(result["action"], result["state"], params)
    return result


@router.post(
    "/corrections/{correction_id}/approve",
    summary="A second accountant (not the proposer) approves a correction",
)
def approve(
    correction_id: str,
    staff: AccountantCsrfDep,
    engine: EngineDep,
    body: ApproveIn | None = None,
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        c = approve_correction(
            session, correction_id, agency_id=staff.agency_id, approver=staff.username
        )
        result = correction_json(c)
        params = dict(c.params)
    issue_after_correction(result["action"], result["state"], params)
    return result


@router.get(
    "/reports/revenue",
    summary="Revenue for a day or range (agency-local dates, inclusive): JSON, CSV, XLSX or PDF",
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                EXPORT_TYPES["xlsx"]: {},
                "application/pdf": {},
            }
        }
    },
)
def revenue(
    staff: AccountantDep,
    engine: EngineDep,
    date_from: Annotated[date, Query(alias="from")],
    date_to: Annotated[date | None, Query(alias="to")] = None,
    fmt: Annotated[str, Query(alias="format", pattern="^(json|csv|xlsx|pdf)$")] = "json",
) -> Any:
    with unit_of_work(engine) as session:
        return revenue_export(
            session, _agency(session, staff), date_from, date_to or date_from, fmt
        )
