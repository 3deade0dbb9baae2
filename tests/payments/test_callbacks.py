"""Signed callbacks to one-stop systems: outbox, signature, schedule, delivery, replay (issue 4.8).

Deliveries go to a real HTTP server on 127.0.0.1 (``infra.callback_receiver``) on SQLite and
on PostgreSQL. Time is driven through ``now``; nothing sleeps to wait for a retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from infra.callback_receiver import CallbackReceiver
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import payments.callback_models  # noqa: F401 - the tables join Base.metadata (load_all_models)
from payments import callbacks as cb
from payments.callback_models import CallbackAttempt, CallbackEvent
from payments.credentials import add_client
from payments.errors import InvalidInput, NotFound, PaymentsError
from payments.models import Agency, ApiClient
from settings.config import Settings
from settings.db import Base, engine_for, make_engine, session_factory, utcnow

ORDER_DATA: dict[str, Any] = {
    "id": "0f3c9a1e2b4d4c6e8f0a1b2c3d4e5f60",
    "object": "payment_order",
    "reference": "MC26CAHN00001X",
    "status": "succeeded",
    "amount": 30000,
    "currency": "VND",
    "payer": {"name": "Nguyễn Văn An", "id_number": "********2345"},
    "procedure_name": "Chứng thực bản sao từ bản chính",
}


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    factory: sessionmaker[Session]
    client_id: str
    secret: str
    rx: CallbackReceiver
    http: httpx.Client

    def enqueue(
        self,
        event: str = "payment_order.succeeded",
        data: dict[str, Any] | None = None,
        *,
        now: datetime | None = None,
        url: str | None = None,
        client_id: str | None = None,
    ) -> str:
        """Enqueues in its own committed transaction, as a caller's unit of work would."""
        moment = now or utcnow()
        with self.factory() as session, session.begin():
            row = cb.enqueue_event(
                session,
                client_id=client_id or self.client_id,
                url=url or self.rx.url,
                event=event,
                data=data if data is not None else ORDER_DATA,
                occurred_at=moment,
                now=moment,
            )
            assert row is not None
            return row.id

    def deliver(self, now: datetime, **kwargs: Any) -> cb.DeliveryReport:
        kwargs.setdefault("allow_loopback", True)
        kwargs.setdefault("timeout", 5.0)
        return cb.deliver_due(self.factory, now=now, http=self.http, **kwargs)

    def event(self, event_id: str) -> CallbackEvent:
        with self.factory() as session:
            row = session.get(CallbackEvent, event_id)
            assert row is not None
            return row

    def attempts(self, event_id: str) -> list[CallbackAttempt]:
        with self.factory() as session:
            return list(
                session.scalars(
                    select(CallbackAttempt)
                    .where(CallbackAttempt.event_id == event_id)
                    .order_by(CallbackAttempt.id)
                )
            )


def _seed(factory: sessionmaker[Session], url: str) -> tuple[str, str]:
    with factory() as session, session.begin():
        agency = Agency(
            code="CA-HN",
            name="UBND phường Hàng Bạc",
            tax_code="0101234567",
            address="Số 1 Hàng Bạc, Hoàn Kiếm, Hà Nội",
            bank_bin="970415",
            bank_account="113000012345",
            bank_account_name="UBND PHUONG HANG BAC",
            receipt_series="C26TA",
        )
        session.add(agency)
        session.flush()
        issued = add_client(session, agency, "Một cửa Hàng Bạc", url, allow_loopback=True)
        return issued.client.id, issued.callback_secret


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    assert "callback_events" in Base.metadata.tables
    factory = session_factory(engine_for(settings.effective_database_url))
    with CallbackReceiver() as rx, httpx.Client(trust_env=False) as http:
        client_id, secret = _seed(factory, rx.url)
        yield World(factory, client_id, secret, rx, http)


# --------------------------------------------------------------------------- signature


