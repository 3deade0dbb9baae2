"""Card payments: StripeGateway against a real localstripe, plus scripted transports for the
failures a local server cannot produce (5xx, 429, lost responses), and webhook verification.

localstripe facts these tests rely on (1.15.10, read from its source):
- it ignores ``Idempotency-Key``: the header is proved on the wire, not by replay;
- it declines a *charge* only for 4000000000000341 (4000000000000002 is declined on attach to a
  customer only), so the decline tests use 0341;
- it delivers webhooks once, about one second after the event, signed ``t=<created>,v1=<hmac>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from infra.clock import run_start
from infra.localstripe import TEST_SECRET_KEY, LocalStripe
from infra.ports import LOOPBACK

from payments.card import (
    CardDeclined,
    CardGateway,
    CardGatewayAuthError,
    CardGatewayError,
    CardGatewayProtocolError,
    CardGatewayUnavailable,
    CardIdempotencyConflict,
    CardLookupIncomplete,
    CardNotFound,
    CardOutcomeUnknown,
    CardRequestInvalid,
    CardWebhookError,
    CardWebhookHeaderMalformed,
    CardWebhookHeaderMissing,
    CardWebhookPayloadInvalid,
    CardWebhookSignatureMismatch,
    CardWebhookTimestampInFuture,
    CardWebhookTimestampTooOld,
    PaymentIntent,
    StripeGateway,
    verify_webhook,
)
from payments.errors import InvalidInput, PaymentsError

VISA_OK = "4242424242424242"
VISA_CHARGE_DECLINED = "4000000000000341"  # localstripe: declined when charged
VISA_ATTACH_DECLINED = "4000000000000002"  # real Stripe: generic decline; localstripe: attach only
FEE = 150_000  # đồng


# --------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe() as server:
        yield server


class Recorder:
    """httpx request hook: remembers (method, path, Idempotency-Key) of every request sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.seen.append((request.method, request.url.path, request.headers.get("Idempotency-Key")))

    def posts(self, path: str | None = None) -> list[tuple[str, str, str | None]]:
        return [s for s in self.seen if s[0] == "POST" and (path is None or s[1] == path)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def gateway(
    localstripe: LocalStripe, recorder: Recorder, sleeps: list[float]
) -> Iterator[StripeGateway]:
    client = httpx.Client(event_hooks={"request": [recorder]})
    with (
        client,
        StripeGateway(
            localstripe.url,
            TEST_SECRET_KEY,
            client=client,
            dialect="localstripe",
            sleep=sleeps.append,
        ) as gw,
    ):
        yield gw


def new_order() -> str:
    return f"ord-{uuid.uuid4().hex[:12]}"


def payment_method(ls: LocalStripe, number: str) -> str:
    """What Stripe.js does in the browser: card number -> pm_... (never through our server)."""
    card = {"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"}
    with ls.client() as client:
        response = client.post(
            "/v1/payment_methods",
            data={"type": "card", **{f"card[{k}]": v for k, v in card.items()}},
        )
    response.raise_for_status()
    pm_id: str = response.json()["id"]
    return pm_id


def create(
    gw: StripeGateway, order_id: str, amount: int = FEE, key: str | None = None
) -> PaymentIntent:
    return gw.create_payment_intent(
        amount,
        order_id=order_id,
        reference=f"MC{order_id[-8:].upper()}",
        idempotency_key=key or f"create-{order_id}-{uuid.uuid4().hex[:6]}",
        description="Lệ phí cấp giấy phép xây dựng",
    )


def paid_intent(gw: StripeGateway, ls: LocalStripe, order_id: str | None = None) -> PaymentIntent:
    intent = create(gw, order_id or new_order())
    confirmed = gw.confirm_payment_intent(intent.id, payment_method(ls, VISA_OK))
    assert confirmed.status == "succeeded"
    return confirmed


# --------------------------------------------------------------------------------- scripted transport


def pi_json(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "pi_scripted",
        "object": "payment_intent",
        "status": "requires_payment_method",
        "amount": FEE,
        "currency": "vnd",
        "metadata": {"order_id": "ord-1", "reference": "MC1"},
        "client_secret": "pi_scripted_secret_x",
        "created": 1_700_000_000,
    }
    obj.update(overrides)
    return obj


Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """MockTransport handler answering each request with the next step (the last one repeats)."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("Idempotency-Key") for r in self.requests]

    def form(self, index: int = -1) -> list[tuple[str, str]]:
        return parse_qsl(self.requests[index].content.decode(), keep_blank_values=True)


def scripted(
    script: Script, sleeps: list[float], *, dialect: str = "stripe", **kwargs: Any
) -> StripeGateway:
    return StripeGateway(
        "https://api.stripe.test",
        "sk_test_scripted",
        client=httpx.Client(transport=httpx.MockTransport(script)),
        dialect=dialect,  # type: ignore[arg-type]
        sleep=sleeps.append,
        rng=random.Random(7),
        **kwargs,
    )


def error(
    status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json={"error": body or {}}, headers=headers)


def timeout_after_send(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out reading the response", request=request)


# =================================================================================== localstripe


def test_payment_intent_amount_is_whole_dong(
    gateway: StripeGateway, localstripe: LocalStripe
) -> None:
    order_id = new_order()
    intent = create(gateway, order_id)
    assert intent.amount == 150_000  # not 15_000_000: VND is zero-decimal
    assert intent.currency == "vnd"
    assert intent.status == "requires_payment_method"
    assert intent.metadata["order_id"] == order_id
    assert intent.metadata["reference"].startswith("MC")
    assert intent.metadata["description"] == "Lệ phí cấp giấy phép xây dựng"  # localstripe dialect
    assert intent.client_secret and intent.client_secret.startswith(intent.id)
    assert "secret" not in repr(intent)
    # what the server stored, read without our parser
    with localstripe.client() as client:
        stored = client.get(f"/v1/payment_intents/{intent.id}").json()
    assert (stored["amount"], stored["currency"]) == (150_000, "vnd")
    assert gateway.retrieve_payment_intent(intent.id) == intent


@pytest.mark.parametrize("amount", [0, -150_000, 1.5, 150_000.0, Decimal(150_000), True, "150000"])
def test_amount_must_be_positive_int(amount: Any, sleeps: list[float]) -> None:
    script = Script(httpx.Response(200, json=pi_json()))
    gw = scripted(script, sleeps)
    with pytest.raises(InvalidInput):
        gw.create_payment_intent(
            amount, order_id="ord-1", reference="MC1", idempotency_key="k", description="d"
        )
    with pytest.raises(InvalidInput):
        gw.create_refund("pi_x", amount, idempotency_key="k", reason="duplicate")
    assert script.requests == []


def test_confirm_with_test_card_succeeds(
    gateway: StripeGateway, localstripe: LocalStripe, sleeps: list[float]
) -> None:
    intent = create(gateway, new_order())
    confirmed = gateway.confirm_payment_intent(intent.id, payment_method(localstripe, VISA_OK))
    assert confirmed.status == "succeeded" and confirmed.succeeded
    assert confirmed.amount == 150_000
    assert gateway.retrieve_payment_intent(intent.id).status == "succeeded"
    assert sleeps == []


def test_declined_card_raises_and_is_not_retried(
    gateway: StripeGateway, localstripe: LocalStripe, recorder: Recorder, sleeps: list[float]
) -> None:
    intent = create(gateway, new_order())
    with pytest.raises(CardDeclined) as caught:
        gateway.confirm_payment_intent(intent.id, payment_method(localstripe, VISA_CHARGE_DECLINED))
    err = caught.value
    assert (err.code, err.status, err.http_status) == ("card_declined", 402, 402)
    assert err.gateway_code == "card_declined"
    assert err.should_retry is False
    assert err.payment_intent_id == intent.id
    assert err.request_id is None  # localstripe sends no Request-Id header
    assert len(recorder.posts(f"/v1/payment_intents/{intent.id}/confirm")) == 1
    assert sleeps == []
    after = gateway.retrieve_payment_intent(intent.id)
    assert after.status == "requires_payment_method"
    assert after.last_error is not None and after.last_error.code == "card_declined"


def test_localstripe_quirk_generic_decline_card_is_not_declined_on_confirm(
    gateway: StripeGateway, localstripe: LocalStripe
) -> None:
    """Real Stripe declines 4000000000000002 when charged; localstripe only when attaching it to
    a customer. If this starts failing, localstripe learned it: switch the decline tests over."""
    intent = create(gateway, new_order())
    pm = payment_method(localstripe, VISA_ATTACH_DECLINED)
    assert gateway.confirm_payment_intent(intent.id, pm).status == "succeeded"


def test_refund_partial_and_full(gateway: StripeGateway, localstripe: LocalStripe) -> None:
    first = paid_intent(gateway, localstripe)
    partial = gateway.create_refund(
        first.id, 50_000, idempotency_key=f"refund-{first.id}-1", reason="Hồ sơ rút một phần"
    )
    assert (partial.amount, partial.currency, partial.status) == (50_000, "vnd", "succeeded")
    assert partial.payment_intent == first.id
    assert partial.metadata["reason"] == "Hồ sơ rút một phần"

    second = paid_intent(gateway, localstripe)
    full = gateway.create_refund(
        second.id, None, idempotency_key=f"refund-{second.id}", reason="requested_by_customer"
    )
    assert (full.amount, full.status) == (150_000, "succeeded")


def test_refund_of_unpaid_intent_is_rejected_not_retried(
    gateway: StripeGateway, localstripe: LocalStripe, sleeps: list[float]
) -> None:
    intent = create(gateway, new_order())
    with pytest.raises(CardDeclined):
        gateway.confirm_payment_intent(intent.id, payment_method(localstripe, VISA_CHARGE_DECLINED))
    with pytest.raises(CardRequestInvalid) as caught:
        gateway.create_refund(intent.id, None, idempotency_key=f"r-{intent.id}", reason="duplicate")
    assert caught.value.http_status == 400 and caught.value.should_retry is False
    assert sleeps == []


def test_every_post_carries_an_idempotency_key(
    gateway: StripeGateway, localstripe: LocalStripe, recorder: Recorder
) -> None:
    order_id = new_order()
    intent = create(gateway, order_id, key=f"create-{order_id}")
    gateway.confirm_payment_intent(
        intent.id, payment_method(localstripe, VISA_OK), idempotency_key=f"confirm-{order_id}"
    )
    gateway.create_refund(intent.id, 10_000, idempotency_key=f"refund-{order_id}", reason="x")
    gateway.retrieve_payment_intent(intent.id)
    gateway.find_payment_for_order(order_id)

    posts = recorder.posts()
    assert [key for _, _, key in posts] == [
        f"create-{order_id}",
        f"confirm-{order_id}:attach",  # localstripe dialect: set the payment method ...
        f"confirm-{order_id}:confirm",  # ... then a bare confirm
        f"refund-{order_id}",
    ]
    gets = [s for s in recorder.seen if s[0] == "GET"]
    assert gets and all(key is None for _, _, key in gets)


def test_confirm_without_key_still_sends_one(
    gateway: StripeGateway, recorder: Recorder, localstripe: LocalStripe
) -> None:
    intent = create(gateway, new_order())
    gateway.confirm_payment_intent(intent.id, payment_method(localstripe, VISA_OK))
    keys = [
        key
        for _, path, key in recorder.posts()
        if path.startswith(f"/v1/payment_intents/{intent.id}")
    ]
    assert len(keys) == 2
    assert keys[0] is not None and keys[1] is not None
    assert keys[0].removesuffix(":attach") == keys[1].removesuffix(":confirm")


def test_localstripe_ignores_idempotency_key(gateway: StripeGateway) -> None:
    """Documents the gap: real Stripe would return the same intent for the same key."""
    order_id = new_order()
    first = create(gateway, order_id, key=f"same-{order_id}")
    second = create(gateway, order_id, key=f"same-{order_id}")
    assert first.id != second.id


def test_find_payment_for_order(gateway: StripeGateway, localstripe: LocalStripe) -> None:
    for _ in range(3):
        create(gateway, new_order())
    order_id = new_order()
    failed = create(gateway, order_id)
    with pytest.raises(CardDeclined):
        gateway.confirm_payment_intent(failed.id, payment_method(localstripe, VISA_CHARGE_DECLINED))
    paid = create(gateway, order_id)
    gateway.confirm_payment_intent(paid.id, payment_method(localstripe, VISA_OK))
    create(gateway, order_id)  # a third, abandoned attempt
    for _ in range(2):
        create(gateway, new_order())

    found = gateway.find_payment_for_order(order_id, page_size=2)  # several pages
    assert found is not None and found.id == paid.id and found.succeeded
    assert gateway.find_payment_for_order(new_order()) is None


def test_find_payment_for_order_filters_by_creation_time(gateway: StripeGateway) -> None:
    order_id = new_order()
    intent = create(gateway, order_id)
    assert intent.created is not None
    assert gateway.find_payment_for_order(order_id, created_after=intent.created) == intent
    assert gateway.find_payment_for_order(order_id, created_after=intent.created + 3600) is None


def test_find_payment_for_order_refuses_to_conclude_past_its_bound(gateway: StripeGateway) -> None:
    create(gateway, new_order())
    create(gateway, new_order())
    with pytest.raises(CardLookupIncomplete) as caught:
        gateway.find_payment_for_order(new_order(), page_size=1, max_pages=1)
    assert caught.value.code == "card_lookup_incomplete" and caught.value.partial is None


def test_lost_response_is_unknown_and_resolved_by_asking(
    localstripe: LocalStripe, sleeps: list[float]
) -> None:
    """The gateway created the intent but the answer never arrived: not a failure."""

    class LoseCreateResponse(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if request.method == "POST" and request.url.path == "/v1/payment_intents":
                response.read()
                response.close()
                raise httpx.ReadTimeout("connection dropped before the response", request=request)
            return response

    client = httpx.Client(transport=LoseCreateResponse())
    with (
        client,
        StripeGateway(
            localstripe.url,
            TEST_SECRET_KEY,
            client=client,
            dialect="localstripe",
            max_retries=0,
            sleep=sleeps.append,
        ) as gw,
    ):
        order_id = new_order()
        with pytest.raises(CardOutcomeUnknown) as caught:
            create(gw, order_id, key=f"create-{order_id}")
        assert caught.value.idempotency_key == f"create-{order_id}"
        assert caught.value.should_retry is True
        found = gw.find_payment_for_order(order_id)
    assert found is not None and found.amount == 150_000


def test_timeout_after_send_on_a_real_socket_is_outcome_unknown(sleeps: list[float]) -> None:
    """A listening socket that never answers: connect and send succeed, the read times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(8)  # the kernel accepts into the backlog; nobody ever answers
        port = silent.getsockname()[1]
        with StripeGateway(
            f"http://{LOOPBACK}:{port}",
            "sk_test_x",
            timeout=0.3,
            max_retries=1,
            sleep=sleeps.append,
        ) as gw:
            started = time.monotonic()
            with pytest.raises(CardOutcomeUnknown) as caught:
                create(gw, "ord-silent")
            assert time.monotonic() - started < 5
            # a read has no side effect: the same silence is just "unavailable"
            with pytest.raises(CardGatewayUnavailable) as caught_get:
                gw.retrieve_payment_intent("pi_x")
    assert caught.value.http_status is None and "ReadTimeout" in str(caught.value)
    assert not isinstance(caught_get.value, CardOutcomeUnknown)
    assert len(sleeps) == 2


# =================================================================================== retries (scripted)


def test_500_is_retried_with_backoff_and_the_same_key(sleeps: list[float]) -> None:
    script = Script(error(500), error(500), httpx.Response(200, json=pi_json()))
    gw = scripted(script, sleeps)
    intent = gw.create_payment_intent(
        FEE, order_id="ord-1", reference="MC1", idempotency_key="k-500", description="d"
    )
    assert intent.id == "pi_scripted"
    assert script.keys == ["k-500"] * 3  # the same key on every attempt
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0  # 0.5 * 2**n, jitter 50-100 %


def test_backoff_is_capped_and_jittered(sleeps: list[float]) -> None:
    script = Script(error(503))
    gw = scripted(script, sleeps, max_retries=6, initial_backoff=1.0, max_backoff=4.0)
    with pytest.raises(CardGatewayUnavailable):
        gw.retrieve_payment_intent("pi_x")
    assert len(script.requests) == 7 and len(sleeps) == 6
    assert all(s <= 4.0 for s in sleeps) and all(s >= 2.0 for s in sleeps[2:])
    assert len(set(sleeps)) == len(sleeps)  # jitter: no two equal delays


def test_500_exhausted_on_post_is_outcome_unknown(sleeps: list[float]) -> None:
    script = Script(error(500, {"type": "api_error"}, headers={"Request-Id": "req_123"}))
    gw = scripted(script, sleeps)
    with pytest.raises(CardOutcomeUnknown) as caught:
        gw.create_refund("pi_x", None, idempotency_key="k-r", reason="duplicate")
    err = caught.value
    assert (err.http_status, err.request_id, err.idempotency_key) == (500, "req_123", "k-r")
    assert err.should_retry is True and len(script.requests) == 3


def test_500_on_get_is_unavailable(sleeps: list[float]) -> None:
    script = Script(error(500))
    with pytest.raises(CardGatewayUnavailable) as caught:
        scripted(script, sleeps).retrieve_payment_intent("pi_x")
    assert not isinstance(caught.value, CardOutcomeUnknown)
    assert caught.value.code == "card_gateway_unavailable" and caught.value.should_retry
    assert len(script.requests) == 3


def test_stripe_should_retry_header_wins(sleeps: list[float]) -> None:
    script = Script(error(500, headers={"Stripe-Should-Retry": "false"}))
    with pytest.raises(CardOutcomeUnknown) as caught:
        scripted(script, sleeps).confirm_payment_intent("pi_x", "pm_x", idempotency_key="k")
    assert caught.value.should_retry is False
    assert len(script.requests) == 1 and sleeps == []


def test_402_is_not_retried(sleeps: list[float]) -> None:
    body = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "payment_intent": pi_json(status="requires_payment_method"),
    }
    script = Script(error(402, body, headers={"Request-Id": "req_decl"}))
    with pytest.raises(CardDeclined) as caught:
        scripted(script, sleeps).confirm_payment_intent("pi_scripted", "pm_x")
    err = caught.value
    assert (err.decline_code, err.request_id, err.gateway_type) == (
        "insufficient_funds",
        "req_decl",
        "card_error",
    )
    assert err.payment_intent_id == "pi_scripted" and err.should_retry is False
    assert len(script.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"type": "invalid_request_error", "code": "parameter_invalid_integer"},
            CardRequestInvalid,
        ),
        (401, {"type": "invalid_request_error"}, CardGatewayAuthError),
        (403, {"type": "invalid_request_error"}, CardGatewayAuthError),
        (404, {"type": "invalid_request_error", "code": "resource_missing"}, CardNotFound),
        (409, {"type": "idempotency_error"}, CardIdempotencyConflict),
    ],
)
def test_other_4xx_are_not_retried(
    status: int, body: dict[str, Any], expected: type[CardGatewayError], sleeps: list[float]
) -> None:
    script = Script(error(status, body), httpx.Response(200, json=pi_json()))
    with pytest.raises(expected) as caught:
        scripted(script, sleeps).create_refund("pi_x", 1000, idempotency_key="k", reason="r")
    assert type(caught.value) is expected
    assert caught.value.http_status == status and caught.value.should_retry is False
    assert len(script.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "first",
    [
        error(409, {"type": "invalid_request_error", "code": "lock_timeout"}),
        error(429, {"type": "invalid_request_error", "code": "rate_limit"}),
        error(502),
        error(503),
    ],
    ids=["409-lock", "429", "502", "503"],
)
def test_transient_statuses_are_retried(first: httpx.Response, sleeps: list[float]) -> None:
    script = Script(first, httpx.Response(200, json=pi_json()))
    gw = scripted(script, sleeps)
    assert gw.retrieve_payment_intent("pi_scripted").id == "pi_scripted"
    assert len(script.requests) == 2 and len(sleeps) == 1


