"""The daily close and revenue reports over HTTP (the accountant's "close the day" button).

UNFINISHED (issue 6): staff sign-in does not exist yet, so these routes take the one-stop
client's key, scoped to its agency, and record the named actor.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClientDep, EngineDep, SettingsDep, unit_of_work
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
from signing.keys import load_key_source

router = APIRouter(prefix="/api/v1", tags=["daily close"])


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    actor: str = Field(min_length=1, max_length=255)


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(pattern="^(" + "|".join(ACTIONS) + ")$")
    reason: str = Field(min_length=5, max_length=500)
    actor: str = Field(min_length=1, max_length=255)
    params: dict[str, Any] = Field(default_factory=dict)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approver: str = Field(min_length=1, max_length=255)


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


def _close_json(close: DailyClose, agency: Agency, breaks: list[ReconBreak]) -> dict[str, Any]:
    bday = BusinessDay(close.business_day, ZoneInfo(agency.time_zone))
    now = datetime.now(ZoneInfo("UTC"))
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


def _breaks(session: Any, agency_id: str, day: date) -> list[ReconBreak]:
    from sqlalchemy import select

    return list(
        session.scalars(
            select(ReconBreak)
            .where(ReconBreak.agency_id == agency_id, ReconBreak.business_day == day)
            .order_by(ReconBreak.state, ReconBreak.kind, ReconBreak.ref)
        )
    )


@router.post("/closes", summary="Close a business day: send the summary, reconcile, sign")
def run(
    body: CloseIn, client: ClientDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        report = close_day(session, settings, client.agency.code, body.date, actor=body.actor)
        return _close_json(
            report.result.close, report.agency, _breaks(session, report.agency.id, body.date)
        )


@router.get("/closes/{day}", summary="The latest close of a day, with every break and its state")
def read(day: date, client: ClientDep, engine: EngineDep) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        close = latest_close(session, client.agency_id, day)
        if close is None:
            raise BreakNotFound(f"{day} has not been closed", code="close_not_found")
        agency = session.get(Agency, client.agency_id)
        assert agency is not None
        return _close_json(close, agency, _breaks(session, client.agency_id, day))


@router.get(
    "/closes/{day}/document", summary="The signed close report (XML)", response_class=Response
)
def document(day: date, client: ClientDep, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        close = latest_close(session, client.agency_id, day)
        if close is None or close.document is None:
            raise BreakNotFound(f"no signed close for {day}", code="close_not_found")
        return Response(close.document, media_type="application/xml")


@router.post(
    "/breaks/{break_id}/corrections", summary="Correct a break (audited; money needs 4 eyes)"
)
def correct(
    break_id: str, body: CorrectionIn, client: ClientDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        c = request_correction(
            session,
            break_id,
            agency_id=client.agency_id,
            action=body.action,
            reason=body.reason,
            actor=body.actor,
            params=body.params,
        )
        return _correction_json(c)


@router.post("/corrections/{correction_id}/approve", summary="Second person approves a correction")
def approve(
    correction_id: str, body: ApproveIn, client: ClientDep, engine: EngineDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        c = approve_correction(
            session, correction_id, agency_id=client.agency_id, approver=body.approver
        )
        return _correction_json(c)


def _correction_json(c: Correction) -> dict[str, Any]:
    return {
        "id": c.id,
        "break_id": c.break_id,
        "action": c.action,
        "moves_money": c.moves_money,
        "state": c.state,
        "reason": c.reason,
        "requested_by": c.requested_by,
        "approved_by": c.approved_by,
        "outcome": c.outcome,
    }


@router.get(
    "/reports/revenue",
    summary="Revenue for a day or range (agency-local dates, inclusive): JSON, CSV, XLSX or PDF",
    responses={200: {"content": {"application/json": {}, "text/csv": {}, "application/pdf": {}}}},
)
def revenue(
    client: ClientDep,
    engine: EngineDep,
    date_from: Annotated[date, Query(alias="from")],
    date_to: Annotated[date | None, Query(alias="to")] = None,
    fmt: Annotated[str, Query(alias="format", pattern="^(json|csv|xlsx|pdf)$")] = "json",
) -> Any:
    last = date_to or date_from
    if last < date_from:
        raise DayInFuture("'to' is before 'from'", code="invalid_range", status=422)
    with unit_of_work(engine) as session:
        agency = session.get(Agency, client.agency_id)
        assert agency is not None
        zone = ZoneInfo(agency.time_zone)
        start = datetime.combine(date_from, time(0), tzinfo=zone)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
        report = revenue_for(session, agency.id, start, end)
        name = f"doanh-thu-{agency.code}-{date_from}-{last}"
        if fmt == "csv":
            return Response(
                revenue_csv(report),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        if fmt == "xlsx":
            return Response(
                revenue_xlsx(report, agency_name=agency.name),
                media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
            )
        if fmt == "pdf":
            if not agency.signing_key_ref:
                raise BreakNotFound(
                    "the agency has no signing key", code="no_signing_key", status=503
                )
            pdf = revenue_pdf(
                report,
                agency_name=agency.name,
                tax_code=agency.tax_code,
                key=load_key_source(agency.signing_key_ref),
                zone=zone,
            )
            return Response(
                pdf,
                media_type="application/pdf",
                headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
            )
        return report.as_json()