SECRET = "whsec_test_secret"
# Deliberate: a fixed instant (1_700_000_000), not today: sign() and verify() take the time as an
# argument and read no clock, and the signed body carries the same instant.
BODY = b'{"id":"evt_1","event":"receipt.issued","created":1700000000,"data":{}}'


def test_signature_is_hmac_sha256_of_t_dot_body() -> None:
    header = cb.sign(SECRET, BODY, 1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert cb.verify(header, BODY, SECRET, now=1_700_000_100) == 1_700_000_000
    assert cb.verify(header, BODY.decode(), SECRET, now=datetime.fromtimestamp(1_700_000_000, UTC))


def test_verify_accepts_any_of_several_v1_and_secrets_for_rotation() -> None:
    both = cb.sign(["whsec_old", SECRET], BODY, 1_700_000_000)
    assert both.count("v1=") == 2
    assert cb.verify(both, BODY, SECRET, now=1_700_000_000)
    assert cb.verify(both, BODY, "whsec_old", now=1_700_000_000)
    new_only = cb.sign("whsec_new", BODY, 1_700_000_000)
    assert cb.verify(new_only, BODY, ["whsec_old", "whsec_new"], now=1_700_000_000)
    # Unknown schemes are ignored, as long as one v1 matches.
    assert cb.verify("v0=abc," + new_only + ",v2=zz", BODY, "whsec_new", now=1_700_000_000)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "v1=" + "0" * 64, "t=abc,v1=" + "0" * 64, "t=1,t=2,v1=" + "0" * 64],
)
def test_verify_rejects_a_malformed_header(header: str | None) -> None:
    with pytest.raises(cb.SignatureHeaderMalformed):
        cb.verify(header, BODY, SECRET, now=1)


def test_verify_rejects_a_header_without_v1() -> None:
    with pytest.raises(cb.SignatureNotFound):
        cb.verify("t=1700000000,v0=" + "0" * 64, BODY, SECRET, now=1_700_000_000)


def test_verify_rejects_a_wrong_secret_or_a_changed_body() -> None:
    header = cb.sign(SECRET, BODY, 1_700_000_000)
    with pytest.raises(cb.SignatureMismatch):
        cb.verify(header, BODY, "whsec_other", now=1_700_000_000)
    with pytest.raises(cb.SignatureMismatch):
        cb.verify(header, BODY.replace(b"{}", b'{"x":1}'), SECRET, now=1_700_000_000)
    with pytest.raises(cb.SignatureMismatch):  # re-serialised JSON is not the signed bytes
        cb.verify(header, json.dumps(json.loads(BODY)), SECRET, now=1_700_000_000)


def test_verify_rejects_a_timestamp_outside_the_tolerance() -> None:
    header = cb.sign(SECRET, BODY, 1_700_000_000)
    cb.verify(header, BODY, SECRET, now=1_700_000_300)
    with pytest.raises(cb.SignatureTimestampOutOfTolerance):
        cb.verify(header, BODY, SECRET, now=1_700_000_301)
    with pytest.raises(cb.SignatureTimestampOutOfTolerance):
        cb.verify(header, BODY, SECRET, now=1_699_999_000)
    assert cb.verify(header, BODY, SECRET, tolerance=3600, now=1_700_001_000)


def test_signature_errors_are_payments_errors_with_codes() -> None:
    for error in (
        cb.SignatureHeaderMalformed,
        cb.SignatureNotFound,
        cb.SignatureMismatch,
        cb.SignatureTimestampOutOfTolerance,
        cb.UnknownCallbackEvent,
        cb.InvalidCallbackPayload,
        cb.ReplayNotAllowed,
        cb.CallbackEventNotFound,
    ):
        assert issubclass(error, PaymentsError)
    assert len({e.code for e in cb.SignatureVerificationError.__subclasses__()}) == 4


# --------------------------------------------------------------------------- schedule


