"""Golden files of the documents sent to the tax authority, in both mappings.

For each of 04/SS-CTĐT, 01/TH-BLĐT and 01/ĐKTĐ-CTĐT there is a 0.1 file (what the code before
issue 17 signed: still read, validated, sent and judged) and a 0.2 file (what is built now).
Each must be byte for byte what today's code makes (where it still makes it), validate against
its own mapping's schemas, verify with ``xmlsec1`` against the golden CA, and be accepted by
the tax sandbox with the codes of its own mapping.
"""

from __future__ import annotations

from pathlib import Path

import einvoice_golden as golden
import pytest
from cryptography import x509
from fastapi.testclient import TestClient
from lxml import etree

from einvoice.error_notice import (
    load_error_notice_xml,
    notice_from_element,
    validate_error_notice_xml,
)
from einvoice.tax_authority.client import HttpTaxAuthorityClient, Outcome
from einvoice.tax_authority.messages import (
    MessageType,
    document_format,
    read_message,
    summary_facts,
    validate_document,
    wrap_document,
)
from einvoice.tax_authority.sandbox import create_app
from signing.xmldsig import verify_enveloped

MESSAGES = {
    # file: (message type, MLTDiep, PBan, result code)
    "01-th-bldt-0.1.xml": (MessageType.DAILY_SUMMARY, "400", "0.1", "204"),
    "01-th-bldt-0.2.xml": (MessageType.DAILY_SUMMARY, "400", "2.1.0", "204"),
    "01-dktd-ctdt-0.1.xml": (MessageType.REGISTRATION, "100", "0.1", "103"),
    "01-dktd-ctdt-0.2.xml": (MessageType.REGISTRATION, "109", "2.1.0", "111"),
}
NOTICES = {
    # file: (MLTDiep of its envelope, PBan, result code)
    "04-ss-ctdt-0.1-signed.xml": ("300", "0.1", "301"),
    "04-ss-ctdt-0.2-signed.xml": ("304", "2.1.0", "301"),
}
ALL = [*MESSAGES, *NOTICES]


def _ca() -> x509.Certificate:
    return x509.load_pem_x509_certificate(golden.CA_PEM.read_bytes())


def _notice_message(name: str) -> bytes:
    return wrap_document(
        MessageType.ERROR_NOTICE,
        golden.golden_bytes(name),
        sender_code=golden.SENDER,
        receiver_code="TCT",
        tax_code=golden.TAX_CODE,
        message_id=golden.SENDER + "7" * 32,
    )


def _message(name: str) -> bytes:
    return _notice_message(name) if name in NOTICES else golden.golden_bytes(name)


@pytest.mark.parametrize("name", [n for n in ALL if n in golden.BUILDERS])
def test_todays_code_makes_the_golden_bytes(name: str) -> None:
    """0.1 summaries can still be built (same names, PBan 0.1) and must come out identical."""
    assert golden.BUILDERS[name]() == golden.golden_bytes(name)


@pytest.mark.parametrize("name", golden.CAPTURED)
def test_captured_0_1_documents_are_not_built_any_more(name: str) -> None:
    assert name not in golden.BUILDERS and (golden.GOLDEN / name).exists()


@pytest.mark.parametrize("name", list(MESSAGES))
def test_message_envelope_codes_and_schemas(name: str) -> None:
    kind, code, pban, _ = MESSAGES[name]
    message = read_message(golden.golden_bytes(name))
    assert (message.header.message_type, message.header.version) == (code, pban)
    assert message.header.known_type is kind
    (document,) = message.documents
    validate_document(kind, document, signed=True, fmt=message.header.format)
    fmt = document_format(document)
    assert fmt is not None and fmt.document_version == pban


@pytest.mark.parametrize("name", list(NOTICES))
def test_notices_read_validate_and_travel_in_their_own_mapping(name: str) -> None:
    code, pban, _ = NOTICES[name]
    root = load_error_notice_xml(golden.golden_bytes(name))
    validate_error_notice_xml(root)
    parsed = notice_from_element(root)
    assert parsed.document_version == pban and parsed.tax_code == golden.TAX_CODE
    (entry,) = parsed.entries
    assert (entry.template, entry.series, entry.number, entry.issued_on) == (
        "EBL01",
        "26TAB",
        1234,
        golden.DAY,
    )
    header = read_message(_notice_message(name)).header
    assert (header.message_type, header.version) == (code, pban)
    assert header.known_type is MessageType.ERROR_NOTICE


def test_both_summaries_state_the_same_day() -> None:
    old, new = (
        summary_facts(read_message(golden.golden_bytes(f"01-th-bldt-{v}.xml")).documents[0])
        for v in ("0.1", "0.2")
    )
    assert old == new and (new.row_count, new.total_amount, new.day) == (3, 24_000, golden.DAY)


@pytest.mark.parametrize("name", ALL)
def test_signatures_verify_against_the_golden_ca(name: str) -> None:
    data = golden.golden_bytes(name)
    status = verify_enveloped(data, trusted_ca=_ca())
    assert status.valid and status.trusted_chain, status.problems
    assert status.signed_element is not None
    assert status.signed_element.tag == golden.signed_element_of(name)
    assert status.tax_code == golden.TAX_CODE


@pytest.mark.skipif(golden.XMLSEC1 is None, reason="xmlsec1 not installed")
@pytest.mark.parametrize("name", ALL)
def test_xmlsec1_verifies_every_golden_document(name: str, tmp_path: Path) -> None:
    data = golden.golden_bytes(name)
    element = golden.signed_element_of(name)
    done = golden.xmlsec1_verify(data, element, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "SignedInfo References (ok/all): 2/2" in done.stderr
    head, signed = data.split(f"<{element} ".encode(), 1)  # tamper inside the signed data
    tampered = head + f"<{element} ".encode() + signed.replace(b"-001<", b"-002<", 1)
    assert tampered != data
    assert golden.xmlsec1_verify(tampered, element, tmp_path).returncode != 0


@pytest.mark.parametrize("name", ALL)
def test_the_sandbox_accepts_each_in_its_own_mapping(name: str, tmp_path: Path) -> None:
    """One sandbox per document (the goldens share a day and message ids)."""
    result_code = (MESSAGES.get(name) or NOTICES[name])[-1]
    app = create_app(tmp_path, trusted_ca=_ca(), environ={})
    with TestClient(app, base_url="http://sandbox") as http:
        client = HttpTaxAuthorityClient("http://sandbox", http, max_attempts=1)
        ack = client.send(_message(name))
        assert ack.outcome is Outcome.ACCEPTED, ack.reasons
        answer = http.get(f"/messages/{ack.message_id}")
    held = etree.fromstring(answer.content)
    codes = [e.text for e in held.iterfind("TDiep/TTChung/MLTDiep")]
    expected = ["999", "110", "111"] if name == "01-dktd-ctdt-0.2.xml" else ["999", result_code]
    assert codes == expected
    versions = {e.text for e in held.iterfind("TDiep/TTChung/PBan")}
    assert versions == {read_message(_message(name)).header.version}
