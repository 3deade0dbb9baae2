"""Card payments through a Stripe-compatible gateway (PaymentIntents over the REST API).

A citizen who pays a fee by card never gives us the card number: the browser turns it into a
PaymentMethod with the gateway's publishable key, and this module only handles ids. We speak the
Stripe REST API directly over httpx (form-encoded bodies, ``Authorization: Bearer <secret>``)
instead of the stripe SDK, so the transport, time-outs and retries are ours and can be tested
against a real local server (``localstripe``).

Rules this module enforces, and why:

- **VND is zero-decimal in Stripe.** ``amount`` is whole đồng (150 000 ₫ is ``amount=150000``),
  never ×100. Amounts must be ``int`` (no float, Decimal or bool) and positive; a response whose
  amount or currency differs from what we asked for is rejected (:class:`CardGatewayProtocolError`)
  so that a ×100 slip anywhere on the path cannot charge a citizen a hundred times the fee.
- **Every POST carries an ``Idempotency-Key``**, and the same key is reused on every retry of that
  call, so a retried create, confirm or refund cannot act twice on Stripe.
- **Retries are data.** Each gateway error carries ``should_retry``; only network errors, ``409``
  lock time-outs, ``429`` and ``5xx`` are retried (exponential back-off with jitter), never a
  decline or another ``4xx``. A ``Stripe-Should-Retry`` response header overrides the guess.
- **"Unknown" is not "failed".** When a POST may have reached the gateway but no definitive answer
  came back (time-out after sending, connection dropped, ``5xx`` which Stripe documents as
  indeterminate), :class:`CardOutcomeUnknown` is raised. The caller resolves it later: retry with
  the same idempotency key (carried on the error), :meth:`StripeGateway.retrieve_payment_intent`,
  or :meth:`StripeGateway.find_payment_for_order`. An order is never expired blindly.
- **Webhooks are verified exactly like Stripe does**: ``Stripe-Signature: t=<unix>,v1=<hex>,...``,
  HMAC-SHA256 of ``"{t}.{payload}"`` with the endpoint secret, any ``v1`` may match (secret
  rotation), constant-time comparison, 300 s tolerance on both sides; one error type per cause.

``dialect="localstripe"`` adapts the few requests the test server refuses (it rejects
``description`` on PaymentIntents, ``reason`` on refunds, and answers ``500`` to ``confirm`` with a
``payment_method``); those values then travel in ``metadata`` and the payment method is set by an
update before a bare confirm. Everything else is the same code path as production.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, Protocol, Self, runtime_checkable
from urllib.parse import quote, urlencode, urlsplit

import httpx

from payments import webhook_signature
from payments.errors import InvalidInput, PaymentsError
from payments.webhook_signature import WebhookSignatureError, WebhookSignatureReason

__all__ = [
    "CURRENCY",
    "DEFAULT_WEBHOOK_TOLERANCE",
    "STRIPE_REFUND_REASONS",
    "CardDeclined",
    "CardGateway",
    "CardGatewayAuthError",
    "CardGatewayError",
    "CardGatewayProtocolError",
    "CardGatewayUnavailable",
    "CardIdempotencyConflict",
    "CardLookupIncomplete",
    "CardNotFound",
    "CardOutcomeUnknown",
    "CardRequestInvalid",
    "CardWebhookError",
    "CardWebhookHeaderMalformed",
    "CardWebhookHeaderMissing",
    "CardWebhookPayloadInvalid",
    "CardWebhookSignatureMismatch",
    "CardWebhookTimestampInFuture",
    "CardWebhookTimestampTooOld",
    "Dialect",
    "LastPaymentError",
    "PaymentIntent",
    "Refund",
    "StripeGateway",
    "verify_webhook",
]

CURRENCY: Final = "vnd"
"""Stripe's code for the đồng; zero-decimal, so ``amount`` is whole đồng."""

DEFAULT_WEBHOOK_TOLERANCE: Final = webhook_signature.DEFAULT_TOLERANCE_SECONDS
"""Seconds a webhook timestamp may differ from our clock (Stripe's default), either way."""

STRIPE_REFUND_REASONS: Final = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
"""The only values Stripe accepts in a refund's ``reason``; any other reason goes to metadata."""

Dialect = Literal["stripe", "localstripe"]

