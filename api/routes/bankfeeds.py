"""Webhooks from bank-feed aggregators: authenticate, journal raw, reply fast, process later."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sqlalchemy import Engine

from api.deps import EngineDep, unit_of_work
from payments.bankfeeds import journal_sepay
from payments.credentials import authenticate_bank_feed
from payments.models import Agency
from settings.worker import dispatch

router = APIRouter(prefix="/api/v1/bank-feeds", tags=["bank feeds"])


def receive_sepay(engine: Engine, agency_id: str, raw: bytes) -> tuple[int, bool]:
    """Journals one SePay notification (committed before we answer) and queues processing."""
    with unit_of_work(engine) as session:
        agency = session.get(Agency, agency_id)
        assert agency is not None
        event, created = journal_sepay(session, agency, raw)
        event_id, pending = event.id, event.processed_at is None
    if pending:
        from payments.tasks import process_bank_event

        dispatch(process_bank_event, event_id)
    return event_id, created


@router.post("/sepay", summary="SePay webhook (Authorization: Apikey <key>)")
async def sepay(
    request: Request,
    engine: EngineDep,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    scheme, _, key = (authorization or "").partition(" ")
    with unit_of_work(engine) as session:
        cred = authenticate_bank_feed(
            session, "sepay", key.strip() if scheme.lower() == "apikey" else None
        )
        agency_id = cred.agency_id
    raw = await request.body()
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(receive_sepay, engine, agency_id, raw)
    return {"success": True}
