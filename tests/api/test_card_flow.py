"""A citizen pays an order by card (localstripe on 127.0.0.1); the verified webhook pays it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
from api_flow import create
from fastapi.testclient import TestClient
from infra.localstripe import LocalStripe

from api.app import create_app
from api.demo import seed
from payments.card import StripeGateway
from settings.config import Settings, get_settings

WEBHOOK_SECRET = "whsec_test_card_flow"


@pytest.fixture(scope="module")
def stripe_server() -> Iterator[LocalStripe]:
    with LocalStripe() as server:
        yield server


@pytest.fixture
def card_client(
    settings: Settings, stripe_server: LocalStripe, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("MOTCUA_CARD_API_BASE", stripe_server.url)
    monkeypatch.setenv("MOTCUA_CARD_SECRET_KEY", "sk_test_motcua")
    monkeypatch.setenv("MOTCUA_CARD_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("MOTCUA_CARD_DIALECT", "localstripe")
    get_settings.cache_clear()
    current = get_settings()
    seed(current)
    with TestClient(create_app(current)) as client:
        yield client


def signed(payload: bytes, secret: str = WEBHOOK_SECRET, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def pay_with_card(stripe_server: LocalStripe, intent_id: str) -> None:
    with stripe_server.client() as http:
        pm = http.post(
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": "4242424242424242",
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": "123",
            },
        ).json()["id"]
    gateway = StripeGateway(stripe_server.url, "sk_test_motcua", dialect="localstripe")
    assert gateway.confirm_payment_intent(intent_id, pm).status == "succeeded"


def test_card_payment_pays_the_order_and_issues_the_receipt(
    card_client: TestClient, auth: dict[str, str], stripe_server: LocalStripe
) -> None:
    order = create(card_client, auth, "card-1").json()
    started = card_client.post(f"/api/v1/payment-orders/{order['id']}/card")
    assert started.status_code == 200, started.text
    intent = started.json()
    assert intent["amount"] == 5000 and intent["currency"] == "vnd"  # zero-decimal: whole đồng
    pay_with_card(stripe_server, intent["payment_intent"])

    event = {
        "id": "evt_card_1",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent["payment_intent"], "metadata": {"order_id": order["id"]}}},
    }
    body = json.dumps(event).encode()
    bad = card_client.post(
        "/api/v1/card/webhook", content=body, headers={"Stripe-Signature": signed(body, "wrong")}
    )
    assert bad.status_code == 400 and bad.json()["code"].startswith("card_webhook")
    old = card_client.post(
        "/api/v1/card/webhook",
        content=body,
        headers={"Stripe-Signature": signed(body, t=int(time.time()) - 301)},
    )
    assert old.status_code == 400
    assert (
        card_client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()["status"]
        == "pending"
    )

    for _ in range(2):  # the gateway re-sends: one payment, one receipt
        res = card_client.post(
            "/api/v1/card/webhook", content=body, headers={"Stripe-Signature": signed(body)}
        )
        assert res.status_code == 200, res.text
    got = card_client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()
    assert got["status"] == "succeeded" and got["payment_method"] == "card"
    assert got["receipt"]["number"] == 1

    refund = card_client.post(
        f"/api/v1/payment-orders/{order['id']}/refund",
        json={"amount": 2000, "reason": "Hoàn một phần theo yêu cầu"},
        headers=auth,
    )
    assert refund.status_code == 200, refund.text
    assert refund.json()["refund"]["amount"] == 2000


def test_a_forged_event_for_an_unpaid_intent_changes_nothing(
    card_client: TestClient, auth: dict[str, str]
) -> None:
    order = create(card_client, auth, "card-2").json()
    intent = card_client.post(f"/api/v1/payment-orders/{order['id']}/card").json()
    event = {
        "id": "evt_forged",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent["payment_intent"], "metadata": {"order_id": order["id"]}}},
    }
    body = json.dumps(event).encode()
    res = card_client.post(
        "/api/v1/card/webhook", content=body, headers={"Stripe-Signature": signed(body)}
    )
    assert res.status_code == 200
    # The gateway says the intent is not paid: the order stays pending.
    assert (
        card_client.get(f"/api/v1/payment-orders/{order['id']}", headers=auth).json()["status"]
        == "pending"
    )


def test_card_disabled_is_a_clear_404(client: TestClient, auth: dict[str, str]) -> None:
    order = create(client, auth, "card-off").json()
    res = client.post(f"/api/v1/payment-orders/{order['id']}/card")
    assert res.status_code == 404 and res.json()["code"] == "card_not_configured"