def test_429_exhausted_is_unavailable_and_honours_retry_after(sleeps: list[float]) -> None:
    script = Script(error(429, {"code": "rate_limit"}, headers={"Retry-After": "3"}))
    with pytest.raises(CardGatewayUnavailable) as caught:
        scripted(script, sleeps).create_payment_intent(
            FEE, order_id="o", reference="r", idempotency_key="k", description="d"
        )
    assert not isinstance(caught.value, CardOutcomeUnknown)  # a 429 was definitely not done
    assert caught.value.gateway_code == "rate_limit"
    assert sleeps and all(s >= 3 for s in sleeps)


def test_connect_errors_are_unavailable_not_unknown(sleeps: list[float]) -> None:
    script = Script(httpx.ConnectError("connection refused"))
    with pytest.raises(CardGatewayUnavailable) as caught:
        scripted(script, sleeps).create_refund("pi_x", None, idempotency_key="k", reason="r")
    assert not isinstance(caught.value, CardOutcomeUnknown)
    assert caught.value.http_status is None and len(script.requests) == 3


def test_read_timeout_after_send_is_outcome_unknown(sleeps: list[float]) -> None:
    script = Script(timeout_after_send)
    with pytest.raises(CardOutcomeUnknown) as caught:
        scripted(script, sleeps).create_payment_intent(
            FEE, order_id="o", reference="r", idempotency_key="k-t", description="d"
        )
    assert caught.value.code == "card_outcome_unknown"
    assert caught.value.idempotency_key == "k-t" and caught.value.path == "/v1/payment_intents"
    assert script.keys == ["k-t"] * 3 and len(sleeps) == 2


