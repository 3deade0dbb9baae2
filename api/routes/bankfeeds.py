"""Webhooks from bank-feed aggregators: authenticate, journal raw, reply fast, process later."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, unit_of_work
from payments.bankfeeds import journal_once, parse_sepay
from payments.casso import journal_casso, verify_signature
from payments.credentials import authenticate_bank_feed
from payments.errors import Unauthorized
from payments.models import Agency, BankEvent, BankFeedCredential
from payments.order_intake import OrderIntake
from payments.usecases.follow_ups import ProcessBankEvent, bank_event_journaled, run_after_commit
from settings.db import utcnow

router = APIRouter(prefix="/api/v1/bank-feeds", tags=["bank feeds"])


def receive_sepay(engine: Engine, agency_id: str, raw: bytes) -> tuple[int, bool]:
    """Journals one SePay notification (committed before we answer) and queues processing.

    One statement in its own short transaction (:func:`payments.bankfeeds.journal_once`);
    the body is validated first, so a malformed one is refused and nothing is written.
    """
    payload = parse_sepay(raw)
    with engine.begin() as connection:
        event_id, pending, created = journal_once(
            connection, agency_id, "sepay", str(payload.id), raw, utcnow()
        )
    if pending:
        run_after_commit((ProcessBankEvent(event_id),))
    return event_id, created


def _receive(
    engine: Engine,
    agency_id: str,
    raw: bytes,
    journal: Callable[[Session, Agency, bytes], tuple[BankEvent, bool]],
) -> tuple[int, bool]:
    with unit_of_work(engine) as session:
        agency = session.get(Agency, agency_id)
        assert agency is not None
        event, created = journal(session, agency, raw)
        event_id, pending = event.id, event.processed_at is None
    if pending:
        run_after_commit((ProcessBankEvent(event_id),))
    return event_id, created


def sepay_key(authorization: str | None) -> str | None:
    """The key in SePay's ``Authorization`` header, or ``None`` for any other shape.

    SePay's dashboard documents ``Apikey <key>``; its own client library's example sends
    ``Bearer Apikey <key>`` (issue 18). Both are accepted, and nothing else: no bare key, no
    ``Bearer <key>`` without ``Apikey``, no doubled or trailing words. A key never contains
    whitespace (``token_urlsafe``), so a header with more words than these is refused.
    """
    words = (authorization or "").split()
    if len(words) == 3 and words[0].lower() == "bearer" and words[1].lower() == "apikey":
        return words[2]
    if len(words) == 2 and words[0].lower() == "apikey":
        return words[1]
    return None


def _sepay_agency(engine: Engine, authorization: str | None) -> str:
    with unit_of_work(engine) as session:
        cred = authenticate_bank_feed(session, "sepay", sepay_key(authorization))
        return cred.agency_id


_KEY_TTL_S = 30.0
"""As for API clients (api.deps): a verified key is trusted this long without asking the
database; a revoked key stops working within this time. Failures are never cached."""
_key_cache: dict[tuple[int, str], tuple[float, str]] = {}


async def _sepay_agency_cached(engine: Engine, authorization: str | None) -> str:
    cache_key = (id(engine), hashlib.sha256((authorization or "").encode()).hexdigest())
    now = time.monotonic()
    hit = _key_cache.get(cache_key)
    if hit is not None and now - hit[0] < _KEY_TTL_S:
        return hit[1]
    agency_id = await run_in_threadpool(_sepay_agency, engine, authorization)
    if len(_key_cache) > 10_000:
        _key_cache.clear()
    _key_cache[cache_key] = (now, agency_id)
    return agency_id


@router.post(
    "/sepay", summary="SePay webhook (Authorization: Apikey <key>, or Bearer Apikey <key>)"
)
async def sepay(
    request: Request,
    engine: EngineDep,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Journaled (committed) before we answer, then processed by the worker.

    On PostgreSQL the journal is one statement on the event loop
    (:meth:`payments.order_intake.OrderIntake.journal_bank_event`); on SQLite the ORM path
    runs in the thread pool, so a slow connection never stalls the event loop.
    """
    agency_id = await _sepay_agency_cached(engine, authorization)
    raw = await request.body()
    intake: OrderIntake | None = getattr(request.app.state, "order_intake", None)
    if intake is None:
        await run_in_threadpool(receive_sepay, engine, agency_id, raw)
        return {"success": True}
    payload = parse_sepay(raw)
    event_id, pending, _created = await intake.journal_bank_event(
        agency_id, "sepay", str(payload.id), raw, utcnow()
    )
    if pending:
        await bank_event_journaled(event_id)
    return {"success": True}


def _casso_agency(engine: Engine, header: str | None, raw: bytes) -> str:
    """The agency whose Casso secret signed this body (Casso's webhook names no account key)."""
    now = utcnow()
    with unit_of_work(engine) as session:
        creds = session.scalars(
            select(BankFeedCredential).where(
                BankFeedCredential.provider == "casso", BankFeedCredential.active.is_(True)
            )
        ).all()
        last: Exception = Unauthorized("no Casso credential is configured")
        for cred in creds:
            try:
                verify_signature(header, raw, cred.secret or "", now=now)
            except Unauthorized as exc:
                last = exc
                continue
            return cred.agency_id
    raise last


@router.post("/casso", summary="Casso v2 webhook (X-Casso-Signature: t=...,v1=... HMAC-SHA512)")
async def casso(
    request: Request,
    engine: EngineDep,
    x_casso_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    raw = await request.body()
    agency_id = await run_in_threadpool(_casso_agency, engine, x_casso_signature, raw)
    await run_in_threadpool(_receive, engine, agency_id, raw, journal_casso)
    return {"error": 0, "success": True}