_MAX_IDEMPOTENCY_KEY = 255  # Stripe's limit
_DERIVED_KEY_ROOM = 16  # suffixes such as ":confirm" appended to a caller's key
_MAX_METADATA_VALUE = 500  # Stripe's limit per metadata value
_RETRY_AFTER_CAP = 60.0

# httpx errors raised before any byte of the request can have reached the server.
_NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)

# How far a PaymentIntent got, for choosing among several intents of one order.
_STATUS_PRIORITY: Final[Mapping[str, int]] = MappingProxyType(
    {
        "succeeded": 6,
        "processing": 5,
        "requires_capture": 4,
        "requires_action": 3,
        "requires_confirmation": 2,
        "requires_payment_method": 1,
        "canceled": 0,
    }
)


# --------------------------------------------------------------------------------------- errors


class CardGatewayError(PaymentsError):
    """Base of every card-gateway error: our stable ``code`` plus the gateway's transport context.

    ``http_status`` is the gateway's HTTP status (``None`` when no response came back),
    ``gateway_code``/``gateway_type``/``decline_code`` are copied from Stripe's error object,
    ``request_id`` from its ``Request-Id`` header (quote it to Stripe support), and
    ``should_retry`` tells whether repeating the same request (same idempotency key) may succeed.
    ``status`` (inherited) is the HTTP status our own API suggests for the problem.
    """

    code = "card_gateway_error"
    status = 502
    title_vi = "Lỗi cổng thanh toán thẻ"
    title_en = "Card gateway error"
    default_should_retry: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        http_status: int | None = None,
        gateway_code: str | None = None,
        gateway_type: str | None = None,
        decline_code: str | None = None,
        request_id: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        self.http_status = http_status
        self.gateway_code = gateway_code
        self.gateway_type = gateway_type
        self.decline_code = decline_code
        self.request_id = request_id
        self.should_retry = self.default_should_retry if should_retry is None else should_retry
        super().__init__(
            detail,
            extra={
                "gateway_http_status": http_status,
                "gateway_code": gateway_code,
                "decline_code": decline_code,
                "gateway_request_id": request_id,
                "should_retry": self.should_retry,
            },
        )


class CardGatewayUnavailable(CardGatewayError):
    """The gateway could not be reached or asked us to come back later (network, 409 lock, 429,
    5xx on a read); nothing was done, so the same request may simply be repeated."""

    code = "card_gateway_unavailable"
    status = 503
    title_vi = "Cổng thanh toán thẻ tạm thời không truy cập được"
    title_en = "Card gateway temporarily unavailable"
    default_should_retry = True


class CardOutcomeUnknown(CardGatewayError):
    """A POST may have been carried out but we never got a definitive answer.

    Not a failure: money may have moved. Resolve it by repeating the call with the same
    ``idempotency_key`` (Stripe replays the original result for 24 h) or by asking
    (``retrieve_payment_intent``, ``find_payment_for_order``); never expire the order meanwhile.
    """

    code = "card_outcome_unknown"
    status = 504
    title_vi = "Chưa xác định được kết quả giao dịch thẻ; hệ thống sẽ kiểm tra lại"
    title_en = "Card operation outcome unknown; it will be checked again"
    default_should_retry = True

    def __init__(
        self,
        detail: str | None = None,
        *,
        method: str = "POST",
        path: str = "",
        idempotency_key: str | None = None,
        **context: Any,
    ) -> None:
        self.method = method
        self.path = path
        self.idempotency_key = idempotency_key
        super().__init__(detail, **context)


class CardDeclined(CardGatewayError):
    """The card (or its issuer) refused the payment (HTTP 402). Final for this attempt: the
    citizen must use another card; retrying the same request would replay the decline."""

    code = "card_declined"
    status = 402
    title_vi = "Thẻ bị từ chối thanh toán"
    title_en = "The card was declined"

    def __init__(
        self, detail: str | None = None, *, payment_intent_id: str | None = None, **context: Any
    ) -> None:
        self.payment_intent_id = payment_intent_id
        super().__init__(detail, **context)


class CardRequestInvalid(CardGatewayError):
    """The gateway rejected our request (4xx other than a decline): a bug or a bad id on our
    side, not something the citizen can fix, and repeating it will not help."""

    code = "card_request_invalid"
    title_vi = "Yêu cầu gửi cổng thanh toán thẻ không hợp lệ"
    title_en = "Request rejected by the card gateway"


