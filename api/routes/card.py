"""Card payments: start one for an order, receive the gateway's webhook, refund."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from api.deps import ClientDep, EngineDep, SettingsDep, unit_of_work
from payments.card import verify_webhook
from payments.card_payments import (
    CardNotConfigured,
    gateway_from_settings,
    journal_card_event,
    refund_card_payment,
    start_card_payment,
)
from payments.errors import InvalidInput
from payments.orders import get_order
from payments.usecases.follow_ups import ProcessCardEvent, run_after_commit

router = APIRouter(tags=["card"])


class RefundCardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: StrictInt | None = Field(default=None, gt=0, lt=10**13, description="None = full")
    reason: str = Field(min_length=5, max_length=500)


@router.post(
    "/api/v1/payment-orders/{order_id}/card",
    summary="Start a card payment for an order (public: the citizen's page calls it)",
)
def start(order_id: str, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    gateway = gateway_from_settings(settings)
    with unit_of_work(engine) as session:
        order = get_order(session, order_id)
        intent = start_card_payment(gateway, order)
    return {
        "payment_intent": intent.id,
        "client_secret": intent.client_secret,
        "amount": intent.amount,
        "currency": intent.currency,
        "status": intent.status,
    }


@router.post("/api/v1/card/webhook", summary="Card gateway events (Stripe-Signature verified)")
async def webhook(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    if settings.card_webhook_secret is None:
        raise CardNotConfigured("set MOTCUA_CARD_WEBHOOK_SECRET")
    raw = await request.body()
    event = verify_webhook(raw, stripe_signature, settings.card_webhook_secret.get_secret_value())

    def journal() -> int | None:
        with unit_of_work(engine) as session:
            row = journal_card_event(session, raw, event)
            return row.id if row is not None else None

    event_id = await run_in_threadpool(journal)
    if event_id is not None:
        await run_in_threadpool(run_after_commit, (ProcessCardEvent(event_id),))
    return {"received": True, "journaled": event_id is not None}


@router.post("/api/v1/payment-orders/{order_id}/refund", summary="Refund an order's card payment")
def refund(
    order_id: str, body: RefundCardIn, client: ClientDep, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    gateway = gateway_from_settings(settings)
    with unit_of_work(engine) as session:
        order = get_order(session, order_id, agency_id=client.agency_id)
        if body.amount is not None and body.amount > order.amount:
            raise InvalidInput("refund above the amount paid")
        refund_ = refund_card_payment(gateway, order, amount=body.amount, reason=body.reason)
    return {
        "refund": {
            "id": refund_.id,
            "status": refund_.status,
            "amount": refund_.amount,
            "currency": refund_.currency,
            "payment_intent": refund_.payment_intent,
        }
    }