def test_retry_schedule_is_the_published_one() -> None:
    assert cb.RETRY_SCHEDULE == (60, 300, 3600, 86400, 172800)
    last = utcnow()
    assert cb.next_attempt_at(1, last) == last + timedelta(minutes=1)
    assert cb.next_attempt_at(2, last) == last + timedelta(minutes=5)
    assert cb.next_attempt_at(3, last) == last + timedelta(hours=1)
    assert cb.next_attempt_at(4, last) == last + timedelta(days=1)
    assert cb.next_attempt_at(5, last) == last + timedelta(days=2)
    assert cb.next_attempt_at(6, last) is None
    with pytest.raises(InvalidInput):
        cb.next_attempt_at(0, last)


def test_retry_schedule_markdown_lists_every_step() -> None:
    text = cb.render_retry_schedule_markdown()
    for phrase in (
        "| 1 | as soon as the event is committed |",
        "| 2 | 1 minute after attempt 1 failed |",
        "| 3 | 5 minutes after attempt 2 failed |",
        "| 4 | 1 hour after attempt 3 failed |",
        "| 5 | 1 day after attempt 4 failed |",
        "| 6 | 2 days after attempt 5 failed |",
        "After attempt 6 fails",
    ):
        assert phrase in text


# --------------------------------------------------------------------------- outbox


def test_enqueue_validates_and_writes_nothing_without_a_url(world: World) -> None:
    now = utcnow()
    with world.factory() as session, session.begin():
        with pytest.raises(cb.UnknownCallbackEvent):
            cb.enqueue_event(
                session,
                client_id=world.client_id,
                url=world.rx.url,
                event="payment_order.paid",
                data={},
                occurred_at=now,
            )
        for bad in ({"when": now}, {"amount": float("nan")}, {"name": "\ud800"}):
            with pytest.raises(cb.InvalidCallbackPayload):
                cb.enqueue_event(
                    session,
                    client_id=world.client_id,
                    url=world.rx.url,
                    event="receipt.issued",
                    data=bad,
                    occurred_at=now,
                )
        with pytest.raises(cb.InvalidCallbackPayload):
            cb.enqueue_event(
                session,
                client_id=world.client_id,
                url=world.rx.url,
                event="receipt.issued",
                data={},
                occurred_at=now.replace(tzinfo=None),
            )
        for url in (None, ""):
            assert (
                cb.enqueue_event(
                    session,
                    client_id=world.client_id,
                    url=url,
                    event="payment_order.expired",
                    data=ORDER_DATA,
                    occurred_at=now,
                )
                is None
            )
        assert (
            cb.enqueue_event(
                session,
                client_id=None,
                url=world.rx.url,
                event="payment_order.expired",
                data=ORDER_DATA,
                occurred_at=now,
            )
            is None
        )
    with world.factory() as session:
        assert session.scalar(select(func.count()).select_from(CallbackEvent)) == 0


def test_enqueue_is_part_of_the_callers_transaction(world: World) -> None:
    with world.factory() as session:
        session.begin()
        row = cb.enqueue_event(
            session,
            client_id=world.client_id,
            url=world.rx.url,
            event="payment_order.cancelled",
            data=ORDER_DATA,
            occurred_at=utcnow(),
        )
        assert row is not None
        session.rollback()  # the order change failed: nobody may be told about it
    assert world.deliver(utcnow() + timedelta(days=1)).attempted == 0
    assert world.rx.requests == []


def test_every_event_of_the_contract_is_accepted(world: World) -> None:
    now = utcnow()
    ids = [world.enqueue(event, {"id": f"obj{i}"}, now=now) for i, event in enumerate(cb.EVENTS)]
    report = world.deliver(now)
    assert report.delivered == len(cb.EVENTS) == 5
    got = {json.loads(r.body)["event"] for r in world.rx.requests}
    assert got == set(cb.EVENTS)
    assert {r.headers["motcua-event-id"] for r in world.rx.requests} == set(ids)


# --------------------------------------------------------------------------- delivery


