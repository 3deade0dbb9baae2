"""Signed callbacks to one-stop systems (contract.md, "Callbacks to one-stop systems").

Why it is built this way:

- **Transactional outbox.** :func:`enqueue_event` only writes a row, in the caller's
  transaction. If the order's change commits, the callback is committed with it and a crash
  right after the commit loses nothing; if it rolls back, nobody is told about a payment that
  did not happen. Nothing here can make the caller's transaction fail because a one-stop system
  is unreachable.
- **Bytes frozen once.** The body is serialised at enqueue and stored; every retry and replay
  posts identical bytes, so receivers can de-duplicate and signatures can be recomputed.
- **Signed per attempt.** ``Motcua-Signature: t=<unix>,v1=<hex>`` is an HMAC-SHA256 of
  ``"{t}.{body}"`` with the client's ``callback_secret``, computed with each attempt's own
  ``t`` so a receiver can bound replay with a short tolerance (stripe-python's scheme,
  :func:`verify` is the receiver's half).
- **Published retry schedule, as data.** :data:`RETRY_SCHEDULE` drives :func:`next_attempt_at`
  and :func:`render_retry_schedule_markdown`, so the documentation cannot drift.
- **Claims, not long transactions.** :func:`deliver_due` claims one due event at a time in a
  short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
  already serialises writers), stamps a lease on it, commits, and only then talks HTTP. Two
  workers never send the same event at once, no row lock is held across the network, and an
  event claimed by a worker that died is picked up again when its lease runs out.
- **Allow-list at send time.** The URL is re-checked before every attempt; a refused URL or a
  revoked client is logged and the event fails at once (waiting cannot fix either; an operator
  replays it after fixing the cause). Redirects are never followed, so a 3xx cannot lead the
  request elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from payments import webhook_signature
from payments.callback_models import CallbackAttempt, CallbackEvent
from payments.credentials import check_callback_url
from payments.errors import InvalidInput, NotFound, PaymentsError
from payments.models import ApiClient
from payments.onestop_models import OnestopPartner
from payments.webhook_signature import WebhookSignatureError, WebhookSignatureReason
from settings.db import utcnow

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOLERANCE",
    "DELIVERY_STATES",
    "EVENTS",
    "EVENT_ID_HEADER",
    "RETRY_SCHEDULE",
    "SIGNATURE_HEADER",
    "USER_AGENT",
    "AttemptView",
    "CallbackError",
    "CallbackEventNotFound",
    "DeliveryReport",
    "DeliveryView",
    "InvalidCallbackPayload",
    "ReplayNotAllowed",
    "SignatureHeaderMalformed",
    "SignatureMismatch",
    "SignatureNotFound",
    "SignatureTimestampOutOfTolerance",
    "SignatureVerificationError",
    "UnknownCallbackEvent",
    "compute_signature",
    "deliver_due",
    "delivery_log",
    "enqueue_event",
    "list_deliveries",
    "next_attempt_at",
    "render_retry_schedule_markdown",
    "replay",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = (
    "payment_order.succeeded",
    "payment_order.expired",
    "payment_order.cancelled",
    "receipt.issued",
    "receipt.replaced",
)
"""Every event a one-stop system can receive; anything else is a programming error."""

RETRY_SCHEDULE: tuple[int, ...] = (60, 300, 3600, 86400, 172800)
"""Seconds to wait after failed attempt 1, 2, … before the next one (GOV.UK Pay's published
1 min, 5 min, 1 h, 1 day, 2 days). After the last retry fails the event is ``failed``."""

DELIVERY_STATES: tuple[str, ...] = ("pending", "delivered", "failed")

SIGNATURE_HEADER = "Motcua-Signature"
EVENT_ID_HEADER = "Motcua-Event-Id"
USER_AGENT = "motcua-pay-callbacks/1"
DEFAULT_TIMEOUT = 10.0
"""Seconds for connect, send and reading the answer of one attempt."""
DEFAULT_TOLERANCE = webhook_signature.DEFAULT_TOLERANCE_SECONDS
"""Seconds a receiver should accept between ``t=`` and its own clock (stripe's default)."""

_EXCERPT_CHARS = 500
_EXCERPT_BYTES = 4 * _EXCERPT_CHARS  # UTF-8 needs at most 4 bytes per character
_LEASE_MARGIN = timedelta(seconds=60)
PP_CONFIRM = "pp_confirm"
"""``callback_events.kind`` of a PP-DVCQG CONFIRM (:mod:`payments.onestop_partners`)."""

Outcome = Literal["delivered", "http_error", "timeout", "network_error", "refused"]


# --------------------------------------------------------------------------- errors


class CallbackError(PaymentsError):
    """Base of the callback errors."""

    code = "callback_error"
    status = 400
    title_vi = "Lỗi gửi thông báo kết quả cho hệ thống một cửa"
    title_en = "Callback error"


class UnknownCallbackEvent(CallbackError):
    """The event name is not one of :data:`EVENTS` (the contract lists them all)."""

    code = "unknown_callback_event"
    status = 422
    title_vi = "Loại sự kiện thông báo không hợp lệ"
    title_en = "Unknown callback event"


class InvalidCallbackPayload(CallbackError):
    """The data cannot be sent as JSON, or the time it happened is not time-zone aware."""

    code = "invalid_callback_payload"
    status = 422
    title_vi = "Nội dung thông báo không hợp lệ"
    title_en = "Invalid callback payload"


class CallbackEventNotFound(NotFound):
    """No such event (or it belongs to another client)."""

    code = "callback_event_not_found"
    title_vi = "Không tìm thấy thông báo"
    title_en = "Callback event not found"


class ReplayNotAllowed(CallbackError):
    """Only a delivered or failed event can be replayed; a pending one is already scheduled."""

    code = "callback_replay_not_allowed"
    status = 409
    title_vi = "Thông báo đang chờ gửi, không thể gửi lại"
    title_en = "The event is still being delivered"


class SignatureVerificationError(CallbackError):
    """A ``Motcua-Signature`` was rejected; the subclass names the cause."""

    code = "signature_invalid"
    status = 400
    title_vi = "Chữ ký thông báo không hợp lệ"
    title_en = "Invalid callback signature"


class SignatureHeaderMalformed(SignatureVerificationError):
    """Missing header, or not ``t=<unix>,v1=<hex>[,v1=<hex>…]`` with exactly one ``t``."""

    code = "signature_header_malformed"


class SignatureNotFound(SignatureVerificationError):
    """The header carries no ``v1`` signature (other schemes are ignored)."""

    code = "signature_not_found"


class SignatureMismatch(SignatureVerificationError):
    """No ``v1`` equals the HMAC of ``"{t}.{body}"`` under any of the given secrets."""

    code = "signature_mismatch"


class SignatureTimestampOutOfTolerance(SignatureVerificationError):
    """``t`` is further from the receiver's clock than the tolerance: a replayed request."""

    code = "signature_timestamp_out_of_tolerance"


# --------------------------------------------------------------------------- signing


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def _secrets(secret: str | Sequence[str], purpose: str) -> list[str]:
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys or not all(keys):
        raise InvalidInput(f"a callback secret is required to {purpose}")
    return keys


def compute_signature(secret: str, body: bytes | str, t: int) -> str:
    """Hex HMAC-SHA256 of ``"{t}.{body}"``: the value of one ``v1=``."""
    return webhook_signature.compute(secret, _as_bytes(body), t)


def sign(secret: str | Sequence[str], body: bytes | str, t: int) -> str:
    """The ``Motcua-Signature`` header value for ``body`` at unix time ``t``.

    Several secrets give several ``v1=`` (signing with old and new secret while rotating).
    """
    return webhook_signature.sign(_secrets(secret, "sign"), _as_bytes(body), t)


_ERRORS: dict[WebhookSignatureReason, type[SignatureVerificationError]] = {
    WebhookSignatureReason.MISSING: SignatureHeaderMalformed,
    WebhookSignatureReason.MALFORMED: SignatureHeaderMalformed,
    WebhookSignatureReason.NO_SIGNATURE: SignatureNotFound,
    WebhookSignatureReason.MISMATCH: SignatureMismatch,
    WebhookSignatureReason.STALE: SignatureTimestampOutOfTolerance,
    WebhookSignatureReason.FUTURE: SignatureTimestampOutOfTolerance,
}
"""The published error of each refusal (contract.md): the four codes a receiver documents."""


def verify(
    header: str | None,
    body: bytes | str,
    secret: str | Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
    now: datetime | float | None = None,
) -> int:
    """Checks a callback as a one-stop system should; returns the signed ``t``.

    The receiver's half, by the service's one set of ``t=,v1=`` rules
    (:mod:`payments.webhook_signature`): ``body`` must be the raw request bytes (re-serialised
    JSON will not match), any ``v1`` matching any secret passes (rotation on either side), and
    the signature is checked before the timestamp. Raises a :class:`SignatureVerificationError`
    subclass naming the cause.
    """
    keys = _secrets(secret, "verify")
    at = datetime.fromtimestamp(now, UTC) if isinstance(now, int | float) else now
    try:
        return webhook_signature.verify(
            keys,
            _as_bytes(body),
            header,
            now=at,
            tolerance_seconds=tolerance,
            header_name=SIGNATURE_HEADER,
        )
    except WebhookSignatureError as exc:
        raise _ERRORS[exc.reason](str(exc)) from exc


# --------------------------------------------------------------------------- schedule


def next_attempt_at(attempt_no: int, last_at: datetime) -> datetime | None:
    """When to try again after attempt ``attempt_no`` (1 = the first send) failed at
    ``last_at``; ``None`` when the schedule is exhausted and the event becomes ``failed``."""
    if attempt_no < 1:
        raise InvalidInput("attempt numbers start at 1")
    if attempt_no > len(RETRY_SCHEDULE):
        return None
    return last_at + timedelta(seconds=RETRY_SCHEDULE[attempt_no - 1])


def _human(seconds: int) -> str:
    """``90060`` → ``1 day 1 hour 1 minute`` (the units the schedule is published in)."""
    parts = []
    rest = seconds
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"


def render_retry_schedule_markdown() -> str:
    """The published retry schedule, generated from :data:`RETRY_SCHEDULE` for the docs."""
    rows = ["| attempt | when |", "|---|---|", "| 1 | as soon as the event is committed |"]
    rows += [
        f"| {number} | {_human(delay)} after attempt {number - 1} failed |"
        for number, delay in enumerate(RETRY_SCHEDULE, start=2)
    ]
    return (
        "# Callback retry schedule\n\n"
        "Generated from `payments/callbacks.py`. Any 2xx answer acknowledges a callback; any "
        f"other status, a timeout ({DEFAULT_TIMEOUT:.0f} s) or a network error is retried. "
        "Redirects are not followed, and a URL outside the allow-list is never called: the "
        "attempt is logged as refused and the callback fails at once. "
        f"After attempt {len(RETRY_SCHEDULE) + 1} fails (about "
        f"{_human(sum(RETRY_SCHEDULE))} after the first) the callback is `failed`; an operator "
        "can replay it, which starts the schedule again. Every attempt posts the same body "
        f"bytes with the same `{EVENT_ID_HEADER}`, signed afresh with the attempt's time "
        f'(`{SIGNATURE_HEADER}: t=<unix>,v1=<hex HMAC-SHA256 of "{{t}}.{{body}}">`).\n\n'
        + "\n".join(rows)
        + "\n"
    )


# --------------------------------------------------------------------------- enqueue


def _serialise(event_id: str, event: str, created: int, data: dict[str, Any]) -> bytes:
    try:
        return json.dumps(
            {"id": event_id, "event": event, "created": created, "data": data},
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError (lone surrogate) is a ValueError
        raise InvalidCallbackPayload(f"callback data is not plain JSON: {exc}") from exc


def enqueue_event(
    session: Session,
    *,
    client_id: str | None,
    url: str | None,
    event: str,
    data: dict[str, Any],
    occurred_at: datetime,
    now: datetime | None = None,
) -> CallbackEvent | None:
    """Adds a callback to the caller's transaction; it is sent only if that transaction commits.

    Returns ``None`` (and writes nothing) when there is no URL, or no client whose secret could
    sign it. The URL is *not* refused here: that would roll back the payment being recorded;
    it is checked at every send instead. ``now`` (default: the clock) is when it becomes due.
    """
    if event not in EVENTS:
        raise UnknownCallbackEvent(f"{event!r} is not one of {', '.join(EVENTS)}")
    if not isinstance(data, dict):
        raise InvalidCallbackPayload("callback data must be a JSON object")
    if occurred_at.tzinfo is None:
        raise InvalidCallbackPayload("occurred_at must be time-zone aware")
    if not url:
        return None
    if client_id is None:
        log.warning("callback %s to %s dropped: no API client to sign it", event, url)
        return None
    event_id = "evt_" + uuid.uuid4().hex
    body = _serialise(event_id, event, int(occurred_at.timestamp()), data)
    object_id = data.get("id")
    at = now or utcnow()
    row = CallbackEvent(
        id=event_id,
        client_id=client_id,
        url=url,
        event=event,
        object_id=object_id if isinstance(object_id, str) and len(object_id) <= 64 else None,
        body=body,
        created_at=occurred_at,
        enqueued_at=at,
        state="pending",
        attempt_count=0,
        round_attempts=0,
        next_attempt_at=at,
    )
    session.add(row)
    session.flush()
    return row


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_due` run did (counts of attempts by result)."""

    attempted: int = 0
    delivered: int = 0
    retry_scheduled: int = 0
    failed: int = 0
    """Attempts after which the event is dead (schedule exhausted, or refused)."""
    refused: int = 0
    """Attempts not sent: URL outside the allow-list or client revoked (also in ``failed``)."""
    lost_claims: int = 0
    """Results not applied because the lease had run out and another worker took over."""
    event_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Claim:
    event_id: str
    attempt_no: int
    round_no: int
    url: str
    body: bytes
    secret: str | None
    token: str
    kind: str = "motcua"
    """``pp_confirm``: a PP-DVCQG CONFIRM (:func:`_pp_acknowledged` decides what acknowledges)."""


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    at: datetime
    signature_t: int | None = None
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    response_excerpt: str | None = None


class _Clock:
    """``now`` plus the time elapsed since the run began: a long batch signs with real times."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0


def _claim_next(
    session_factory: Callable[[], Session], at: datetime, timeout: float
) -> _Claim | None:
    with session_factory() as session, session.begin():
        query = (
            select(CallbackEvent)
            .where(
                CallbackEvent.state == "pending",
                CallbackEvent.next_attempt_at <= at,
                or_(CallbackEvent.lease_until.is_(None), CallbackEvent.lease_until <= at),
            )
            .order_by(CallbackEvent.next_attempt_at, CallbackEvent.id)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        event = session.scalars(query).first()
        if event is None:
            return None
        if event.kind == PP_CONFIRM:
            partner = session.get(OnestopPartner, event.partner_id)
            # the checksum is in the frozen body: the "secret" only says someone is there
            secret = "pp" if partner is not None and partner.active else None
        else:
            client = session.execute(
                select(ApiClient.callback_secret, ApiClient.active).where(
                    ApiClient.id == event.client_id
                )
            ).first()
            secret = client.callback_secret if client is not None and client.active else None
        event.attempt_count += 1
        event.round_attempts += 1
        event.lease_token = secrets.token_hex(16)
        event.lease_until = at + timedelta(seconds=timeout) + _LEASE_MARGIN
        return _Claim(
            event_id=event.id,
            attempt_no=event.attempt_count,
            round_no=event.round_attempts,
            url=event.url,
            body=event.body,
            secret=secret,
            token=event.lease_token,
            kind=event.kind,
        )


def _read_excerpt(response: httpx.Response, deadline: float) -> str:
    """The start of the answer, for the log. Reads only what the log keeps and stops at the
    deadline (a receiver dripping an endless answer must not hold the worker); once the status
    is in, a broken body cannot turn an acknowledgement into a failure."""
    received = bytearray()
    try:
        for chunk in response.iter_bytes():
            received += chunk
            if len(received) >= _EXCERPT_BYTES or time.monotonic() > deadline:
                break
    except httpx.HTTPError as exc:
        return f"{received.decode('utf-8', errors='replace')}[{_error_text(exc)}]"[:_EXCERPT_CHARS]
    return received.decode("utf-8", errors="replace")[:_EXCERPT_CHARS]


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_EXCERPT_CHARS]


def _send(
    claim: _Claim, http: httpx.Client, at: datetime, timeout: float, allow_loopback: bool
) -> _Result:
    try:
        check_callback_url(claim.url, allow_loopback=allow_loopback)
    except InvalidInput as exc:
        return _Result("refused", at, error=f"url refused: {exc.detail}"[:_EXCERPT_CHARS])
    if claim.secret is None:
        return _Result("refused", at, error="client revoked: nobody to sign for")
    t = int(at.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: claim.event_id,
    }
    if claim.kind != PP_CONFIRM:
        headers[SIGNATURE_HEADER] = sign(claim.secret, claim.body, t)
    started = time.monotonic()
    deadline = started + timeout

    def duration() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with http.stream(
            "POST",
            claim.url,
            content=claim.body,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            status = response.status_code
            excerpt = _read_excerpt(response, deadline)
    except httpx.TimeoutException as exc:
        return _Result("timeout", at, t, error=_error_text(exc), duration_ms=duration())
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return _Result("network_error", at, t, error=_error_text(exc), duration_ms=duration())
    ok = 200 <= status < 300
    error = None if ok else f"HTTP {status}"
    if ok and claim.kind == PP_CONFIRM and not _pp_acknowledged(excerpt):
        ok, error = False, "not acknowledged: the answer's MaLoi is not 00"
    return _Result(
        "delivered" if ok else "http_error",
        at,
        t if claim.kind != PP_CONFIRM else None,
        status_code=status,
        error=error,
        duration_ms=duration(),
        response_excerpt=excerpt,
    )


_PP_ACK = re.compile(r'"MaLoi"\s*:\s*"00"')


def _pp_acknowledged(answer: str) -> bool:
    """A PP-DVCQG partner acknowledges a CONFIRM with ``{"MaLoi": "00", …}``; anything else
    (``99``, no JSON, an empty 200) means "send it again later" (docs/onestop-pp.md). The
    answer is read from the logged excerpt; a long answer cut there is still recognised by
    its ``MaLoi`` field."""
    try:
        data = json.loads(answer)
    except ValueError:
        return bool(_PP_ACK.search(answer))
    return isinstance(data, dict) and data.get("MaLoi") == "00"


RECORD_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds between the attempts to record one result while the database is unreachable."""


def _record_durably(
    session_factory: Callable[[], Session],
    claim: _Claim,
    result: _Result,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """:func:`_record`, retried (bounded: about 15 s) when the database connection fails.

    The request has already gone out: if its result were dropped, the event would stay leased
    and be posted again when the lease runs out, so a receiver that had acknowledged it would
    get it twice (found by the fault suite restarting PostgreSQL, docs/faults.md). A result that
    still cannot be recorded after the last retry is raised; the lease then remains the backstop.
    """
    for delay in RECORD_RETRY_DELAYS:
        try:
            return _record(session_factory, claim, result)
        except OperationalError:
            log.warning("callback %s: result not recorded, database unreachable", claim.event_id)
            sleep(delay)
    return _record(session_factory, claim, result)


def _record(session_factory: Callable[[], Session], claim: _Claim, result: _Result) -> str:
    """Logs the attempt and moves the event on; returns the event's new state or ``lost``.

    Idempotent per claim: when a retry finds the attempt already logged (its first commit went
    through but the answer was lost), it changes nothing and reports the event's state.
    """
    with session_factory() as session, session.begin():
        event = session.get(CallbackEvent, claim.event_id, with_for_update=True)
        if event is not None and event.lease_token != claim.token:
            logged = session.scalar(
                select(CallbackAttempt.id).where(
                    CallbackAttempt.event_id == claim.event_id,
                    CallbackAttempt.attempt_no == claim.attempt_no,
                )
            )
            if logged is not None:
                return event.state
        session.add(
            CallbackAttempt(
                event_id=claim.event_id,
                attempt_no=claim.attempt_no,
                at=result.at,
                outcome=result.outcome,
                url=claim.url,
                signature_t=result.signature_t,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
                response_excerpt=result.response_excerpt,
            )
        )
        if event is None or event.lease_token != claim.token:
            log.warning("callback %s: lease lost before its result was recorded", claim.event_id)
            return "lost"
        event.lease_token = None
        event.lease_until = None
        event.last_attempt_at = result.at
        event.last_status_code = result.status_code
        event.last_error = result.error
        if result.outcome == "delivered":
            event.state = "delivered"
            event.delivered_at = result.at
            event.next_attempt_at = None
        elif result.outcome == "refused":
            event.state = "failed"
            event.next_attempt_at = None
        else:
            following = next_attempt_at(claim.round_no, result.at)
            event.state = "pending" if following is not None else "failed"
            event.next_attempt_at = following
        return event.state


def deliver_due(
    session_factory: Callable[[], Session],
    *,
    now: datetime,
    http: httpx.Client,
    allow_loopback: bool,
    batch: int = 50,
    timeout: float = DEFAULT_TIMEOUT,
    budget_seconds: float | None = None,
) -> DeliveryReport:
    """Sends up to ``batch`` due callbacks, one claim at a time; safe to run in many workers.

    ``now`` is the time of the run (tests drive it forward); attempts are stamped ``now`` plus
    the real time elapsed since the call, so a long batch still signs with current times.
    ``allow_loopback`` is true only in the embedded profile. ``budget_seconds`` stops claiming
    new work once spent, so a periodic task never overlaps itself for long.
    """
    if batch < 1:
        raise InvalidInput("batch must be at least 1")
    clock = _Clock(now)
    counts = {"delivered": 0, "retry": 0, "failed": 0, "refused": 0, "lost": 0}
    sent: list[str] = []
    for _ in range(batch):
        if budget_seconds is not None and clock.elapsed() >= budget_seconds:
            break
        claim = _claim_next(session_factory, clock.now(), timeout)
        if claim is None:
            break
        result = _send(claim, http, clock.now(), timeout, allow_loopback)
        state = _record_durably(session_factory, claim, result)
        sent.append(claim.event_id)
        log.info(
            "callback %s attempt %d to %s: %s %s",
            claim.event_id,
            claim.attempt_no,
            claim.url,
            result.outcome,
            result.status_code or result.error or "",
        )
        if result.outcome == "refused":
            counts["refused"] += 1
        if state == "delivered":
            counts["delivered"] += 1
        elif state == "failed":
            counts["failed"] += 1
        elif state == "pending":
            counts["retry"] += 1
        else:
            counts["lost"] += 1
    return DeliveryReport(
        attempted=len(sent),
        delivered=counts["delivered"],
        retry_scheduled=counts["retry"],
        failed=counts["failed"],
        refused=counts["refused"],
        lost_claims=counts["lost"],
        event_ids=tuple(sent),
    )


# --------------------------------------------------------------------------- operations


def replay(
    session: Session,
    event_id: str,
    actor: str,
    *,
    now: datetime | None = None,
    client_id: str | None = None,
) -> CallbackEvent:
    """Schedules an immediate new attempt of a delivered or failed event, in the caller's
    transaction, and logs who asked. The retry schedule starts again; the body is unchanged.

    ``client_id`` scopes the lookup when a client replays its own events through the API.
    """
    if not actor or not actor.strip():
        raise InvalidInput("a replay must name who asked for it")
    event = session.get(CallbackEvent, event_id, with_for_update=True)
    if event is None or (client_id is not None and event.client_id != client_id):
        raise CallbackEventNotFound(f"no callback event {event_id}")
    if event.state == "pending":
        raise ReplayNotAllowed(f"callback event {event_id} is still pending")
    at = now or utcnow()
    event.state = "pending"
    event.next_attempt_at = at
    event.round_attempts = 0
    session.add(
        CallbackAttempt(
            event_id=event.id, at=at, outcome="replay", url=event.url, actor=actor.strip()[:255]
        )
    )
    session.flush()
    return event


@dataclass(frozen=True)
class DeliveryView:
    """One event as an operator or the client sees it in a delivery listing."""

    id: str
    event: str
    object_id: str | None
    url: str
    state: str
    attempts: int
    created_at: datetime
    enqueued_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat().replace("+00:00", "Z") if moment else None

        return {
            "id": self.id,
            "object": "callback_delivery",
            "event": self.event,
            "object_id": self.object_id,
            "url": self.url,
            "state": self.state,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "enqueued_at": iso(self.enqueued_at),
            "next_attempt_at": iso(self.next_attempt_at),
            "last_attempt_at": iso(self.last_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "delivered_at": iso(self.delivered_at),
        }


@dataclass(frozen=True)
class AttemptView:
    """One line of an event's delivery log."""

    attempt_no: int | None
    at: datetime
    outcome: str
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int | None
    response_excerpt: str | None
    actor: str | None


def list_deliveries(
    session: Session, client_id: str, state: str | None = None, limit: int = 100
) -> list[DeliveryView]:
    """A client's callbacks, newest first, optionally only those in one state."""
    if state is not None and state not in DELIVERY_STATES:
        raise InvalidInput(f"state must be one of {', '.join(DELIVERY_STATES)}")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    query = select(CallbackEvent).where(CallbackEvent.client_id == client_id)
    if state is not None:
        query = query.where(CallbackEvent.state == state)
    query = query.order_by(CallbackEvent.enqueued_at.desc(), CallbackEvent.id.desc()).limit(limit)
    return [
        DeliveryView(
            id=row.id,
            event=row.event,
            object_id=row.object_id,
            url=row.url,
            state=row.state,
            attempts=row.attempt_count,
            created_at=row.created_at,
            enqueued_at=row.enqueued_at,
            next_attempt_at=row.next_attempt_at,
            last_attempt_at=row.last_attempt_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            delivered_at=row.delivered_at,
        )
        for row in session.scalars(query)
    ]


def delivery_log(
    session: Session, event_id: str, *, client_id: str | None = None
) -> list[AttemptView]:
    """Every attempt and replay of one event, oldest first."""
    event = session.get(CallbackEvent, event_id)
    if event is None or (client_id is not None and event.client_id != client_id):
        raise CallbackEventNotFound(f"no callback event {event_id}")
    rows = session.scalars(
        select(CallbackAttempt)
        .where(CallbackAttempt.event_id == event_id)
        .order_by(CallbackAttempt.id)
    )
    return [
        AttemptView(
            attempt_no=row.attempt_no,
            at=row.at,
            outcome=row.outcome,
            url=row.url,
            status_code=row.status_code,
            error=row.error,
            duration_ms=row.duration_ms,
            response_excerpt=row.response_excerpt,
            actor=row.actor,
        )
        for row in rows
    ]
