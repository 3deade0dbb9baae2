"""The HTTP client's retry and unknown-outcome logic, against a scripted in-process authority.

The real sandbox (test_tax_sandbox.py) proves the happy paths and faults end to end; here every
branch is driven deterministically through httpx.MockTransport: which failures are retried,
which are resolved by a query first, and that nothing is ever re-sent blindly. Sleeping is
recorded, not done.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from infra.clock import today
from lxml import etree

from einvoice.tax_authority.client import Ack, HttpTaxAuthorityClient, Outcome
from einvoice.tax_authority.errors import (
    MessageInvalid,
    TaxAuthorityBadAnswer,
    TaxAuthorityRequestRefused,
    TaxAuthorityUnavailable,
    UnsafeMessage,
)
from einvoice.tax_authority.formats import LEGACY
from einvoice.tax_authority.messages import (
    MessageType,
    Reason,
    ReasonCode,
    RegisteredCertificate,
    SummaryRow,
    answers_bytes,
    build_daily_summary,
    build_registration,
    build_result,
    build_technical_ack,
    read_message,
)
from signing.certs import create_dev_ca, create_dev_org_certificate, write_pkcs12
from signing.keys import Pkcs12KeySource

TAX_CODE = "0101234567"
BASE = "http://authority.test"


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tax-client-pki")
    ca_key, ca_cert = create_dev_ca("Dev CA")
    org_key, org_cert = create_dev_org_certificate(ca_key, ca_cert, "UBND xã Test", TAX_CODE)
    write_pkcs12(folder / "org.p12", org_key, org_cert, [ca_cert])
    return folder / "org.p12"


@pytest.fixture
def message(key_path: Path) -> bytes:
    return build_daily_summary(
        sender_code="V0101234567",
        receiver_code="TCT",
        collector_name="UBND xã Test",
        tax_code=TAX_CODE,
        day=today(),
        first=True,
        supplement_no=None,
        rows=[SummaryRow("EBL01", "26TAB", 1, today(), "Lệ phí", 8_000)],
        key=Pkcs12KeySource.load(key_path, None),
        now=datetime.now(UTC),
        allow_development_certificate=True,
    )


Step = str
"""What the fake authority does with one request (see FakeAuthority.handle)."""


@dataclass
class FakeAuthority:
    """Scripted: ``posts``/``gets`` are consumed per request; when empty, behave normally."""

    posts: list[Step] = field(default_factory=list)
    gets: list[Step] = field(default_factory=list)
    held: dict[str, tuple[etree._Element, etree._Element | None]] = field(default_factory=dict)
    post_count: int = 0
    get_count: int = 0
    verdict_reasons: list[Reason] = field(default_factory=list)

    def _store(self, body: bytes, *, with_result: bool = True) -> str:
        header = read_message(body).header
        now = datetime.now(UTC)
        ack = build_technical_ack(sender_code="TCT", referenced=header, received=True, now=now)
        result = None
        if with_result:
            result = build_result(
                sender_code="TCT",
                referenced=header,
                request_type=MessageType.DAILY_SUMMARY,
                tax_code=TAX_CODE,
                accepted=not self.verdict_reasons,
                reasons=self.verdict_reasons,
                now=now,
            )
        self.held[header.message_id] = (ack, result)
        return header.message_id

    def _answer(self, message_id: str) -> httpx.Response:
        ack, result = self.held[message_id]
        parts = [ack] if result is None else [ack, result]
        return httpx.Response(
            200, content=answers_bytes(parts), headers={"X-Request-Id": f"req-{self.post_count}"}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.post_count += 1
            step = self.posts.pop(0) if self.posts else "ok"
            return self._post(step, request)
        self.get_count += 1
        step = self.gets.pop(0) if self.gets else "normal"
        if step == "timeout":
            raise httpx.ReadTimeout("read timed out", request=request)
        if step == "503":
            return httpx.Response(503)
        message_id = request.url.path.rsplit("/", 1)[-1]
        if message_id not in self.held:
            return httpx.Response(404, json={"detail": "not held"})
        return self._answer(message_id)

    def _post(self, step: Step, request: httpx.Request) -> httpx.Response:
        body = request.content
        header = read_message(body).header
        if step == "connect_error":
            raise httpx.ConnectError("connection refused", request=request)
        if step == "timeout_after_store":
            self._store(body)
            raise httpx.ReadTimeout("read timed out", request=request)
        if step == "timeout_before_store":
            raise httpx.ReadTimeout("read timed out", request=request)
        if step in {"500", "503", "504", "401"}:
            return httpx.Response(int(step), json={"detail": step})
        if step == "500_after_store":
            self._store(body)
            return httpx.Response(500)
        if step == "504_after_store":
            self._store(body)
            return httpx.Response(504)
        if step == "garbage":
            return httpx.Response(200, content=b"<html>oops</html>")
        if step == "doctype":
            return httpx.Response(200, content=b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
        if step == "pending":
            self._store(body, with_result=False)
            return self._answer(header.message_id)
        if header.message_id in self.held:
            ack = build_technical_ack(
                sender_code="TCT",
                referenced=header,
                received=False,
                reasons=[Reason(ReasonCode.DUPLICATE.value, "already held")],
                now=datetime.now(UTC),
            )
            return httpx.Response(200, content=answers_bytes([ack]))
        if step == "refuse_999":
            ack = build_technical_ack(
                sender_code="TCT",
                referenced=header,
                received=False,
                reasons=[Reason(ReasonCode.WRONG_RECEIVER.value, "MNNhan sai")],
                now=datetime.now(UTC),
            )
            return httpx.Response(200, content=answers_bytes([ack]))
        return self._answer(self._store(body))


@dataclass
class Harness:
    authority: FakeAuthority
    client: HttpTaxAuthorityClient
    sleeps: list[float]


@pytest.fixture
def harness() -> Harness:
    authority = FakeAuthority()
    sleeps: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(authority.handle))
    client = HttpTaxAuthorityClient(
        BASE,
        http,
        timeout=2.0,
        max_attempts=4,
        backoff=0.5,
        max_backoff=3.0,
        query_attempts=2,
        result_polls=2,
        sleep=sleeps.append,
        rng=random.Random(7),
    )
    return Harness(authority, client, sleeps)


def _id(message: bytes) -> str:
    return read_message(message).header.message_id


def test_accepted_first_time(harness: Harness, message: bytes) -> None:
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.ACCEPTED
    assert ack.succeeded and ack.received
    assert (ack.attempts, ack.queries, ack.resolved_by_query) == (1, 0, False)
    assert ack.message_id == _id(message)
    assert ack.result is not None and ack.result.accepted
    assert ack.request_id == "req-1"
    assert harness.sleeps == []


def test_connection_refused_is_retried_without_asking(harness: Harness, message: bytes) -> None:
    harness.authority.posts = ["connect_error", "connect_error"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.ACCEPTED
    assert (ack.attempts, ack.queries) == (3, 0)
    assert harness.authority.get_count == 0
    assert len(harness.sleeps) == 2


def test_5xx_is_retried_with_growing_jittered_backoff(harness: Harness, message: bytes) -> None:
    harness.authority.posts = ["503", "503", "503"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.ACCEPTED
    assert ack.attempts == 4
    caps = [0.5, 1.0, 2.0]
    assert len(harness.sleeps) == 3
    for slept, cap in zip(harness.sleeps, caps, strict=True):
        assert cap / 2 <= slept <= cap


def test_backoff_is_capped(message: bytes) -> None:
    authority = FakeAuthority(posts=["503"] * 5)
    sleeps: list[float] = []
    client = HttpTaxAuthorityClient(
        BASE,
        httpx.Client(transport=httpx.MockTransport(authority.handle)),
        max_attempts=6,
        backoff=1.0,
        max_backoff=2.0,
        sleep=sleeps.append,
    )
    assert client.send(message).outcome is Outcome.ACCEPTED
    assert max(sleeps) <= 2.0


def test_timeout_after_delivery_is_resolved_by_query_not_resend(
    harness: Harness, message: bytes
) -> None:
    harness.authority.posts = ["timeout_after_store"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.ACCEPTED
    assert ack.resolved_by_query
    assert (ack.attempts, ack.queries) == (1, 1)
    assert harness.authority.post_count == 1


def test_timeout_before_delivery_is_resent_after_the_query_says_not_held(
    harness: Harness, message: bytes
) -> None:
    harness.authority.posts = ["timeout_before_store"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.ACCEPTED
    assert (ack.attempts, ack.queries) == (2, 1)
    assert harness.authority.post_count == 2
    assert harness.authority.get_count == 1


def test_unanswered_query_leaves_the_outcome_unknown_and_never_resends(
    harness: Harness, message: bytes
) -> None:
    harness.authority.posts = ["timeout_after_store"]
    harness.authority.gets = ["timeout", "503"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.UNKNOWN
    assert not ack.succeeded
    assert (ack.attempts, ack.queries) == (1, 1)
    assert harness.authority.post_count == 1
    assert harness.authority.get_count == 2  # the query budget, no more


def test_504_counts_as_unknown_and_is_resolved_by_query(harness: Harness, message: bytes) -> None:
    harness.authority.posts = ["504_after_store"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.ACCEPTED
    assert ack.resolved_by_query
    assert harness.authority.post_count == 1


def test_500_after_delivery_then_resend_is_a_duplicate_success(
    harness: Harness, message: bytes
) -> None:
    harness.authority.posts = ["500_after_store"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.DUPLICATE_ACCEPTED
    assert ack.succeeded
    assert ack.attempts == 2
    assert ack.result is not None and ack.result.accepted
    assert ack.technical is not None and ack.technical.duplicate


def test_5xx_until_exhausted_is_unavailable(harness: Harness, message: bytes) -> None:
    harness.authority.posts = ["503"] * 4
    with pytest.raises(TaxAuthorityUnavailable) as caught:
        harness.client.send(message)
    assert caught.value.attempts == 4
    assert caught.value.http_status == 503
    assert caught.value.code == "tax_authority_unavailable"
    assert harness.authority.get_count == 0


def test_500s_until_exhausted_are_checked_by_a_final_query(
    harness: Harness, message: bytes
) -> None:
    harness.authority.posts = ["500"] * 4
    with pytest.raises(TaxAuthorityUnavailable):
        harness.client.send(message)
    assert harness.authority.get_count == 1  # asked once, it is not held: truly undelivered


def test_rejection_is_an_answer_and_not_retried(harness: Harness, message: bytes) -> None:
    harness.authority.verdict_reasons = [Reason("rejected", "Sai số liệu")]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.REJECTED
    assert ack.reasons == (Reason("rejected", "Sai số liệu"),)
    assert ack.received and not ack.succeeded
    assert harness.authority.post_count == 1


def test_technical_refusal_is_a_rejection(harness: Harness, message: bytes) -> None:
    harness.authority.posts = ["refuse_999"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.REJECTED
    assert ack.reasons[0].code == ReasonCode.WRONG_RECEIVER
    assert not ack.received
    assert harness.authority.post_count == 1


def test_duplicate_counts_as_success(harness: Harness, message: bytes) -> None:
    assert harness.client.send(message).outcome is Outcome.ACCEPTED
    again = harness.client.send(message)
    assert again.outcome is Outcome.DUPLICATE_ACCEPTED
    assert again.succeeded
    assert again.result is not None and again.result.accepted


def test_duplicate_of_a_rejected_message_stays_rejected(harness: Harness, message: bytes) -> None:
    harness.authority.verdict_reasons = [Reason("rejected", "Sai số liệu")]
    assert harness.client.send(message).outcome is Outcome.REJECTED
    again = harness.client.send(message)
    assert again.outcome is Outcome.REJECTED
    assert again.reasons == (Reason("rejected", "Sai số liệu"),)


def test_received_without_result_is_polled_boundedly(harness: Harness, message: bytes) -> None:
    harness.authority.posts = ["pending"]
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.UNKNOWN
    assert ack.received  # held, only not judged yet
    assert ack.queries == 2
    assert harness.authority.get_count == 2


def test_result_arriving_while_polling_settles_the_outcome(
    harness: Harness, message: bytes
) -> None:
    harness.authority.posts = ["pending"]
    original: Callable[[httpx.Request], httpx.Response] = harness.authority.handle

    def judge_then_answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            message_id = request.url.path.rsplit("/", 1)[-1]
            _ack, result = harness.authority.held[message_id]
            if result is None:
                harness.authority.held.pop(message_id)
                harness.authority._store(message)
        return original(request)

    harness.client.http = httpx.Client(transport=httpx.MockTransport(judge_then_answer))
    ack = harness.client.send(message)
    assert ack.outcome is Outcome.ACCEPTED
    assert ack.queries == 1


@pytest.mark.parametrize("step", ["garbage", "doctype"])
def test_unreadable_answer_is_a_bad_answer(harness: Harness, message: bytes, step: str) -> None:
    harness.authority.posts = [step]
    with pytest.raises(TaxAuthorityBadAnswer) as caught:
        harness.client.send(message)
    assert caught.value.http_status == 200
    assert caught.value.attempts == 1


def test_http_error_without_ack_is_refused(harness: Harness, message: bytes) -> None:
    harness.authority.posts = ["401"]
    with pytest.raises(TaxAuthorityRequestRefused) as caught:
        harness.client.send(message)
    assert caught.value.http_status == 401
    assert harness.authority.post_count == 1


def test_nothing_is_sent_for_an_invalid_or_unsafe_message(harness: Harness) -> None:
    with pytest.raises(UnsafeMessage):
        harness.client.send(b'<!DOCTYPE TDiep [<!ENTITY x "y">]><TDiep>&x;</TDiep>')
    with pytest.raises(MessageInvalid):
        harness.client.send(b"<TDiep><TTChung/></TDiep>")
    assert harness.authority.post_count == 0


def test_query(harness: Harness, message: bytes) -> None:
    message_id = _id(message)
    assert harness.client.query(message_id) is None
    harness.client.send(message)
    held = harness.client.query(message_id)
    assert isinstance(held, Ack)
    assert held.outcome is Outcome.ACCEPTED
    with pytest.raises(ValueError, match="not an MTDiep"):
        harness.client.query("../../etc/passwd")
    harness.authority.gets = ["503", "timeout"]
    with pytest.raises(TaxAuthorityUnavailable):
        harness.client.query(message_id)


def test_constructor_refuses_unbounded_settings() -> None:
    http = httpx.Client(transport=httpx.MockTransport(FakeAuthority().handle))
    with pytest.raises(ValueError):
        HttpTaxAuthorityClient(BASE, http, max_attempts=0)
    with pytest.raises(ValueError):
        HttpTaxAuthorityClient(BASE, http, timeout=0)


# ---------------------------------------------------------------------------- 110 before 111

RECEIVED = MessageType.REGISTRATION_RECEIVED
VERDICT = MessageType.REGISTRATION_RESULT


@pytest.fixture
def registration(key_path: Path) -> bytes:
    key = Pkcs12KeySource.load(key_path, None)
    return build_registration(
        sender_code="V0101234567",
        receiver_code="TCT",
        collector_name="UBND xã Test",
        tax_code=TAX_CODE,
        tax_authority_name="Chi cục Thuế khu vực I",
        templates=["EBL01"],
        certificates=[RegisteredCertificate.from_certificate(key.certificate)],
        key=key,
        now=datetime.now(UTC),
        allow_development_certificate=True,
    )


def _answering(message: bytes, *notices: tuple[MessageType, bool]) -> HttpTaxAuthorityClient:
    """A client whose authority answers every POST and GET with the 999 and ``notices``."""
    header = read_message(message).header
    now = datetime.now(UTC)
    parts = [build_technical_ack(sender_code="TCT", referenced=header, received=True, now=now)]
    for kind, accepted in notices:
        parts.append(
            build_result(
                sender_code="TCT",
                referenced=header,
                request_type=MessageType.REGISTRATION,
                result_type=kind,
                tax_code=TAX_CODE,
                accepted=accepted,
                reasons=[] if accepted else [Reason(ReasonCode.SIGNATURE_INVALID.value, "sai")],
                now=now,
            )
        )
    body = answers_bytes(parts)
    http = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=body)))
    return HttpTaxAuthorityClient(BASE, http, result_polls=1, sleep=lambda _: None)


@pytest.mark.parametrize(
    ("notices", "outcome", "settled_by"),
    [
        (((RECEIVED, True), (VERDICT, True)), Outcome.ACCEPTED, VERDICT),
        (((RECEIVED, True), (VERDICT, False)), Outcome.REJECTED, VERDICT),
        (((RECEIVED, False),), Outcome.REJECTED, RECEIVED),
        (((RECEIVED, True),), Outcome.UNKNOWN, None),
    ],
    ids=["received-accepted", "received-refused", "not-received", "received-only"],
)
def test_a_received_notice_is_no_verdict_unless_it_refuses(
    registration: bytes,
    notices: tuple[tuple[MessageType, bool], ...],
    outcome: Outcome,
    settled_by: MessageType | None,
) -> None:
    ack = _answering(registration, *notices).send(registration)
    assert ack.outcome is outcome
    assert (ack.result.message_type if ack.result else None) is settled_by
    assert ack.received or outcome is Outcome.REJECTED


def test_a_0_1_registration_has_no_received_notice(registration: bytes) -> None:
    header = read_message(registration).header
    legacy = dataclasses.replace(header, version=LEGACY.document_version)
    with pytest.raises(MessageInvalid, match="has no registration_received"):
        build_result(
            sender_code="TCT",
            referenced=legacy,
            request_type=MessageType.REGISTRATION,
            result_type=RECEIVED,
            tax_code=TAX_CODE,
            accepted=True,
            now=datetime.now(UTC),
        )