def test_delivered_body_is_exact_and_signed_with_the_clients_secret(world: World) -> None:
    occurred = utcnow().replace(microsecond=0)
    event_id = world.enqueue("payment_order.succeeded", ORDER_DATA, now=occurred)
    stored = world.event(event_id)

    report = world.deliver(occurred)

    assert report == cb.DeliveryReport(attempted=1, delivered=1, event_ids=(event_id,))
    (request,) = world.rx.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/callbacks"
    assert request.body == stored.body
    assert json.loads(request.body) == {
        "id": event_id,
        "event": "payment_order.succeeded",
        "created": int(occurred.timestamp()),
        "data": ORDER_DATA,
    }
    assert "Nguyễn Văn An".encode() in request.body  # UTF-8, not \u escapes
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "motcua-pay-callbacks/1"
    assert request.headers["motcua-event-id"] == event_id
    (attempt,) = world.attempts(event_id)
    t = cb.verify(request.headers["motcua-signature"], request.body, world.secret, now=attempt.at)
    assert t == attempt.signature_t == int(attempt.at.timestamp())
    with pytest.raises(cb.SignatureMismatch):
        cb.verify(request.headers["motcua-signature"], request.body, "whsec_x", now=attempt.at)

    event = world.event(event_id)
    assert event.state == "delivered"
    assert event.delivered_at == attempt.at
    assert event.next_attempt_at is None
    assert event.lease_token is None
    assert attempt.attempt_no == 1
    assert attempt.outcome == "delivered"
    assert attempt.status_code == 200
    assert attempt.response_excerpt == '{"ok":true}'
    assert attempt.duration_ms is not None and 0 <= attempt.duration_ms < 5000
    assert world.deliver(occurred + timedelta(days=3)).attempted == 0  # never sent again


def test_two_failures_follow_the_schedule_then_the_third_attempt_delivers(world: World) -> None:
    now = utcnow()
    event_id = world.enqueue(now=now)
    world.rx.fail_next(2)

    first = world.deliver(now)
    assert (first.attempted, first.retry_scheduled) == (1, 1)
    a1 = world.attempts(event_id)[-1]
    assert (a1.outcome, a1.status_code, a1.error) == ("http_error", 500, "HTTP 500")
    assert world.event(event_id).next_attempt_at == a1.at + timedelta(seconds=60)
    assert world.event(event_id).state == "pending"

    assert world.deliver(a1.at + timedelta(seconds=59)).attempted == 0  # not yet due

    second = world.deliver(a1.at + timedelta(seconds=61))
    assert (second.attempted, second.retry_scheduled) == (1, 1)
    a2 = world.attempts(event_id)[-1]
    assert world.event(event_id).next_attempt_at == a2.at + timedelta(seconds=300)
    assert world.deliver(a2.at + timedelta(seconds=299)).attempted == 0

    third = world.deliver(a2.at + timedelta(seconds=301))
    assert third.delivered == 1
    assert world.event(event_id).state == "delivered"
    assert [a.attempt_no for a in world.attempts(event_id)] == [1, 2, 3]
    assert [a.outcome for a in world.attempts(event_id)] == ["http_error"] * 2 + ["delivered"]

    requests = world.rx.wait_for(3)
    assert len(requests) == 3
    assert len({r.body for r in requests}) == 1  # identical bytes on every retry
    assert len({r.headers["motcua-signature"] for r in requests}) == 3  # signed afresh
    for request, attempt in zip(requests, world.attempts(event_id), strict=True):
        cb.verify(request.headers["motcua-signature"], request.body, world.secret, now=attempt.at)