def test_timeout_then_refused_is_still_unknown(sleeps: list[float]) -> None:
    """Once one attempt may have reached the gateway, later refusals do not make it "not done"."""
    script = Script(timeout_after_send, httpx.ConnectError("refused"))
    with pytest.raises(CardOutcomeUnknown):
        scripted(script, sleeps).create_refund("pi_x", None, idempotency_key="k", reason="r")


def test_timeout_then_answer_is_the_answer(sleeps: list[float]) -> None:
    script = Script(timeout_after_send, httpx.Response(200, json=pi_json(status="succeeded")))
    intent = scripted(script, sleeps).confirm_payment_intent("pi_scripted", "pm_x")
    assert intent.succeeded and len(set(script.keys)) == 1


def test_zero_decimal_guard_rejects_a_x100_amount(sleeps: list[float]) -> None:
    script = Script(httpx.Response(200, json=pi_json(amount=15_000_000)))
    with pytest.raises(CardGatewayProtocolError, match="15000000"):
        scripted(script, sleeps).create_payment_intent(
            FEE, order_id="ord-1", reference="MC1", idempotency_key="k", description="d"
        )


def test_non_json_success_on_post_is_outcome_unknown(sleeps: list[float]) -> None:
    script = Script(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(CardOutcomeUnknown):
        scripted(script, sleeps).create_refund("pi_x", None, idempotency_key="k", reason="r")
    script = Script(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(CardGatewayProtocolError):
        scripted(script, sleeps).retrieve_payment_intent("pi_x")


# =================================================================================== request shapes


def test_stripe_dialect_request_bodies(sleeps: list[float]) -> None:
    refund = {
        "id": "re_1",
        "status": "succeeded",
        "amount": 150_000,
        "currency": "vnd",
        "payment_intent": "pi_scripted",
        "metadata": {},
    }
    script = Script(
        httpx.Response(200, json=pi_json()),
        httpx.Response(200, json=pi_json(status="succeeded")),
        httpx.Response(200, json=refund),
        httpx.Response(200, json=refund),
        httpx.Response(200, json={"object": "list", "data": [], "has_more": False}),
    )
    gw = scripted(script, sleeps)
    gw.create_payment_intent(
        FEE, order_id="ord-1", reference="MC1", idempotency_key="k1", description="Lệ phí"
    )
    create = script.requests[0]
    assert create.headers["Authorization"] == "Bearer sk_test_scripted"
    assert create.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert script.form(0) == [
        ("amount", "150000"),
        ("currency", "vnd"),
        ("payment_method_types[0]", "card"),
        ("metadata[order_id]", "ord-1"),
        ("metadata[reference]", "MC1"),
        ("description", "Lệ phí"),
    ]
    gw.confirm_payment_intent("pi_scripted", "pm_1", idempotency_key="k2")
    assert script.requests[1].url.path == "/v1/payment_intents/pi_scripted/confirm"
    assert script.form(1) == [("payment_method", "pm_1")]  # one atomic call on real Stripe
    gw.create_refund("pi_scripted", None, idempotency_key="k3", reason="requested_by_customer")
    assert ("reason", "requested_by_customer") in script.form(2)
    gw.create_refund("pi_scripted", None, idempotency_key="k4", reason="Hồ sơ bị trả lại")
    assert [k for k, _ in script.form(3)] == ["payment_intent", "metadata[reason]"]
    gw.find_payment_for_order("ord-1", created_after=1_700_000_000)
    assert script.requests[4].url.params["created[gte]"] == "1700000000"
    assert script.keys[:4] == ["k1", "k2", "k3", "k4"] and script.keys[4] is None


def test_gateway_construction_rules() -> None:
    with pytest.raises(ValueError, match="https"):
        StripeGateway("http://api.stripe.com", "sk_live_x")
    with pytest.raises(ValueError):
        StripeGateway("https://api.stripe.com", "")
    gw = StripeGateway("https://api.stripe.com", "sk_live_supersecret")
    assert "supersecret" not in repr(gw)
    assert isinstance(gw, CardGateway)
    gw.close()


# =================================================================================== webhooks

SECRET = "whsec_test_motcua"
NOW = 1_800_000_000
EVENT = json.dumps(
    {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}}
).encode()


def sign(payload: bytes, secret: str = SECRET, t: int = NOW) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_webhook_valid() -> None:
    event = verify_webhook(EVENT, sign(EVENT), SECRET, now=NOW)
    assert event["type"] == "payment_intent.succeeded"


def test_webhook_rotation_any_v1_may_match() -> None:
    old = sign(EVENT, "whsec_old").split(",")[1]
    header = f"{sign(EVENT)},{old}"
    reversed_header = f"t={NOW},{old},{sign(EVENT).split(',')[1]}"
    assert verify_webhook(EVENT, header, SECRET, now=NOW)["id"] == "evt_1"
    assert verify_webhook(EVENT, reversed_header, SECRET, now=NOW)["id"] == "evt_1"
    assert verify_webhook(EVENT, header, "whsec_old", now=NOW)["id"] == "evt_1"
    # unknown schemes (v0) are ignored, as Stripe's libraries do
    assert verify_webhook(EVENT, f"{sign(EVENT)},v0=abc", SECRET, now=NOW)["id"] == "evt_1"


def test_webhook_wrong_secret() -> None:
    with pytest.raises(CardWebhookSignatureMismatch) as caught:
        verify_webhook(EVENT, sign(EVENT, "whsec_other"), SECRET, now=NOW)
    assert caught.value.code == "card_webhook_signature" and caught.value.status == 400


def test_webhook_tampered_payload() -> None:
    tampered = EVENT.replace(b"pi_1", b"pi_2")
    with pytest.raises(CardWebhookSignatureMismatch):
        verify_webhook(tampered, sign(EVENT), SECRET, now=NOW)


def test_webhook_tampered_timestamp() -> None:
    header = sign(EVENT).replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(CardWebhookSignatureMismatch):
        verify_webhook(EVENT, header, SECRET, now=NOW)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_webhook_missing_header(header: str | None) -> None:
    with pytest.raises(CardWebhookHeaderMissing) as caught:
        verify_webhook(EVENT, header, SECRET, now=NOW)
    assert caught.value.code == "card_webhook_header_missing"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"t={NOW}",  # no v1
        "v1=" + "0" * 64,  # no t
        "t=abc,v1=" + "0" * 64,
        "t=-5,v1=" + "0" * 64,
        f"t={NOW},t={NOW},v1=" + "0" * 64,
        f"t={NOW},v1=",
        f"t={NOW},,v1=" + "0" * 64,
        f"t={NOW},v1=" + "a" * 9000,
    ],
    ids=[
        "garbage",
        "no-v1",
        "no-t",
        "t-not-int",
        "t-negative",
        "two-t",
        "empty-v1",
        "empty-element",
        "too-long",
    ],
)
def test_webhook_malformed_header(header: str) -> None:
    with pytest.raises(CardWebhookHeaderMalformed) as caught:
        verify_webhook(EVENT, header, SECRET, now=NOW)
    assert caught.value.code == "card_webhook_header_malformed"