class CardNotFound(CardRequestInvalid):
    """The gateway has no such object (404): wrong id, or an id from another account/key."""

    code = "card_not_found"
    status = 404
    title_vi = "Không tìm thấy giao dịch trên cổng thanh toán thẻ"
    title_en = "No such object at the card gateway"


class CardIdempotencyConflict(CardRequestInvalid):
    """The idempotency key was already used with other parameters (409 ``idempotency_error``):
    two different operations share a key, which is a bug; never retried."""

    code = "card_idempotency_conflict"
    status = 409
    title_vi = "Khóa idempotency đã được dùng cho một yêu cầu khác tới cổng thanh toán thẻ"
    title_en = "Idempotency key reused for a different card gateway request"


class CardGatewayAuthError(CardGatewayError):
    """The gateway refused our secret key (401/403): configuration, not the citizen's fault."""

    code = "card_gateway_auth"
    title_vi = "Cổng thanh toán thẻ từ chối khóa truy cập"
    title_en = "Card gateway rejected our credentials"


class CardGatewayProtocolError(CardGatewayError):
    """The gateway answered something we cannot trust: not JSON, missing fields, or an amount or
    currency other than the one we asked for (the zero-decimal guard)."""

    code = "card_gateway_protocol"
    title_vi = "Phản hồi của cổng thanh toán thẻ không đúng định dạng"
    title_en = "Unexpected response from the card gateway"


class CardLookupIncomplete(CardGatewayError):
    """``find_payment_for_order`` hit its page bound before the end of the list, so "no payment"
    cannot be concluded; the order must not be expired on this answer."""

    code = "card_lookup_incomplete"
    status = 503
    title_vi = "Chưa tra cứu hết giao dịch thẻ của yêu cầu thanh toán"
    title_en = "Card payment lookup incomplete"

    def __init__(
        self, detail: str | None = None, *, partial: PaymentIntent | None = None, **context: Any
    ) -> None:
        self.partial = partial
        super().__init__(detail, **context)


class CardWebhookError(CardGatewayError):
    """A webhook call cannot be trusted; answer 400 and do not act on it."""

    code = "card_webhook_invalid"
    status = 400
    title_vi = "Thông báo từ cổng thanh toán thẻ không hợp lệ"
    title_en = "Invalid card gateway webhook"


class CardWebhookHeaderMissing(CardWebhookError):
    """No (or an empty) ``Stripe-Signature`` header."""

    code = "card_webhook_header_missing"
    title_vi = "Thiếu tiêu đề Stripe-Signature"
    title_en = "Missing Stripe-Signature header"


class CardWebhookHeaderMalformed(CardWebhookError):
    """The header is not ``t=<unix seconds>,v1=<hex>[,v1=...]``."""

    code = "card_webhook_header_malformed"
    title_vi = "Tiêu đề Stripe-Signature sai định dạng"
    title_en = "Malformed Stripe-Signature header"


class CardWebhookSignatureMismatch(CardWebhookError):
    """No ``v1`` signature matches the payload under our secret (wrong secret or tampering)."""

    code = "card_webhook_signature"
    title_vi = "Chữ ký của thông báo không khớp"
    title_en = "Webhook signature does not match"


class CardWebhookTimestampTooOld(CardWebhookError):
    """Correctly signed but older than the tolerance: possibly a replay."""

    code = "card_webhook_timestamp_too_old"
    title_vi = "Dấu thời gian của thông báo đã quá cũ"
    title_en = "Webhook timestamp too old"


class CardWebhookTimestampInFuture(CardWebhookError):
    """Correctly signed but dated further ahead than the tolerance: a clock or forged time."""

    code = "card_webhook_timestamp_in_future"
    title_vi = "Dấu thời gian của thông báo ở tương lai"
    title_en = "Webhook timestamp in the future"


class CardWebhookPayloadInvalid(CardWebhookError):
    """Correctly signed, but the body is not a JSON object."""

    code = "card_webhook_payload"
    title_vi = "Nội dung thông báo không phải JSON hợp lệ"
    title_en = "Webhook body is not a JSON object"


# --------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LastPaymentError:
    """Why the last attempt on a PaymentIntent failed (Stripe's ``last_payment_error``)."""

    code: str | None
    """Stripe error code, e.g. ``card_declined``."""
    decline_code: str | None
    """Issuer's reason when declined, e.g. ``insufficient_funds`` (real Stripe only)."""
    message: str | None
    """Human-readable text from the gateway (English); not for citizens as is."""