def test_permanent_failure_after_five_retries_then_replay_delivers(world: World) -> None:
    world.rx.default_status = 503
    now = utcnow()
    event_id = world.enqueue(now=now)
    clock = now
    for expected_attempt in range(1, 7):  # bounded: 1 send + 5 retries
        report = world.deliver(clock)
        assert report.attempted == 1, f"attempt {expected_attempt} was not due at {clock}"
        event = world.event(event_id)
        assert event.attempt_count == expected_attempt
        if expected_attempt <= 5:
            assert event.state == "pending"
            assert event.next_attempt_at is not None
            last = world.attempts(event_id)[-1].at
            delay = cb.RETRY_SCHEDULE[expected_attempt - 1]
            assert event.next_attempt_at == last + timedelta(seconds=delay)
            clock = event.next_attempt_at + timedelta(seconds=1)
    event = world.event(event_id)
    assert event.state == "failed"
    assert event.next_attempt_at is None
    assert event.last_status_code == 503
    assert report.failed == 1
    assert world.deliver(clock + timedelta(days=30)).attempted == 0
    assert len(world.rx.requests) == 6

    world.rx.default_status = 200
    with world.factory() as session, session.begin():
        replayed = cb.replay(session, event_id, "clerk:lan", now=clock)
        assert replayed.state == "pending"
    report = world.deliver(clock)
    assert report.delivered == 1
    event = world.event(event_id)
    assert (event.state, event.attempt_count) == ("delivered", 7)
    log = world.attempts(event_id)
    assert [a.outcome for a in log] == ["http_error"] * 6 + ["replay", "delivered"]
    assert log[6].actor == "clerk:lan" and log[6].attempt_no is None
    assert len({r.body for r in world.rx.requests}) == 1


def test_replay_of_a_delivered_event_sends_it_again(world: World) -> None:
    now = utcnow()
    event_id = world.enqueue(now=now)
    world.deliver(now)
    with world.factory() as session, session.begin():
        cb.replay(session, event_id, "support@motcua", now=now + timedelta(hours=1))
    with world.factory() as session, session.begin(), pytest.raises(cb.ReplayNotAllowed):
        cb.replay(session, event_id, "support@motcua")  # already scheduled
    assert world.deliver(now + timedelta(hours=1)).delivered == 1
    first, second = world.rx.wait_for(2)
    assert first.body == second.body
    assert first.headers["motcua-event-id"] == second.headers["motcua-event-id"] == event_id
    assert world.event(event_id).state == "delivered"

    with world.factory() as session, session.begin():
        with pytest.raises(cb.CallbackEventNotFound):
            cb.replay(session, "evt_missing", "support")
        with pytest.raises(NotFound):  # another client cannot replay it
            cb.replay(session, event_id, "support", client_id="someone-else")
        with pytest.raises(InvalidInput):
            cb.replay(session, event_id, "  ")
        log = cb.delivery_log(session, event_id, client_id=world.client_id)
    assert [(a.attempt_no, a.outcome) for a in log] == [
        (1, "delivered"),
        (None, "replay"),
        (2, "delivered"),
    ]


def test_a_crash_between_commit_and_delivery_loses_nothing(
    world: World, settings: Settings
) -> None:
    now = utcnow()
    # "Process 1": the order change and its callback commit, then the process dies.
    engine = make_engine(settings.effective_database_url)
    with sessionmaker(bind=engine)() as session, session.begin():
        cb.enqueue_event(
            session,
            client_id=world.client_id,
            url=world.rx.url,
            event="payment_order.succeeded",
            data=ORDER_DATA,
            occurred_at=now,
            now=now,
        )
    engine.dispose()
    assert world.rx.requests == []

    # "Process 2": a fresh worker finds the committed callback and sends it.
    engine = make_engine(settings.effective_database_url)
    try:
        report = cb.deliver_due(
            sessionmaker(bind=engine), now=now, http=world.http, allow_loopback=True
        )
    finally:
        engine.dispose()
    assert report.delivered == 1
    assert len(world.rx.wait_for(1)) == 1