def test_webhook_too_old() -> None:
    assert verify_webhook(EVENT, sign(EVENT, t=NOW - 300), SECRET, now=NOW)  # edge: accepted
    with pytest.raises(CardWebhookTimestampTooOld) as caught:
        verify_webhook(EVENT, sign(EVENT, t=NOW - 301), SECRET, now=NOW)
    assert caught.value.code == "card_webhook_timestamp_too_old"


def test_webhook_in_the_future_beyond_tolerance() -> None:
    assert verify_webhook(EVENT, sign(EVENT, t=NOW + 300), SECRET, now=NOW)
    with pytest.raises(CardWebhookTimestampInFuture):
        verify_webhook(EVENT, sign(EVENT, t=NOW + 301), SECRET, now=NOW)


def test_webhook_custom_tolerance_and_clock() -> None:
    header = sign(EVENT, t=int(time.time()) - 5)
    assert verify_webhook(EVENT, header, SECRET)  # default clock
    with pytest.raises(CardWebhookTimestampTooOld):
        verify_webhook(EVENT, header, SECRET, tolerance=2)


def test_webhook_signed_but_not_json() -> None:
    with pytest.raises(CardWebhookPayloadInvalid):
        verify_webhook(b"not json", sign(b"not json"), SECRET, now=NOW)
    with pytest.raises(CardWebhookPayloadInvalid):
        verify_webhook(b"[1]", sign(b"[1]"), SECRET, now=NOW)