@dataclass(frozen=True)
class PaymentIntent:
    """A gateway PaymentIntent as far as fee collection cares; immutable snapshot of one answer."""

    id: str
    """``pi_...``; store it on the order so the payment can be asked about later."""
    status: str
    """Stripe status: ``requires_payment_method``, ``requires_confirmation``, ``requires_action``,
    ``processing``, ``requires_capture``, ``canceled`` or ``succeeded``."""
    amount: int
    """Whole đồng (zero-decimal)."""
    currency: str
    """Always ``vnd`` for intents we create."""
    metadata: Mapping[str, str] = field(hash=False)
    """Contains ``order_id`` and ``reference``, the links back to our payment order."""
    client_secret: str | None = field(default=None, repr=False)
    """Handed to the browser to complete the payment; not logged (``repr=False``)."""
    last_error: LastPaymentError | None = None
    """Why the last confirmation failed, if it did."""
    created: int | None = None
    """Unix seconds at the gateway; orders several intents of one order."""

    @property
    def succeeded(self) -> bool:
        """Money was taken: the order is paid, whatever our own records say."""
        return self.status == "succeeded"

    @property
    def order_id(self) -> str | None:
        return self.metadata.get("order_id")

    @classmethod
    def from_api(cls, obj: Any) -> PaymentIntent:
        """Build from a Stripe ``payment_intent`` JSON object; unexpected shapes are rejected."""
        if not isinstance(obj, dict):
            raise CardGatewayProtocolError("payment_intent is not a JSON object")
        err = obj.get("last_payment_error")
        last_error = None
        if isinstance(err, dict):
            last_error = LastPaymentError(
                code=_opt_str(err.get("code")),
                decline_code=_opt_str(err.get("decline_code")),
                message=_opt_str(err.get("message")),
            )
        created = obj.get("created")
        return cls(
            id=_req_str(obj, "id"),
            status=_req_str(obj, "status"),
            amount=_req_int(obj, "amount"),
            currency=_req_str(obj, "currency"),
            metadata=_metadata(obj),
            client_secret=_opt_str(obj.get("client_secret")),
            last_error=last_error,
            created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        )


@dataclass(frozen=True)
class Refund:
    """A gateway refund (``re_...``); ``amount`` in whole đồng."""

    id: str
    status: str
    """``succeeded``, ``pending``, ``requires_action``, ``failed`` or ``canceled``."""
    amount: int
    currency: str
    payment_intent: str | None
    metadata: Mapping[str, str] = field(hash=False)
    """Carries our free-text ``reason``."""

    @classmethod
    def from_api(cls, obj: Any) -> Refund:
        if not isinstance(obj, dict):
            raise CardGatewayProtocolError("refund is not a JSON object")
        return cls(
            id=_req_str(obj, "id"),
            status=_req_str(obj, "status"),
            amount=_req_int(obj, "amount"),
            currency=_req_str(obj, "currency"),
            payment_intent=_opt_str(obj.get("payment_intent")),
            metadata=_metadata(obj),
        )


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _req_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise CardGatewayProtocolError(f"gateway object lacks a string {key!r}")
    return value


def _req_int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CardGatewayProtocolError(f"gateway object lacks an integer {key!r}")
    return value


def _metadata(obj: dict[str, Any]) -> Mapping[str, str]:
    raw = obj.get("metadata") or {}
    if not isinstance(raw, dict):
        raise CardGatewayProtocolError("gateway metadata is not an object")
    return MappingProxyType({str(k): str(v) for k, v in raw.items()})


# --------------------------------------------------------------------------------------- protocol


@runtime_checkable
class CardGateway(Protocol):
    """What the payment flow needs from a card gateway; :class:`StripeGateway` is the real one,
    tests and other adapters may provide their own."""

    def create_payment_intent(
        self,
        amount_vnd: int,
        *,
        order_id: str,
        reference: str,
        idempotency_key: str,
        description: str,
    ) -> PaymentIntent: ...

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent: ...

    def confirm_payment_intent(
        self, payment_intent_id: str, payment_method: str, *, idempotency_key: str | None = None
    ) -> PaymentIntent: ...

    def create_refund(
        self,
        payment_intent_id: str,
        amount_vnd: int | None,
        *,
        idempotency_key: str,
        reason: str,
    ) -> Refund: ...

    def find_payment_for_order(self, order_id: str) -> PaymentIntent | None: ...

    def verify_webhook(
        self,
        payload: bytes,
        sig_header: str | None,
        secret: str,
        *,
        now: int | None = None,
        tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
    ) -> dict[str, Any]: ...