def test_a_worker_dying_mid_attempt_leaves_the_event_to_its_lease(world: World) -> None:
    now = utcnow()
    event_id = world.enqueue(now=now)
    claim = cb._claim_next(world.factory, now, 5.0)  # claimed, then the worker "dies"
    assert claim is not None and claim.event_id == event_id
    assert world.deliver(now + timedelta(seconds=30)).attempted == 0  # still leased
    report = world.deliver(now + timedelta(seconds=5 + 60 + 1))
    assert report.delivered == 1
    assert [a.attempt_no for a in world.attempts(event_id)] == [2]
    # The dead worker's late result cannot overwrite the new one.
    late = cb._Result("http_error", now, status_code=500)
    assert cb._record(world.factory, claim, late) == "lost"
    assert world.event(event_id).state == "delivered"


def test_timeout_is_retried_and_does_not_hold_the_worker(world: World) -> None:
    now = utcnow()
    event_id = world.enqueue(now=now)
    world.rx.sleep_next(1, 3.0)
    report = world.deliver(now, timeout=0.5)
    assert report.retry_scheduled == 1
    (attempt,) = world.attempts(event_id)
    assert attempt.outcome == "timeout"
    assert attempt.status_code is None
    assert attempt.error is not None and "Timeout" in attempt.error
    assert attempt.duration_ms is not None and attempt.duration_ms < 2500
    assert len(world.rx.wait_for(1)) == 1  # it did arrive: the outcome is unknown, so retry
    assert world.deliver(attempt.at + timedelta(seconds=61), timeout=0.5).delivered == 1


def test_any_2xx_acknowledges_and_redirects_are_not_followed(world: World) -> None:
    now = utcnow()
    world.rx.fail_next(1, status=302)
    world.rx.fail_next(1, status=202)
    event_id = world.enqueue(now=now)
    assert world.deliver(now).retry_scheduled == 1
    assert world.attempts(event_id)[-1].status_code == 302
    assert world.deliver(now + timedelta(seconds=120)).delivered == 1
    assert world.attempts(event_id)[-1].status_code == 202
    assert len(world.rx.requests) == 2


def test_long_answers_are_cut_to_500_characters(world: World) -> None:
    now = utcnow()
    world.rx.response_body = ("lỗi " * 2000).encode()
    world.rx.fail_next(1, status=500)
    event_id = world.enqueue(now=now)
    world.deliver(now)
    (attempt,) = world.attempts(event_id)
    assert attempt.response_excerpt is not None
    assert len(attempt.response_excerpt) == 500
    assert attempt.response_excerpt.startswith("lỗi lỗi")


def _no_network() -> tuple[httpx.Client, list[httpx.Request]]:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    return httpx.Client(transport=httpx.MockTransport(handler)), calls


@pytest.mark.parametrize(
    ("url", "allow_loopback"),
    [
        ("http://one-stop.example.gov.vn/hooks", True),  # plain http to a public host
        ("https://user:pw@one-stop.example.gov.vn/hooks", True),  # credentials in the URL
        (None, False),  # the receiver on loopback, outside the embedded profile
    ],
)
def test_url_outside_the_allow_list_is_refused_without_a_network_call(
    world: World, url: str | None, allow_loopback: bool
) -> None:
    now = utcnow()
    event_id = world.enqueue(now=now, url=url)
    http, calls = _no_network()
    with http:
        report = cb.deliver_due(world.factory, now=now, http=http, allow_loopback=allow_loopback)
    assert (report.attempted, report.refused, report.failed) == (1, 1, 1)
    assert calls == []
    assert world.rx.requests == []
    (attempt,) = world.attempts(event_id)
    assert attempt.outcome == "refused"
    assert attempt.error is not None and attempt.error.startswith("url refused")
    assert attempt.signature_t is None and attempt.status_code is None
    assert world.event(event_id).state == "failed"


def test_a_revoked_client_is_not_called(world: World) -> None:
    now = utcnow()
    event_id = world.enqueue(now=now)
    with world.factory() as session, session.begin():
        client = session.get(ApiClient, world.client_id)
        assert client is not None
        client.active = False
    report = world.deliver(now)
    assert (report.refused, report.failed) == (1, 1)
    assert world.rx.requests == []
    assert world.attempts(event_id)[0].error == "client revoked: nobody to sign for"