def test_webhook_errors_form_one_family() -> None:
    for cls in (
        CardWebhookHeaderMissing,
        CardWebhookHeaderMalformed,
        CardWebhookSignatureMismatch,
        CardWebhookTimestampTooOld,
        CardWebhookTimestampInFuture,
        CardWebhookPayloadInvalid,
    ):
        assert issubclass(cls, CardWebhookError) and issubclass(cls, PaymentsError)
        assert cls().should_retry is False and cls().http_status is None


def test_error_codes_are_unique_and_stable() -> None:
    import payments.card as card

    classes = [getattr(card, name) for name in card.__all__]
    errors = [c for c in classes if isinstance(c, type) and issubclass(c, CardGatewayError)]
    codes = [c.code for c in errors]
    assert len(codes) == len(set(codes))
    assert {
        "card_gateway_unavailable",
        "card_declined",
        "card_webhook_signature",
        "card_outcome_unknown",
    } <= set(codes)
    assert CardGatewayUnavailable().should_retry and CardOutcomeUnknown().should_retry
    assert not CardDeclined().should_retry


# =================================================================================== webhook delivery


class _Receiver(BaseHTTPRequestHandler):
    inbox: queue.Queue[tuple[str | None, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.inbox.put((self.headers.get("Stripe-Signature"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, queue.Queue[tuple[str | None, bytes]]]]:
    inbox: queue.Queue[tuple[str | None, bytes]] = queue.Queue()
    handler = type("Receiver", (_Receiver,), {"inbox": inbox})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/hooks/stripe", inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.skipif(
    run_start() is not None,
    reason="localstripe is a server on the real clock: it signs its webhooks with the real time, "
    "which a moved run's verifier (rightly) refuses as a replay",
)
def test_localstripe_webhook_arrives_and_verifies(
    webhook_receiver: tuple[str, queue.Queue[tuple[str | None, bytes]]], sleeps: list[float]
) -> None:
    """End to end: localstripe signs ``payment_intent.succeeded`` and our verifier accepts it.

    Its own server so the webhook registration cannot leak into other tests (localstripe has no
    way to remove one). localstripe posts about 1 s after the event and never retries."""
    url, inbox = webhook_receiver
    secret = "whsec_localstripe_test"
    with (
        LocalStripe() as ls,
        StripeGateway(ls.url, TEST_SECRET_KEY, dialect="localstripe", sleep=sleeps.append) as gw,
    ):
        ls.configure_webhook("motcua", url, secret, events=["payment_intent.succeeded"])
        order_id = new_order()
        intent = create(gw, order_id)
        gw.confirm_payment_intent(intent.id, payment_method(ls, VISA_OK))

        deadline = time.monotonic() + 15
        event: dict[str, Any] | None = None
        while event is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail("no payment_intent.succeeded webhook within 15 s")
            try:
                header, body = inbox.get(timeout=remaining)
            except queue.Empty:
                continue
            candidate = verify_webhook(body, header, secret)
            if candidate["data"]["object"]["id"] == intent.id:
                event = candidate
                with pytest.raises(CardWebhookSignatureMismatch):
                    verify_webhook(body, header, "whsec_someone_else")
                with pytest.raises(CardWebhookSignatureMismatch):
                    verify_webhook(body.replace(b"150000", b"1500"), header, secret)

    assert event["type"] == "payment_intent.succeeded"
    obj = event["data"]["object"]
    assert obj["status"] == "succeeded" and obj["amount"] == 150_000 and obj["currency"] == "vnd"
    assert obj["metadata"]["order_id"] == order_id


# =================================================================================== infra


def test_localstripe_server_is_isolated(localstripe: LocalStripe, gateway: StripeGateway) -> None:
    create(gateway, new_order())
    assert localstripe.state_file is not None and localstripe.state_file.is_file()
    assert localstripe.url.startswith(f"http://{LOOPBACK}:")
    base = localstripe.base_dir
    assert base is not None and str(localstripe.state_file).startswith(str(base))


def test_localstripe_stop_removes_its_folder() -> None:
    with LocalStripe() as ls:
        base = ls.base_dir
        port = ls.port
        assert base is not None and base.is_dir()
    assert not base.exists() and not ls.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{LOOPBACK}:{port}/v1/payment_intents", timeout=1)