# --------------------------------------------------------------------------------------- webhooks


_WEBHOOK_ERRORS: Final[dict[WebhookSignatureReason, type[CardWebhookError]]] = {
    WebhookSignatureReason.MISSING: CardWebhookHeaderMissing,
    WebhookSignatureReason.MALFORMED: CardWebhookHeaderMalformed,
    WebhookSignatureReason.NO_SIGNATURE: CardWebhookHeaderMalformed,
    WebhookSignatureReason.MISMATCH: CardWebhookSignatureMismatch,
    WebhookSignatureReason.STALE: CardWebhookTimestampTooOld,
    WebhookSignatureReason.FUTURE: CardWebhookTimestampInFuture,
}
"""Our published problem code for each refusal (one error type per cause)."""


def verify_webhook(
    payload: bytes,
    sig_header: str | None,
    secret: str,
    *,
    now: int | None = None,
    tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
) -> dict[str, Any]:
    """Check a webhook call exactly like Stripe's libraries do and return the parsed event.

    ``payload`` must be the raw request body (re-serialised JSON would not match). The header is
    checked by the service's one ``t=,v1=`` implementation (:mod:`payments.webhook_signature`):
    during a secret rotation Stripe sends one ``v1`` per active secret, so any matching one is
    enough; the signature is checked first (constant time), then the timestamp, ``tolerance``
    seconds either way of ``now`` (unix seconds; the service clock when not given).
    """
    if not secret:
        raise ValueError("webhook secret is empty")
    at = None if now is None else datetime.fromtimestamp(now, UTC)
    try:
        webhook_signature.verify(
            secret,
            payload,
            sig_header,
            now=at,
            tolerance_seconds=tolerance,
            header_name="Stripe-Signature",
        )
    except WebhookSignatureError as exc:
        raise _WEBHOOK_ERRORS[exc.reason](str(exc)) from exc
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardWebhookPayloadInvalid() from exc
    if not isinstance(event, dict):
        raise CardWebhookPayloadInvalid()
    return event


# --------------------------------------------------------------------------------------- gateway


def _require_amount(amount: object, what: str = "amount_vnd") -> int:
    # bool is an int subclass; Decimal/float would hide a ×100 or rounding slip
    if type(amount) is not int:
        raise InvalidInput(f"{what} must be an int number of đồng, got {type(amount).__name__}")
    if amount <= 0:
        raise InvalidInput(f"{what} must be positive, got {amount}")
    return amount


def _require_text(value: object, what: str, limit: int = _MAX_METADATA_VALUE) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise InvalidInput(f"{what} longer than {limit} characters")
    return value


def _require_key(key: object) -> str:
    return _require_text(key, "idempotency_key", _MAX_IDEMPOTENCY_KEY - _DERIVED_KEY_ROOM)


def _path_id(value: object, what: str) -> str:
    return quote(_require_text(value, what, 255), safe="")