def test_connection_refused_is_a_network_error_and_retried(world: World) -> None:
    from infra import free_port

    now = utcnow()
    event_id = world.enqueue(now=now, url=f"http://127.0.0.1:{free_port()}/nobody")
    report = world.deliver(now)
    assert report.retry_scheduled == 1
    (attempt,) = world.attempts(event_id)
    assert attempt.outcome == "network_error"
    assert attempt.signature_t is not None


def test_concurrent_workers_never_send_the_same_event_twice(world: World) -> None:
    now = utcnow()
    ids = {world.enqueue(now=now, data={"id": f"order{i}"}) for i in range(24)}
    world.rx.delay = 0.02  # keep both workers busy at the same time
    barrier = threading.Barrier(2, timeout=10)
    reports: list[cb.DeliveryReport] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with httpx.Client(trust_env=False) as http:
                barrier.wait()
                reports.append(
                    cb.deliver_due(
                        world.factory, now=now, http=http, allow_loopback=True, timeout=5.0
                    )
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    sent = Counter(r.headers["motcua-event-id"] for r in world.rx.requests)
    assert set(sent) == ids
    assert max(sent.values()) == 1
    assert sum(r.attempted for r in reports) == len(ids)
    assert all(r.attempted > 0 for r in reports)  # both really worked at the same time
    assert sum(r.delivered for r in reports) == len(ids)
    with world.factory() as session:
        assert session.scalar(select(func.count()).select_from(CallbackAttempt)) == len(ids)
        states = session.scalars(select(CallbackEvent.state)).all()
    assert set(states) == {"delivered"}


def test_deliver_due_is_bounded_by_batch(world: World) -> None:
    now = utcnow()
    for i in range(5):
        world.enqueue(now=now, data={"id": f"o{i}"})
    assert world.deliver(now, batch=2).attempted == 2
    assert world.deliver(now, batch=50).attempted == 3
    with pytest.raises(InvalidInput):
        world.deliver(now, batch=0)


def test_list_deliveries_by_client_and_state(world: World) -> None:
    now = utcnow()
    ok = world.enqueue(now=now, data={"id": "order-ok"})
    world.deliver(now)
    world.rx.fail_next(1)
    retrying = world.enqueue(now=now + timedelta(seconds=1), data={"id": "order-retry"})
    world.deliver(now + timedelta(seconds=1))
    with world.factory() as session:
        all_rows = cb.list_deliveries(session, world.client_id)
        assert [v.id for v in all_rows] == [retrying, ok]  # newest first
        assert [v.id for v in cb.list_deliveries(session, world.client_id, "delivered")] == [ok]
        pending = cb.list_deliveries(session, world.client_id, state="pending")
        assert [v.object_id for v in pending] == ["order-retry"]
        assert pending[0].last_status_code == 500 and pending[0].attempts == 1
        assert len(cb.list_deliveries(session, world.client_id, limit=1)) == 1
        assert cb.list_deliveries(session, "another-client") == []
        with pytest.raises(InvalidInput):
            cb.list_deliveries(session, world.client_id, state="sent")
        body = all_rows[1].as_json()
    assert body["state"] == "delivered" and body["object"] == "callback_delivery"
    assert body["delivered_at"].endswith("Z")


class _BrokenBody(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b'{"ok":'
        raise httpx.ReadTimeout("body stalled")


def test_a_2xx_with_a_broken_body_still_acknowledges(world: World) -> None:
    now = utcnow()
    event_id = world.enqueue(now=now, url="https://one-stop.example.gov.vn/hooks")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=_BrokenBody())

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        report = cb.deliver_due(world.factory, now=now, http=http, allow_loopback=False)
    assert report.delivered == 1
    (request,) = seen
    assert request.headers["motcua-event-id"] == event_id
    assert request.content == world.event(event_id).body
    (attempt,) = world.attempts(event_id)
    assert attempt.response_excerpt == '{"ok":[ReadTimeout: body stalled]'
