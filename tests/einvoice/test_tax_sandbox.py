"""End to end: the real client against the tax-authority sandbox running as a separate process.

One sandbox per module (on a free 127.0.0.1 port, its own data folder, trusting the test CA);
each test uses its own day so that the per-day summary rules do not couple tests, and resets
the fault switch. Every wait is bounded.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from infra.clock import today
from infra.ports import free_port, log_tail, stop_process, wait_for_port
from infra.tax_sandbox import sandbox_command
from lxml import etree

from einvoice.official import FormatChoices
from einvoice.tax_authority.client import HttpTaxAuthorityClient, Outcome
from einvoice.tax_authority.errors import MessageInvalid, SandboxRefused, UnsafeMessage
from einvoice.tax_authority.formats import LEGACY, confirmed
from einvoice.tax_authority.messages import (
    MessageFormat,
    MessageType,
    ReasonCode,
    RegisteredCertificate,
    SummaryRow,
    build_daily_summary,
    build_registration,
    message_bytes,
    parse_answers,
    read_message,
)
from signing.certs import create_dev_ca, create_dev_org_certificate, write_pem, write_pkcs12
from signing.keys import KeySource, Pkcs12KeySource
from signing.xmldsig import DS_NS

REPO = Path(__file__).resolve().parents[2]
TAX_CODE = "0101234567"
SENDER = "V0101234567"
COLLECTOR = "UBND xã Hòa Bình"
CLIENT_TIMEOUT = 1.0
START_TRIES = 3


@dataclass(frozen=True)
class Keys:
    org: KeySource
    foreign: KeySource
    """Same tax code, but issued by a CA the sandbox does not trust."""
    ca_pem: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("tax-sandbox-pki")
    ca_key, ca_cert = create_dev_ca("Dev CA motcua-pay")
    org_key, org_cert = create_dev_org_certificate(ca_key, ca_cert, COLLECTOR, TAX_CODE)
    rogue_key, rogue_cert = create_dev_ca("Rogue CA")
    foreign_key, foreign_cert = create_dev_org_certificate(
        rogue_key, rogue_cert, COLLECTOR, TAX_CODE
    )
    write_pkcs12(folder / "org.p12", org_key, org_cert, [ca_cert])
    write_pkcs12(folder / "foreign.p12", foreign_key, foreign_cert, [rogue_cert])
    write_pem(folder / "ca.pem", certificates=[ca_cert])
    return Keys(
        org=Pkcs12KeySource.load(folder / "org.p12", None),
        foreign=Pkcs12KeySource.load(folder / "foreign.p12", None),
        ca_pem=folder / "ca.pem",
    )


def _sandbox_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@dataclass(frozen=True)
class Sandbox:
    base_url: str
    data_dir: Path


@pytest.fixture(scope="module")
def sandbox(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    data_dir = tmp_path_factory.mktemp("tax-sandbox-data")
    log_path = data_dir / "sandbox.log"
    for _ in range(START_TRIES):
        port = free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                sandbox_command(port, data_dir, keys.ca_pem),
                cwd=data_dir,
                env=_sandbox_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError:
            stop_process(proc, timeout=5)
            continue
        if proc.poll() is not None:
            continue
        try:
            yield Sandbox(f"http://127.0.0.1:{port}", data_dir)
        finally:
            stop_process(proc, timeout=10)
        return
    pytest.fail(f"the sandbox did not start: {log_tail(log_path)}")


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        client.post("/_faults", json={"mode": "none"}).raise_for_status()
        yield client
        client.post("/_faults", json={"mode": "none"}).raise_for_status()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[HttpTaxAuthorityClient]:
    with httpx.Client() as http_client:
        yield HttpTaxAuthorityClient(
            sandbox.base_url,
            http_client,
            timeout=CLIENT_TIMEOUT,
            max_attempts=4,
            backoff=0.05,
            max_backoff=0.2,
            query_attempts=3,
        )


_days = itertools.count()


_FIRST_DAY = today() - timedelta(days=400)
"""Days of the past year and a bit, from the suite's clock (moved with ``--clock`` before
collection): any day will do, as long as each test has its own."""


@pytest.fixture
def day() -> date:
    """A day no other test uses: the sandbox enforces one first summary per agency and day."""
    return _FIRST_DAY + timedelta(days=next(_days))


def _summary(
    keys: Keys,
    day: date,
    *,
    first: bool = True,
    supplement_no: int | None = None,
    key: KeySource | None = None,
    amount: int = 8_000,
    fmt: MessageFormat | None = None,
) -> bytes:
    return build_daily_summary(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        day=day,
        first=first,
        supplement_no=supplement_no,
        rows=[
            SummaryRow("EBL01", "26TAB", 10, day, "Lệ phí chứng thực", amount),
            SummaryRow("EBL01", "26TAB", 11, day, "Phí thẩm định", 20_000),
        ],
        key=key or keys.org,
        now=datetime.now(UTC),
        allow_development_certificate=True,
        fmt=fmt,
    )


def _registration(keys: Keys, key: KeySource | None = None) -> bytes:
    return build_registration(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        tax_authority_name="Chi cục Thuế khu vực I",
        templates=["EBL01"],
        certificates=[RegisteredCertificate.from_certificate((key or keys.org).certificate)],
        key=key or keys.org,
        now=datetime.now(UTC),
        allow_development_certificate=True,
    )


def _held(http: httpx.Client, day: date) -> list[dict[str, object]]:
    response = http.get(f"/agencies/{TAX_CODE}/days/{day.isoformat()}")
    response.raise_for_status()
    body = response.json()
    assert body["tax_code"] == TAX_CODE
    messages: list[dict[str, object]] = body["messages"]
    return messages


def _codes(reasons: tuple[object, ...]) -> set[str]:
    return {getattr(reason, "code", "") for reason in reasons}


# ---------------------------------------------------------------------------- happy paths


def test_first_summary_is_accepted_and_listed(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    message = _summary(keys, day)
    ack = client.send(message)
    assert ack.outcome is Outcome.ACCEPTED, ack.reasons
    assert ack.technical is not None and ack.technical.received
    assert ack.result is not None
    assert ack.result.message_type is MessageType.DATA_CHECK_RESULT
    assert ack.request_id
    (held,) = _held(http, day)
    assert held["message_id"] == ack.message_id
    assert held["status"] == "accepted"
    assert (held["first"], held["supplement_no"]) == (True, None)
    assert (held["row_count"], held["total_amount"], held["posts"]) == (2, 28_000, 1)

    queried = client.query(ack.message_id)
    assert queried is not None and queried.outcome is Outcome.ACCEPTED


def test_supplement_is_accepted_and_listed_for_the_day(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    assert client.send(_summary(keys, day)).outcome is Outcome.ACCEPTED
    supplement = client.send(_summary(keys, day, first=False, supplement_no=1))
    assert supplement.outcome is Outcome.ACCEPTED, supplement.reasons
    held = _held(http, day)
    assert [(m["first"], m["supplement_no"], m["status"]) for m in held] == [
        (True, None, "accepted"),
        (False, 1, "accepted"),
    ]


def test_summary_order_is_enforced(client: HttpTaxAuthorityClient, keys: Keys, day: date) -> None:
    orphan = client.send(_summary(keys, day, first=False, supplement_no=1))
    assert orphan.outcome is Outcome.REJECTED
    assert ReasonCode.SUMMARY_SEQUENCE in _codes(orphan.reasons)
    assert client.send(_summary(keys, day)).outcome is Outcome.ACCEPTED
    second_first = client.send(_summary(keys, day))
    assert second_first.outcome is Outcome.REJECTED
    assert ReasonCode.SUMMARY_SEQUENCE in _codes(second_first.reasons)


def test_registration_is_received_then_accepted_with_its_own_codes(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys
) -> None:
    ack = client.send(_registration(keys))
    assert ack.outcome is Outcome.ACCEPTED, ack.reasons
    assert ack.result is not None
    assert ack.result.message_type is MessageType.REGISTRATION_RESULT
    stored = etree.fromstring(http.get(f"/messages/{ack.message_id}").content)
    assert [e.text for e in stored.iterfind("TDiep/TTChung/MLTDiep")] == ["999", "110", "111"]


def test_a_registration_that_fails_is_not_received_and_gets_no_verdict(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys
) -> None:
    ack = client.send(_registration(keys, key=keys.foreign))
    assert ack.outcome is Outcome.REJECTED
    assert ack.result is not None and not ack.result.accepted
    assert ack.result.message_type is MessageType.REGISTRATION_RECEIVED
    assert ReasonCode.SIGNATURE_INVALID in _codes(ack.reasons)
    stored = etree.fromstring(http.get(f"/messages/{ack.message_id}").content)
    assert [e.text for e in stored.iterfind("TDiep/TTChung/MLTDiep")] == ["999", "110"]


def test_a_0_1_summary_queued_before_the_upgrade_is_judged_and_answered_in_0_1(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    message = _summary(keys, day, fmt=LEGACY)
    assert read_message(message).header.version == "0.1"
    ack = client.send(message)
    assert ack.outcome is Outcome.ACCEPTED, ack.reasons
    assert ack.result is not None and ack.result.message_type is MessageType.DATA_CHECK_RESULT
    stored = etree.fromstring(http.get(f"/messages/{ack.message_id}").content)
    assert [e.text for e in stored.iterfind("TDiep/TTChung/PBan")] == ["0.1", "0.1"]
    assert [e.text for e in stored.iterfind("TDiep/TTChung/MLTDiep")] == ["999", "204"]
    # ... and it counts as the day's first summary: a 0.2 supplement follows it.
    supplement = client.send(_summary(keys, day, first=False, supplement_no=1))
    assert supplement.outcome is Outcome.ACCEPTED, supplement.reasons
    assert [(m["message_type"], m["status"]) for m in _held(http, day)] == [
        ("400", "accepted"),
        ("400", "accepted"),
    ]


def test_a_summary_in_pban_2_1_1_is_answered_in_2_1_1(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    fmt = confirmed(FormatChoices(document_version="2.1.1"))
    ack = client.send(_summary(keys, day, fmt=fmt))
    assert ack.outcome is Outcome.ACCEPTED, ack.reasons
    stored = etree.fromstring(http.get(f"/messages/{ack.message_id}").content)
    assert {e.text for e in stored.iterfind("TDiep/TTChung/PBan")} == {"2.1.1"}


def test_a_0_1_document_in_a_0_2_envelope_is_rejected(
    client: HttpTaxAuthorityClient, keys: Keys, day: date
) -> None:
    legacy = _summary(keys, day, fmt=LEGACY)
    mixed = legacy.replace(b"<PBan>0.1</PBan>", b"<PBan>2.1.0</PBan>", 1)  # the envelope's only
    assert read_message(mixed).header.version == "2.1.0"
    ack = client.send(mixed)
    assert ack.outcome is Outcome.REJECTED
    assert ReasonCode.DOCUMENT_INVALID in _codes(ack.reasons)
    assert any("mapping 0.1 document" in reason.description for reason in ack.reasons)


def test_a_summary_code_the_authority_does_not_use_is_not_received(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    """Both sides read the configured code (400 here, by default): the client will not send
    another, and the sandbox does not take one in."""
    fmt = confirmed(FormatChoices(summary_code="402", summary_result_code="205"))
    message = _summary(keys, day, fmt=fmt)
    assert read_message(message).header.message_type == "402"
    with pytest.raises(MessageInvalid, match="402 is not a request we send"):
        client.send(message)
    response = http.post("/messages", content=message)
    (ack,) = parse_answers(response.content).acks
    assert not ack.received
    assert _codes(ack.reasons) == {ReasonCode.UNKNOWN_TYPE}
    assert _held(http, day) == []


# ---------------------------------------------------------------------------- faults


def test_timeout_is_resolved_by_query_without_a_second_copy(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    http.post(
        "/_faults", json={"mode": "timeout", "delay_seconds": CLIENT_TIMEOUT + 2}
    ).raise_for_status()
    ack = client.send(_summary(keys, day))
    assert ack.outcome is Outcome.ACCEPTED, ack
    assert ack.resolved_by_query
    assert (ack.attempts, ack.queries) == (1, 1)
    (held,) = _held(http, day)  # exactly one copy ...
    assert held["posts"] == 1  # ... from exactly one POST: no blind re-send
    assert held["message_id"] == ack.message_id


def test_5xx_twice_is_retried_then_accepted(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    http.post("/_faults", json={"mode": "5xx", "times": 2}).raise_for_status()
    ack = client.send(_summary(keys, day))
    assert ack.outcome is Outcome.ACCEPTED
    assert ack.attempts == 3
    assert http.get("/_faults").json()["mode"] == "none"
    (held,) = _held(http, day)
    assert held["posts"] == 1


def test_reject_is_a_reasoned_answer_and_not_retried(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    reason = "Số liệu không khớp với biên lai đã nhận"
    http.post("/_faults", json={"mode": "reject", "reason": reason}).raise_for_status()
    ack = client.send(_summary(keys, day))
    assert ack.outcome is Outcome.REJECTED
    assert ack.attempts == 1
    assert [(r.code, r.description) for r in ack.reasons] == [("rejected", reason)]
    (held,) = _held(http, day)
    assert held["status"] == "rejected"
    assert held["posts"] == 1


def test_duplicate_answer_counts_as_success(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    http.post("/_faults", json={"mode": "duplicate"}).raise_for_status()
    ack = client.send(_summary(keys, day))
    assert ack.outcome is Outcome.DUPLICATE_ACCEPTED
    assert ack.succeeded
    assert ack.technical is not None and ack.technical.duplicate
    assert ack.result is not None and ack.result.accepted  # fetched by query
    (held,) = _held(http, day)
    assert held["status"] == "accepted"


def test_resending_the_same_bytes_is_a_duplicate_not_a_second_copy(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    message = _summary(keys, day)
    assert client.send(message).outcome is Outcome.ACCEPTED
    again = client.send(message)
    assert again.outcome is Outcome.DUPLICATE_ACCEPTED
    (held,) = _held(http, day)
    assert held["posts"] == 2


def test_reused_message_id_with_other_content_is_refused(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    message = _summary(keys, day)
    assert client.send(message).outcome is Outcome.ACCEPTED
    mid = read_message(message).header.message_id
    other = build_daily_summary(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        day=day,
        first=False,
        supplement_no=1,
        rows=[],
        key=keys.org,
        now=datetime.now(UTC),
        message_id=mid,
        allow_development_certificate=True,
    )
    ack = client.send(other)
    assert ack.outcome is Outcome.REJECTED
    assert ReasonCode.MESSAGE_ID_REUSED in _codes(ack.reasons)
    assert len(_held(http, day)) == 1


# ---------------------------------------------------------------------------- refusals


def _strip_signature(message: bytes) -> bytes:
    root = etree.fromstring(message)
    signature = root.find(f".//{{{DS_NS}}}Signature")
    assert signature is not None
    for child in list(signature):
        signature.remove(child)
    return message_bytes(root)


def test_unsigned_summary_is_rejected_with_a_reason(
    client: HttpTaxAuthorityClient, http: httpx.Client, keys: Keys, day: date
) -> None:
    ack = client.send(_strip_signature(_summary(keys, day)))
    assert ack.outcome is Outcome.REJECTED
    assert ReasonCode.SIGNATURE_INVALID in _codes(ack.reasons)
    (held,) = _held(http, day)
    assert held["status"] == "rejected"


def test_tampered_summary_is_rejected_with_a_reason(
    client: HttpTaxAuthorityClient, keys: Keys, day: date
) -> None:
    message = _summary(keys, day, amount=8_000)
    tampered = message.replace(b"<TgTTTBSo>8000</TgTTTBSo>", b"<TgTTTBSo>800</TgTTTBSo>")
    assert tampered != message
    ack = client.send(tampered)
    assert ack.outcome is Outcome.REJECTED
    assert ReasonCode.SIGNATURE_INVALID in _codes(ack.reasons)
    assert any("changed" in reason.description for reason in ack.reasons)


def test_untrusted_ca_is_rejected(client: HttpTaxAuthorityClient, keys: Keys, day: date) -> None:
    ack = client.send(_summary(keys, day, key=keys.foreign))
    assert ack.outcome is Outcome.REJECTED
    assert ReasonCode.SIGNATURE_INVALID in _codes(ack.reasons)
    assert any("chain" in reason.description for reason in ack.reasons)


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE TDiep [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<TDiep><TTChung>&xxe;</TTChung></TDiep>",
        b'<!DOCTYPE TDiep [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        b"<TDiep>&b;</TDiep>",
        b'<!DOCTYPE TDiep SYSTEM "http://127.0.0.1:9/evil.dtd"><TDiep/>',
    ],
)
def test_doctype_and_xxe_are_refused_with_400(http: httpx.Client, payload: bytes) -> None:
    response = http.post("/messages", content=payload, headers={"Content-Type": "application/xml"})
    assert response.status_code == 400
    answers = parse_answers(response.content)
    (ack,) = answers.acks
    assert not ack.received
    assert ack.referenced_id is None
    assert _codes(ack.reasons) == {ReasonCode.UNSAFE_XML}
    assert b"root:" not in response.content


def test_client_refuses_to_send_unsafe_xml(client: HttpTaxAuthorityClient) -> None:
    with pytest.raises(UnsafeMessage):
        client.send(b'<!DOCTYPE TDiep [<!ENTITY x SYSTEM "file:///etc/passwd">]><TDiep>&x;</TDiep>')


def test_invalid_envelope_is_refused_with_400(http: httpx.Client) -> None:
    response = http.post("/messages", content=b"<TDiep><TTChung/><DLieu/></TDiep>")
    assert response.status_code == 400
    (ack,) = parse_answers(response.content).acks
    assert ReasonCode.ENVELOPE_INVALID in _codes(ack.reasons)


def test_wrong_receiver_is_not_received(
    client: HttpTaxAuthorityClient, keys: Keys, day: date
) -> None:
    message = _summary(keys, day).replace(b"<MNNhan>TCT</MNNhan>", b"<MNNhan>KHAC</MNNhan>", 1)
    ack = client.send(message)
    assert ack.outcome is Outcome.REJECTED
    assert not ack.received
    assert ReasonCode.WRONG_RECEIVER in _codes(ack.reasons)


def test_oversized_message_is_refused(http: httpx.Client) -> None:
    response = http.post("/messages", content=b"<TDiep>" + b" " * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413
    (ack,) = parse_answers(response.content).acks
    assert not ack.received
    assert _codes(ack.reasons) == {ReasonCode.TOO_LARGE}


def test_unknown_message_is_404(http: httpx.Client, client: HttpTaxAuthorityClient) -> None:
    missing = SENDER + "0" * 32
    assert http.get(f"/messages/{missing}").status_code == 404
    assert client.query(missing) is None
    assert http.get("/messages/not-an-id").status_code == 422


# ---------------------------------------------------------------------------- production


def test_sandbox_refuses_to_start_in_production(tmp_path: Path) -> None:
    result = subprocess.run(
        sandbox_command(free_port(), tmp_path, None),
        cwd=tmp_path,
        env=_sandbox_env(MOTCUA_PROFILE="production"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "production" in result.stderr
    assert not (tmp_path / "tax-authority-sandbox.sqlite3").exists()


def test_create_app_refuses_in_production(tmp_path: Path) -> None:
    from einvoice.tax_authority.sandbox import create_app

    with pytest.raises(SandboxRefused) as caught:
        create_app(tmp_path, environ={"MOTCUA_PROFILE": "production"})
    assert caught.value.code == "tax_sandbox_in_production"