class StripeGateway:
    """The Stripe REST API over httpx; also speaks to ``localstripe`` (``dialect="localstripe"``).

    ``api_base`` is ``https://api.stripe.com`` in production; plain ``http`` is only accepted for
    loopback hosts so the secret key never crosses a network unencrypted. ``timeout`` bounds each
    attempt; ``max_retries`` extra attempts follow a retryable failure after
    ``initial_backoff * 2**n`` seconds (capped at ``max_backoff``) with jitter in [50 %, 100 %].
    ``sleep`` and ``rng`` are injectable so tests neither wait nor depend on chance. A ``client``
    passed in is used as is and not closed; otherwise the gateway owns one (``close()``, or use
    it as a context manager).
    """

    def __init__(
        self,
        api_base: str,
        secret_key: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10,
        max_retries: int = 2,
        dialect: Dialect = "stripe",
        initial_backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        api_version: str | None = None,
    ) -> None:
        parts = urlsplit(api_base)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"api_base must be an http(s) URL, got {api_base!r}")
        if parts.scheme == "http" and not loopback:
            raise ValueError("api_base must use https unless it is a loopback test server")
        if not secret_key:
            raise ValueError("secret_key is empty")
        if max_retries < 0 or timeout <= 0:
            raise ValueError("max_retries must be >= 0 and timeout > 0")
        if dialect not in ("stripe", "localstripe"):
            raise ValueError(f"unknown dialect {dialect!r}")
        self.api_base = api_base.rstrip("/")
        self.dialect: Dialect = dialect
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._secret_key = secret_key
        self._timeout = httpx.Timeout(timeout)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._api_version = api_version
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=self._timeout, follow_redirects=False)

    def __repr__(self) -> str:  # never show the secret key
        return f"<StripeGateway {self.api_base} dialect={self.dialect}>"

    def close(self) -> None:
        """Close the HTTP client if this gateway created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ PaymentIntents

    def create_payment_intent(
        self,
        amount_vnd: int,
        *,
        order_id: str,
        reference: str,
        idempotency_key: str,
        description: str,
    ) -> PaymentIntent:
        """Open a card payment of ``amount_vnd`` whole đồng for one payment order.

        ``order_id`` and ``reference`` go to metadata so the gateway can be asked about the order
        later (:meth:`find_payment_for_order`) and a settlement line can be matched back. Use one
        ``idempotency_key`` per order attempt and reuse it after :class:`CardOutcomeUnknown`:
        the gateway then returns the intent it already created instead of a second one.
        """
        amount = _require_amount(amount_vnd)
        form: list[tuple[str, str]] = [
            ("amount", str(amount)),
            ("currency", CURRENCY),
            ("payment_method_types[0]", "card"),
            ("metadata[order_id]", _require_text(order_id, "order_id")),
            ("metadata[reference]", _require_text(reference, "reference")),
        ]
        description = _require_text(description, "description")
        if self.dialect == "stripe":
            form.append(("description", description))
        else:  # localstripe: 400 "Unexpected description"
            form.append(("metadata[description]", description))
        body = self._request(
            "POST", "/v1/payment_intents", form=form, idempotency_key=_require_key(idempotency_key)
        )
        intent = PaymentIntent.from_api(body)
        if intent.amount != amount or intent.currency != CURRENCY:
            raise CardGatewayProtocolError(
                f"asked for {amount} {CURRENCY}, gateway created {intent.amount} {intent.currency}"
            )
        if intent.order_id != order_id:
            raise CardGatewayProtocolError("gateway did not keep metadata order_id")
        return intent

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        """The intent as the gateway sees it now: the way to resolve an unknown outcome."""
        path = f"/v1/payment_intents/{_path_id(payment_intent_id, 'payment_intent_id')}"
        return PaymentIntent.from_api(self._request("GET", path))

    def confirm_payment_intent(
        self, payment_intent_id: str, payment_method: str, *, idempotency_key: str | None = None
    ) -> PaymentIntent:
        """Charge ``payment_method`` (a ``pm_...`` id made by the browser) on the intent.

        Returns the intent (``succeeded``, ``processing`` or ``requires_action`` for 3-D Secure);
        raises :class:`CardDeclined` when the issuer refuses. Without ``idempotency_key`` a random
        key is used for this call (its own retries stay safe); pass one to be able to repeat the
        call after :class:`CardOutcomeUnknown`. Do not reuse a key for a new attempt after a
        decline: the gateway would replay the decline.
        """
        pi = _path_id(payment_intent_id, "payment_intent_id")
        pm = _require_text(payment_method, "payment_method", 255)
        key = _require_key(idempotency_key) if idempotency_key is not None else str(uuid.uuid4())
        try:
            if self.dialect == "stripe":
                body = self._request(
                    "POST",
                    f"/v1/payment_intents/{pi}/confirm",
                    form=[("payment_method", pm)],
                    idempotency_key=key,
                )
            else:  # localstripe answers 500 "Not implemented" to confirm with payment_method
                self._request(
                    "POST",
                    f"/v1/payment_intents/{pi}",
                    form=[("payment_method", pm)],
                    idempotency_key=f"{key}:attach",
                )
                body = self._request(
                    "POST",
                    f"/v1/payment_intents/{pi}/confirm",
                    form=[],
                    idempotency_key=f"{key}:confirm",
                )
        except CardDeclined as exc:
            if exc.payment_intent_id is None:
                exc.payment_intent_id = payment_intent_id
            raise
        return PaymentIntent.from_api(body)

    def find_payment_for_order(
        self,
        order_id: str,
        *,
        created_after: int | None = None,
        page_size: int = 100,
        max_pages: int = 10,
    ) -> PaymentIntent | None:
        """Ask the gateway whether a card payment exists for ``order_id`` before expiring it.

        Lists PaymentIntents (at most ``max_pages`` pages of ``page_size``) and keeps those whose
        ``metadata.order_id`` matches; returns the one that got furthest (``succeeded`` first,
        then ``processing``, ...; newest on ties) or ``None`` when the whole list was read and
        none matched. Stripe's search API is not used: it lags behind writes by up to a minute,
        exactly when this question is asked (and localstripe does not have it).
        ``created_after`` (unix seconds, e.g. the order's creation) narrows the list on Stripe;
        localstripe rejects the filter, so there it is applied here. Raises
        :class:`CardLookupIncomplete` when the bound is reached before the end of the list.
        """
        _require_text(order_id, "order_id")
        if not 1 <= page_size <= 100 or max_pages < 1:
            raise ValueError("page_size must be in 1..100 and max_pages >= 1")
        best: PaymentIntent | None = None
        starting_after: str | None = None
        for _ in range(max_pages):
            params: dict[str, str] = {"limit": str(page_size)}
            if starting_after is not None:
                params["starting_after"] = starting_after
            if created_after is not None and self.dialect == "stripe":
                params["created[gte]"] = str(created_after)
            body = self._request("GET", "/v1/payment_intents", params=params)
            data = body.get("data")
            if not isinstance(data, list):
                raise CardGatewayProtocolError("list response has no data array")
            for obj in data:
                intent = PaymentIntent.from_api(obj)
                if intent.order_id != order_id:
                    continue
                if created_after is not None and (intent.created or 0) < created_after:
                    continue
                if best is None or _rank(intent) > _rank(best):
                    best = intent
            if body.get("has_more") is not True or not data:
                return best
            starting_after = PaymentIntent.from_api(data[-1]).id
        raise CardLookupIncomplete(
            f"more than {max_pages} pages of {page_size} PaymentIntents; order {order_id} "
            "not proven unpaid",
            partial=best,
        )

    # ------------------------------------------------------------------ refunds

    def create_refund(
        self,
        payment_intent_id: str,
        amount_vnd: int | None,
        *,
        idempotency_key: str,
        reason: str,
    ) -> Refund:
        """Refund a succeeded intent, fully (``amount_vnd=None``) or partly (whole đồng).

        ``reason`` is our free text (kept in metadata); when it is one of Stripe's own values
        (:data:`STRIPE_REFUND_REASONS`) it is also sent as Stripe's ``reason``. One key per
        refund decision: reusing it after :class:`CardOutcomeUnknown` cannot refund twice.
        """
        form: list[tuple[str, str]] = [
            ("payment_intent", _require_text(payment_intent_id, "payment_intent_id", 255))
        ]
        if amount_vnd is not None:
            form.append(("amount", str(_require_amount(amount_vnd))))
        reason = _require_text(reason, "reason")
        form.append(("metadata[reason]", reason))
        if self.dialect == "stripe" and reason in STRIPE_REFUND_REASONS:
            form.append(("reason", reason))  # localstripe: 400 "Unexpected reason"
        body = self._request(
            "POST", "/v1/refunds", form=form, idempotency_key=_require_key(idempotency_key)
        )
        refund = Refund.from_api(body)
        if amount_vnd is not None and refund.amount != amount_vnd:
            raise CardGatewayProtocolError(
                f"asked to refund {amount_vnd}, gateway refunded {refund.amount}"
            )
        if refund.currency != CURRENCY:
            raise CardGatewayProtocolError(f"refund in {refund.currency}, expected {CURRENCY}")
        return refund

    # ------------------------------------------------------------------ webhooks

    @staticmethod
    def verify_webhook(
        payload: bytes,
        sig_header: str | None,
        secret: str,
        *,
        now: int | None = None,
        tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
    ) -> dict[str, Any]:
        """Same as the module-level :func:`verify_webhook` (no network involved)."""
        return verify_webhook(payload, sig_header, secret, now=now, tolerance=tolerance)

    # ------------------------------------------------------------------ transport

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        """Delay before retry number ``retry`` (1-based): exponential, capped, jittered."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2.0 ** (retry - 1))
        delay = ceiling * (0.5 + self._rng.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, _RETRY_AFTER_CAP))
        return delay

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._secret_key}",
            "Accept": "application/json",
            "User-Agent": "motcua-pay card gateway",
        }
        if self._api_version:
            headers["Stripe-Version"] = self._api_version
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return headers

    def _request(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        form: list[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One API call with retries; returns the JSON object or raises a CardGatewayError.

        The same headers (so the same Idempotency-Key) are sent on every attempt. ``maybe_done``
        records that a POST may have been carried out (sent but unanswered, or a 5xx), which turns
        an exhausted retry budget into :class:`CardOutcomeUnknown` instead of "unavailable".
        """
        if method == "POST" and not idempotency_key:
            raise ValueError("every POST needs an Idempotency-Key")
        url = self.api_base + path
        headers = self._headers(idempotency_key if method == "POST" else None)
        content = urlencode(form or []).encode("ascii") if method == "POST" else None
        maybe_done = False
        last: CardGatewayError | None = None
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self._backoff(attempt, retry_after))
            retry_after = None
            try:
                response = self._client.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers=headers,
                    timeout=self._timeout,
                )
            except httpx.RequestError as exc:  # transport, timeout, undecodable body
                sent = not isinstance(exc, _NOT_SENT_ERRORS)
                maybe_done |= sent and method == "POST"
                last = CardGatewayUnavailable(
                    f"{method} {path}: {type(exc).__name__}: {exc}"
                    + (" (after the request was sent)" if sent else "")
                )
                continue
            if response.is_success:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    if method == "POST":  # done, but we cannot read what was done
                        raise CardOutcomeUnknown(
                            f"{method} {path}: unreadable {response.status_code} body",
                            method=method,
                            path=path,
                            idempotency_key=idempotency_key,
                            http_status=response.status_code,
                            request_id=response.headers.get("request-id"),
                            should_retry=True,
                        )
                    raise CardGatewayProtocolError(
                        f"{method} {path}: response is not a JSON object",
                        http_status=response.status_code,
                        request_id=response.headers.get("request-id"),
                    )
                return body
            last = _error_from_response(method, path, response)
            server_error = method == "POST" and response.status_code >= 500
            maybe_done |= server_error
            if not last.should_retry:
                if server_error:  # Stripe: a 5xx leaves the result indeterminate
                    raise _unknown(last, method, path, idempotency_key, should_retry=False)
                raise last
            retry_after = _retry_after(response)
        assert last is not None
        if maybe_done:
            raise _unknown(last, method, path, idempotency_key, should_retry=True)
        raise last


def _unknown(
    last: CardGatewayError,
    method: str,
    path: str,
    idempotency_key: str | None,
    *,
    should_retry: bool,
) -> CardOutcomeUnknown:
    return CardOutcomeUnknown(
        f"{last.detail}; outcome unknown",
        method=method,
        path=path,
        idempotency_key=idempotency_key,
        http_status=last.http_status,
        gateway_code=last.gateway_code,
        gateway_type=last.gateway_type,
        request_id=last.request_id,
        should_retry=should_retry,
    )


def _rank(intent: PaymentIntent) -> tuple[int, int]:
    return _STATUS_PRIORITY.get(intent.status, 0), intent.created or 0


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error_from_response(method: str, path: str, response: httpx.Response) -> CardGatewayError:
    """Map a non-2xx answer to our error type, with Stripe's error object and Request-Id."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    gateway_type = _opt_str(err.get("type"))
    context: dict[str, Any] = {
        "http_status": status,
        "gateway_code": _opt_str(err.get("code")),
        "gateway_type": gateway_type,
        "decline_code": _opt_str(err.get("decline_code")),
        "request_id": response.headers.get("request-id"),
    }
    header = response.headers.get("stripe-should-retry")
    if header in ("true", "false"):
        context["should_retry"] = header == "true"
    message = _opt_str(err.get("message")) or response.reason_phrase
    detail = f"{method} {path}: {status} {message}"
    if status == 402:
        intent = err.get("payment_intent")
        pi_id = intent.get("id") if isinstance(intent, dict) else None
        return CardDeclined(detail, payment_intent_id=_opt_str(pi_id), **context)
    if status in (401, 403):
        return CardGatewayAuthError(detail, **context)
    if status == 404:
        return CardNotFound(detail, **context)
    if status == 409 and gateway_type == "idempotency_error":
        return CardIdempotencyConflict(detail, **context)
    if status in (409, 429) or status >= 500:
        return CardGatewayUnavailable(detail, **context)
    return CardRequestInvalid(detail, **context)
