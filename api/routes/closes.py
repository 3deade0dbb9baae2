"""The daily close and revenue reports over HTTP (the accountant's "close the day" button).

These are staff actions: every route needs a signed-in member with the ``accountant`` role,
scoped to that member's agency (another agency's break or correction answers 404, as a missing
one does), and state-changing routes also need the session's CSRF token. The person recorded
on a close, a correction or an approval is the signed-in username, never a body field, so the
four-eyes rule compares two real accounts. The one-stop client's API key is not accepted here.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import EngineDep, SettingsDep, unit_of_work
from api.downloads import revenue_export
from api.staff.deps import AccountantCsrfDep, AccountantDep, StaffContext
from payments.models import Agency
from payments.usecases.follow_ups import run_after_commit
from reconciliation.close import latest_close
from reconciliation.corrections import ACTIONS
from reconciliation.errors import BreakNotFound
from reconciliation.presenters import breaks_of, close_json, correction_json
from reconciliation.usecases import EXPORT_TYPES, run_close
from reconciliation.usecases import approve as approve_correction
from reconciliation.usecases import request as request_correction

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["daily close"])


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


def _agency(session: Session, staff: StaffContext) -> Agency:
    agency = session.get(Agency, staff.agency_id)
    assert agency is not None  # a session's account always belongs to an agency
    return agency


@router.post("/closes", summary="Close a business day: send the summary, reconcile, sign")
def run(
    body: CloseIn, staff: AccountantCsrfDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        report = run_close(session, settings, staff.agency_code, body.date, staff.username)
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
        c, follow_ups = request_correction(
            session,
            break_id,
            agency_id=staff.agency_id,
            action=body.action,
            reason=body.reason,
            actor=staff.username,
            params=body.params,
        )
        result = correction_json(c)
    run_after_commit(follow_ups)
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
        c, follow_ups = approve_correction(
            session, correction_id, agency_id=staff.agency_id, approver=staff.username
        )
        result = correction_json(c)
    run_after_commit(follow_ups)
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
