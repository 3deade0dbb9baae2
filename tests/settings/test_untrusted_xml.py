"""The one hardened XML reader (issue 13): every refusal, and what it must still let through.

The packages' own tests (receipts, tax messages, statements, signatures) check that each keeps
its public error; this file checks the rules themselves, once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from infra.callback_receiver import CallbackReceiver
from lxml import etree

from settings.untrusted_xml import (
    UntrustedXmlError,
    UntrustedXmlReason,
    hardened_parser,
    load_schema,
    parse_untrusted,
)
from signing.xmldsig import verify_enveloped

TESTS = Path(__file__).resolve().parent.parent
SIGNED = TESTS / "signing" / "golden" / "receipt-signed.xml"
"""Indented: whitespace inside the signed element is part of what was signed."""
SIGNED_CA = TESTS / "signing" / "golden" / "ca.pem"
RECEIPT_SCHEMA = TESTS.parent / "einvoice" / "schemas" / "bien-lai-0.2.xsd"

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    + "]>\n<lolz>&lol9;</lolz>"
).encode()
"""Ten levels of ten: a gigabyte of "lol" from a few hundred bytes, if anything expanded it."""


def _refused(data: bytes, **options: object) -> UntrustedXmlError:
    with pytest.raises(UntrustedXmlError) as caught:
        parse_untrusted(data, what="test XML", **options)  # type: ignore[arg-type]
    return caught.value


@pytest.fixture
def listener() -> Iterator[CallbackReceiver]:
    """A local HTTP server that records every request: the proof that nothing was fetched."""
    with CallbackReceiver(path="/dtd") as receiver:
        yield receiver


# --------------------------------------------------------------------------- refused


def test_billion_laughs_is_refused_fast() -> None:
    started = time.monotonic()
    error = _refused(BILLION_LAUGHS)
    assert error.reason is UntrustedXmlReason.DOCTYPE
    assert "DOCTYPE" in str(error) and "DTD" in str(error)
    assert time.monotonic() - started < 1


def test_billion_laughs_is_not_expanded_by_the_parser_itself() -> None:
    # Second line of defence, should the scan ever be bypassed.
    started = time.monotonic()
    try:
        root = etree.fromstring(BILLION_LAUGHS, hardened_parser())
    except etree.XMLSyntaxError:
        pass  # libxml2 refusing the amplification is fine too
    else:
        assert len(etree.tostring(root)) < 100_000
    assert time.monotonic() - started < 1


def test_external_file_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    for target in ("file:///etc/passwd", secret.as_uri()):
        data = (
            f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{target}">]><r>&x;</r>'
        ).encode()
        error = _refused(data)
        assert error.reason is UntrustedXmlReason.DOCTYPE
        assert "root:" not in str(error) and "TOP-SECRET" not in str(error)
        text = etree.tostring(etree.fromstring(data, hardened_parser())).decode()
        assert "root:" not in text and "TOP-SECRET" not in text


def test_network_entity_and_dtd_are_refused_and_never_fetched(listener: CallbackReceiver) -> None:
    # libxml2 2.14 has no HTTP client left; the request count guards builds that still do.
    url = listener.url
    documents = [
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{url}/e">]><r>&x;</r>'.encode(),
        f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{url}/r.dtd"><r/>'.encode(),
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><r/>'.encode(),
    ]
    for data in documents:
        assert _refused(data).reason is UntrustedXmlReason.DOCTYPE
        try:
            text = etree.tostring(etree.fromstring(data, hardened_parser())).decode()
        except etree.XMLSyntaxError:
            text = ""
        assert '"ok"' not in text
    assert listener.requests == []


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE r><r/>",
        b"<?xml version='1.0'?>\n<!doctype r [<!ELEMENT r ANY>]><r/>",
        b"<!DOCTYPE r PUBLIC '-//W3C//DTD XHTML 1.0 Strict//EN' 'x.dtd'><r/>",
    ],
    ids=["bare", "internal-subset-lower-case", "public-id"],
)
def test_any_doctype_is_refused_even_without_entities(data: bytes) -> None:
    assert _refused(data).reason is UntrustedXmlReason.DOCTYPE


def test_doctype_hidden_by_another_encoding_is_refused_after_parsing() -> None:
    text = "<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>"
    data = text.encode("utf-16")
    assert b"<!DOCTYPE" not in data and b"D\x00O\x00C" in data
    assert _refused(data).reason is UntrustedXmlReason.DOCTYPE


def test_entity_declaration_outside_a_doctype_is_refused() -> None:
    assert _refused(b'<r><!ENTITY x "y"></r>').reason is UntrustedXmlReason.ENTITY


def test_oversize_is_refused_before_parsing() -> None:
    data = b"<r>" + b" " * 100 + b"</r>"
    error = _refused(data, max_bytes=len(data) - 1)
    assert error.reason is UntrustedXmlReason.TOO_LARGE
    assert "larger than" in str(error)
    assert parse_untrusted(data, what="test XML", max_bytes=len(data)).tag == "r"


@pytest.mark.parametrize("data", [b"<r>", b"not xml", b"<r></R>", b"<a><b></a></b>"])
def test_malformed_is_refused_with_the_line_and_lxml_as_cause(data: bytes) -> None:
    error = _refused(data)
    assert error.reason is UntrustedXmlReason.MALFORMED
    assert "not well-formed (line 1)" in str(error)
    assert isinstance(error.__cause__, etree.XMLSyntaxError)


def test_too_deep_a_tree_is_refused_huge_tree_being_off() -> None:
    data = b"<a>" * 1000 + b"</a>" * 1000
    assert _refused(data).reason is UntrustedXmlReason.MALFORMED


@pytest.mark.parametrize("data", [b"", b"   \n\t"])
def test_empty_is_refused(data: bytes) -> None:
    error = _refused(data)
    assert error.reason is UntrustedXmlReason.EMPTY
    assert "not well-formed" in str(error)


def test_text_instead_of_bytes_is_refused() -> None:
    with pytest.raises(UntrustedXmlError, match="bytes") as caught:
        parse_untrusted("<r/>", what="test XML")  # type: ignore[arg-type]
    assert caught.value.reason is UntrustedXmlReason.MALFORMED


def test_refusals_are_value_errors_with_a_vietnamese_message() -> None:
    error = _refused(b"<!DOCTYPE r><r/>")
    assert isinstance(error, ValueError)
    assert error.message_en == str(error)
    assert "không được phép" in error.message_vi


# --------------------------------------------------------------------------- accepted


def test_a_good_document_is_read_as_written() -> None:
    data = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<r a='1'>\n  <!-- note --><x>Lệ phí &amp; phí</x>\n  <?pi data?>\n</r>"
    ).encode()
    root = parse_untrusted(data, what="test XML")
    assert root.findtext("x") == "Lệ phí & phí"
    assert root.text == "\n  "  # whitespace kept
    assert len(root) == 3  # comment, element and processing instruction kept
    stripped = parse_untrusted(data, what="test XML", strip_comments=True)
    assert [child.tag for child in stripped] == ["x"]


def test_a_signed_document_still_verifies_after_parsing() -> None:
    ca = x509.load_pem_x509_certificate(SIGNED_CA.read_bytes())
    signed = SIGNED.read_bytes()
    assert verify_enveloped(signed, trusted_ca=ca).valid

    root = parse_untrusted(signed, what="signed XML")
    again = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    status = verify_enveloped(again, trusted_ca=ca)
    assert status.valid, status.problems

    # Why the shared parser keeps blank text: a parser that drops it changes the signed bytes.
    squeezed = etree.fromstring(signed, etree.XMLParser(remove_blank_text=True))
    assert not verify_enveloped(etree.tostring(squeezed), trusted_ca=ca).valid


def test_our_schemas_load_by_the_same_rules(tmp_path: Path) -> None:
    schema = load_schema(RECEIPT_SCHEMA)
    assert not schema.validate(etree.fromstring(b"<BLai/>"))
    hostile = tmp_path / "hostile.xsd"
    hostile.write_bytes(b'<!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s>&x;</s>')
    with pytest.raises(UntrustedXmlError):
        load_schema(hostile)
