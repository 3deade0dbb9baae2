"""Payment orders for one-stop clients (contract.md)."""

from __future__ import annotations

import weakref
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import ClientDep, EngineDep, SettingsDep, unit_of_work
from api.idempotent import request_digest, response_of
from api.schemas import CashIn, PaymentOrderIn
from einvoice.models import Receipt
from payments import idempotency, vietqr
from payments.credentials import check_callback_url
from payments.models import Agency, ApiClient, PaymentOrder
from payments.order_draft import OrderRequest
from payments.order_intake import AgencySnapshot, OrderIntake
from payments.orders import get_order, list_orders
from payments.presenters import order_json
from payments.usecases.follow_ups import run_after_commit
from payments.usecases.orders import (
    Answer,
    TakeCash,
    issue_at_once,
    place_order,
    run_once,
    take_cash,
)
from payments.usecases.orders import cancel as cancel_order
from settings.config import Profile, Settings
from settings.db import utcnow

router = APIRouter(prefix="/api/v1/payment-orders", tags=["payment orders"])

SCOPE_CREATE = "payment_orders.create"


def _receipt(session: Any, order: PaymentOrder) -> Receipt | None:
    return session.get(Receipt, order.receipt_id) if order.receipt_id else None


IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": (
        "One key per order you mean to create (e.g. a UUID). A retry with the same key and "
        "body gets the original answer; the same key with another body gets 409 "
        "`idempotency_conflict`."
    ),
    "schema": {"type": "string", "pattern": idempotency.KEY_RE.pattern},
}


@router.post(
    "",
    status_code=201,
    summary="Create a payment order for a dossier",
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
)
async def create(body: PaymentOrderIn, request: Request, client: ClientDep) -> Response:
    """On PostgreSQL the order is written by one SQL statement on the event loop
    (:mod:`payments.order_intake`); on SQLite, and for orders with nothing to collect, by the
    ORM path in the thread pool. Both answer the same (the API tests run both). Settings,
    engine and the Idempotency-Key header are read from the request, not injected: each
    dependency or header parameter costs on this hot path (the header is documented through
    ``openapi_extra`` and checked by :func:`payments.idempotency.check_key`)."""
    idempotency_key = request.headers.get("idempotency-key")
    settings: Settings = request.app.state.settings
    callback_url = body.callback_url or client.callback_url
    if callback_url:
        check_callback_url(callback_url, allow_loopback=settings.profile is Profile.EMBEDDED)
    fees = [f.fee_request() for f in body.fees]
    payer = body.payer.model_dump(mode="json")
    intake: OrderIntake | None = getattr(request.app.state, "order_intake", None)
    if intake is not None:
        result = await intake.create(
            agency=_snapshot(client.agency),
            client_id=client.id,
            scope=SCOPE_CREATE,
            key=idempotency.check_key(idempotency_key),
            digest=request_digest(body),
            dossier_code=body.dossier_code,
            procedure_code=body.procedure_code,
            payer=payer,
            fees=fees,
            callback_url=callback_url,
            ttl=timedelta(minutes=settings.order_ttl_minutes),
            max_amount=settings.max_order_amount,
            base_url=settings.public_base_url,
            now=utcnow(),
        )
        if result is not None:
            headers = {"Idempotent-Replayed": "true"} if result.replayed else None
            return Response(
                result.body_json.encode(),
                status_code=result.status,
                headers=headers,
                media_type="application/json",
            )
    order_request = OrderRequest(
        dossier_code=body.dossier_code,
        procedure_code=body.procedure_code,
        payer=payer,
        fees=tuple(fees),
        callback_url=callback_url,
    )
    engine: Engine = request.app.state.engine
    return await run_in_threadpool(
        _create_with_orm, body, order_request, client, engine, settings, idempotency_key
    )


_snapshots: weakref.WeakKeyDictionary[Agency, AgencySnapshot] = weakref.WeakKeyDictionary()


def _snapshot(agency: Agency) -> AgencySnapshot:
    """Per agency object: the API-key cache in :mod:`api.deps` hands out the same detached
    client (and agency) for 30 s, so the snapshot is taken once per refresh, not per order."""
    snap = _snapshots.get(agency)
    if snap is None:
        snap = _snapshots[agency] = AgencySnapshot.of(agency)
    return snap


def _create_with_orm(
    body: PaymentOrderIn,
    order_request: OrderRequest,
    client: ApiClient,
    engine: Engine,
    settings: Settings,
    idempotency_key: str | None,
) -> JSONResponse:
    def action(session: Session) -> Answer:
        placed = place_order(session, settings, client.agency, order_request, client_id=client.id)
        return Answer(
            201, order_json(placed.order, None, settings.public_base_url), False, placed.follow_ups
        )

    answer = run_once(
        engine,
        client_id=client.id,
        scope=SCOPE_CREATE,
        key=idempotency_key,
        digest=request_digest(body),
        action=action,
        required=True,
    )
    run_after_commit(answer.follow_ups)
    return response_of(answer)


@router.get("", summary="List a client's orders, e.g. by dossier code")
def list_(
    client: ClientDep,
    engine: EngineDep,
    settings: SettingsDep,
    dossier_code: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        orders = list_orders(session, client.agency_id, dossier_code=dossier_code, limit=limit)
        return {
            "object": "list",
            "data": [order_json(o, _receipt(session, o), settings.public_base_url) for o in orders],
        }


@router.get("/{order_id}", summary="An order, with its receipt once issued")
def read(
    order_id: str, client: ClientDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        order = get_order(session, order_id, agency_id=client.agency_id)
        return order_json(order, _receipt(session, order), settings.public_base_url)


@router.post("/{order_id}/cancel", summary="Cancel a pending order (409 once paid)")
def cancel(
    order_id: str,
    client: ClientDep,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    def action(session: Session) -> Answer:
        order = cancel_order(session, order_id, client.agency_id)
        return Answer(200, order_json(order, _receipt(session, order), settings.public_base_url))

    return response_of(
        run_once(
            engine,
            client_id=client.id,
            scope=f"cancel:{order_id}",
            key=idempotency_key,
            digest=request_digest(None),
            action=action,
        )
    )


@router.post(
    "/{order_id}/cash", summary="Record cash taken at the counter; the receipt is issued at once"
)
def cash(
    order_id: str,
    body: CashIn,
    client: ClientDep,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    def action(session: Session) -> Answer:
        order, _ = take_cash(
            session,
            TakeCash(order_id, client.agency_id, amount=body.amount, clerk=body.clerk),
        )
        return Answer(200, order_json(order, None, settings.public_base_url))

    recorded = run_once(
        engine,
        client_id=client.id,
        scope=f"cash:{order_id}",
        key=idempotency_key,
        digest=request_digest(body),
        action=action,
    )
    if recorded.replayed:
        return response_of(recorded)
    issue_at_once(engine, settings, order_id)
    with unit_of_work(engine) as session:
        order = get_order(session, order_id)
        return JSONResponse(order_json(order, _receipt(session, order), settings.public_base_url))


@router.get(
    "/{order_id}/vietqr.png",
    summary="The order's VietQR as a PNG (public: the citizen's page shows it)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def vietqr_png(order_id: str, engine: EngineDep) -> Response:
    with unit_of_work(engine) as session:
        order = get_order(session, order_id)
        payload = order.vietqr_payload
    if not payload:
        return Response(status_code=404)
    return Response(
        vietqr.qr_png(payload),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400, immutable"},
    )
