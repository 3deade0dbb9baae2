from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from infra.clock import now
from lxml import etree
from signing_testdata import ORG_NAME, ORG_TAX_CODE, SAMPLE_XML, Pki
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from signing import certs
from signing.keys import KeySource, Pkcs12KeySource
from signing.xmldsig import VIETNAM_TZ, sign_enveloped, verify_enveloped

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"ds": DS}
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SIGNED_AT = now().replace(microsecond=0)
"""Now, because the session PKI is issued now; fixed times are tested separately."""
SIGNED_AT_LOCAL = SIGNED_AT.astimezone(VIETNAM_TZ).strftime("%Y-%m-%dT%H:%M:%S")


def _sign(root: etree._Element, key: KeySource, **kwargs: object) -> bytes:
    signed = sign_enveloped(
        root,
        signed_id="data",
        key=key,
        signing_time=kwargs.pop("signing_time", SIGNED_AT),  # type: ignore[arg-type]
        tz=VIETNAM_TZ,
        **kwargs,  # type: ignore[arg-type]
    )
    return etree.tostring(signed, encoding="UTF-8", xml_declaration=True)


@pytest.fixture
def signed(sample_root: etree._Element, key_source: KeySource) -> bytes:
    return _sign(sample_root, key_source)


def _signature(document: bytes) -> etree._Element:
    found = etree.fromstring(document).findall(".//ds:Signature", NS)
    assert len(found) == 1
    return found[0]


# --- structure ------------------------------------------------------------------------------


def test_algorithms_are_the_tax_authority_profile(signed: bytes) -> None:
    signature = _signature(signed)
    assert signature.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == C14N_10  # type: ignore[union-attr]
    assert signature.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == RSA_SHA256  # type: ignore[union-attr]
    digests = signature.findall("ds:SignedInfo/ds:Reference/ds:DigestMethod", NS)
    assert [d.get("Algorithm") for d in digests] == [SHA256, SHA256]


def test_two_references_data_then_signing_time(signed: bytes) -> None:
    signature = _signature(signed)
    references = signature.findall("ds:SignedInfo/ds:Reference", NS)
    assert [r.get("URI") for r in references] == ["#data", "#data-sig-signingtime"]
    transforms = [
        [t.get("Algorithm") for t in r.findall("ds:Transforms/ds:Transform", NS)]
        for r in references
    ]
    assert transforms == [[ENVELOPED, C14N_10], [C14N_10]]


def test_signature_element_order_ids_and_target(signed: bytes) -> None:
    signature = _signature(signed)
    assert signature.get("Id") == "data-sig"
    assert [etree.QName(child).localname for child in signature] == [
        "SignedInfo",
        "SignatureValue",
        "KeyInfo",
        "Object",
    ]
    obj = signature.find("ds:Object", NS)
    assert obj is not None and obj.get("Id") == "data-sig-signingtime"
    prop = obj.find("ds:SignatureProperties/ds:SignatureProperty", NS)
    assert prop is not None and prop.get("Target") == "#data-sig"


def _signing_time_text(document: bytes) -> str | None:
    return _signature(document).findtext(
        "ds:Object/ds:SignatureProperties/ds:SignatureProperty/SigningTime", namespaces=NS
    )


def test_signing_time_is_local_without_zone(signed: bytes) -> None:
    text = _signing_time_text(signed)
    assert text == SIGNED_AT_LOCAL
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", text)


@pytest.mark.parametrize(
    "moment",
    [
        SIGNED_AT.astimezone(UTC),
        SIGNED_AT.astimezone(timezone(timedelta(hours=9))),
        SIGNED_AT.astimezone(UTC).replace(microsecond=999_999),
    ],
    ids=["utc", "tokyo-offset", "microseconds-dropped"],
)
def test_signing_time_is_converted_to_the_given_zone(
    sample_root: etree._Element, key_source: KeySource, moment: datetime
) -> None:
    assert _signing_time_text(_sign(sample_root, key_source, signing_time=moment)) == (
        SIGNED_AT_LOCAL
    )


def test_key_info_carries_subject_name_and_certificate(signed: bytes, pki: Pki) -> None:
    x509_data = _signature(signed).find("ds:KeyInfo/ds:X509Data", NS)
    assert x509_data is not None
    subject = x509_data.find("ds:X509SubjectName", NS)
    assert subject is not None and subject.text == pki.org_cert.subject.rfc4514_string()
    assert f"CN={ORG_NAME}" in subject.text
    assert f"UID=MST:{ORG_TAX_CODE}" in subject.text
    certificate = x509_data.find("ds:X509Certificate", NS)
    assert certificate is not None and certificate.text
    assert base64.b64decode(certificate.text) == pki.org_cert.public_bytes(Encoding.DER)
    assert _signature(signed).find("ds:KeyInfo/ds:KeyValue", NS) is None


def test_signature_replaces_the_placeholder(signed: bytes) -> None:
    root = etree.fromstring(signed)
    assert root.find("DSCKS/NBan/ds:Signature", NS) is not None
    assert root.find(".//ds:Signature[@Id='placeholder']", NS) is None
    assert "Biên lai thu phí, lệ phí" in signed.decode("utf-8")


def test_without_placeholder_the_signature_is_the_last_child(key_source: KeySource) -> None:
    root = etree.fromstring(
        b'<BLai><DLBLai Id="data"><Ten>L\xe1\xbb\x87 ph\xc3\xad</Ten></DLBLai></BLai>'
    )
    signed_root = etree.fromstring(_sign(root, key_source))
    assert etree.QName(signed_root[-1]).text == f"{{{DS}}}Signature"
    assert verify_enveloped(etree.tostring(signed_root)).valid


def test_placeholder_parent_creates_the_placeholder(key_source: KeySource) -> None:
    root = etree.fromstring(b'<BLai><DLBLai Id="data">x</DLBLai><DSCKS><NBan/></DSCKS></BLai>')
    nban = root.find("DSCKS/NBan")
    assert nban is not None
    signed_root = etree.fromstring(_sign(root, key_source, placeholder_parent=nban))
    assert signed_root.find("DSCKS/NBan/ds:Signature", NS) is not None
    assert len(nban) == 0, "the caller's tree is not modified"


def test_input_document_is_left_untouched(
    sample_root: etree._Element, key_source: KeySource
) -> None:
    before = etree.tostring(sample_root)
    _sign(sample_root, key_source)
    assert etree.tostring(sample_root) == before


def test_signing_is_deterministic(sample_root: etree._Element, key_source: KeySource) -> None:
    assert _sign(sample_root, key_source) == _sign(sample_root, key_source)


def test_document_with_default_namespace(key_source: KeySource) -> None:
    root = etree.fromstring(
        b'<BLai xmlns="urn:example:receipt"><DLBLai Id="data">x</DLBLai><DSCKS><NBan/></DSCKS>'
        b"</BLai>"
    )
    nban = root.find("{urn:example:receipt}DSCKS/{urn:example:receipt}NBan")
    assert nban is not None
    document = _sign(root, key_source, placeholder_parent=nban)
    status = verify_enveloped(document)
    assert status.valid, status.problems
    assert status.signing_time == SIGNED_AT_LOCAL


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b'<BLai><A Id="data"/><B Id="data"/></BLai>', "exactly one element"),
        (b'<BLai><A Id="other"/></BLai>', "exactly one element"),
        (b'<BLai><A Id="data"/><B Id="data-sig"/></BLai>', "already used"),
        (b'<BLai xml:lang="vi"><A Id="data"/></BLai>', "xml:lang"),
        (
            b'<BLai><A Id="data"/><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
            b' Id="placeholder"><ds:SignedInfo/></ds:Signature></BLai>',
            "must be empty",
        ),
    ],
)
def test_refuses_documents_it_cannot_sign_faithfully(
    xml: bytes, message: str, key_source: KeySource
) -> None:
    with pytest.raises(ValueError, match=message):
        _sign(etree.fromstring(xml), key_source)


def test_naive_signing_time_is_refused(sample_root: etree._Element, key_source: KeySource) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _sign(sample_root, key_source, signing_time=SIGNED_AT.replace(tzinfo=None))


# --- verification ---------------------------------------------------------------------------


def test_verifies_and_reports_what_viewers_show(signed: bytes, pki: Pki) -> None:
    status = verify_enveloped(signed, trusted_ca=pki.ca_cert)
    assert status.valid, status.problems
    assert status.problems == ()
    assert status.signer_common_name == ORG_NAME
    assert status.tax_code == ORG_TAX_CODE
    assert status.signing_time == SIGNED_AT_LOCAL
    assert status.certificate == pki.org_cert
    assert status.signature_id == "data-sig"
    assert status.development is True
    assert status.trusted_chain is True
    assert status.signed_element is not None
    assert status.signed_element.tag == "DLBLai"
    assert status.signed_element.findtext("NDBLai/TNNop") == "Nguyễn Văn Ánh"


def test_tampered_business_data_is_invalid(signed: bytes) -> None:
    tampered = signed.replace(b"10000", b"90000", 1)
    assert tampered != signed
    status = verify_enveloped(tampered)
    assert not status.valid
    assert status.signed_element is None
    assert any("changed after signing" in problem for problem in status.problems)


def test_one_flipped_byte_is_invalid(signed: bytes) -> None:
    index = signed.index("Nguyễn".encode())
    tampered = signed[:index] + b"M" + signed[index + 1 :]
    assert not verify_enveloped(tampered).valid


def test_tampered_signing_time_is_invalid(signed: bytes) -> None:
    later = (SIGNED_AT + timedelta(minutes=1)).astimezone(VIETNAM_TZ)
    tampered = signed.replace(
        SIGNED_AT_LOCAL.encode(), later.strftime("%Y-%m-%dT%H:%M:%S").encode()
    )
    assert tampered != signed
    status = verify_enveloped(tampered)
    assert not status.valid
    assert any("changed after signing" in problem for problem in status.problems)


def test_swapped_certificate_is_invalid(signed: bytes, pki: Pki, other_pki: Pki) -> None:
    ours = base64.b64encode(pki.org_cert.public_bytes(Encoding.DER))
    theirs = base64.b64encode(other_pki.org_cert.public_bytes(Encoding.DER))
    status = verify_enveloped(signed.replace(ours, theirs))
    assert not status.valid
    assert any("signature value does not match" in problem for problem in status.problems)


def test_untrusted_ca(signed: bytes, other_pki: Pki) -> None:
    status = verify_enveloped(signed, trusted_ca=other_pki.ca_cert)
    assert not status.valid
    assert status.trusted_chain is False
    assert any("does not chain" in problem for problem in status.problems)


def test_validity_is_judged_at_signing_time(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The signed XML is the legal original: it stays valid after the certificate expires."""
    # Deliberate: a fixed historical PKI (issued 2024-01-01, expired since) so the SigningTime
    # and the validity window it is judged by are exact.
    issued = datetime(2024, 1, 1, tzinfo=UTC)
    ca_key, ca_cert = certs.create_dev_ca("Dev CA 2024", valid_days=365, now=issued)
    key, cert = certs.create_dev_org_certificate(
        ca_key, ca_cert, ORG_NAME, ORG_TAX_CODE, valid_days=30, now=issued
    )
    path = tmp_path_factory.mktemp("expired") / "org.p12"
    certs.write_pkcs12(path, key, cert, (), None)
    source = Pkcs12KeySource.load(path, None)
    document = _sign(
        etree.fromstring(SAMPLE_XML.encode()), source, signing_time=issued + timedelta(days=1)
    )

    at_signing = verify_enveloped(document, trusted_ca=ca_cert)
    assert at_signing.valid, at_signing.problems
    assert at_signing.signing_time == "2024-01-02T07:00:00"  # deliberate: issued + 1 day, local
    later = verify_enveloped(document, validation_time=issued + timedelta(days=60))
    assert not later.valid
    assert any("not valid at the signing time" in problem for problem in later.problems)


def test_wrong_profile_is_reported(sample_root: etree._Element, key_source: KeySource) -> None:
    """A plain signxml signature (c14n 1.1, one reference) is valid XMLDSig but not the profile."""
    plain = XMLSigner(method=SignatureConstructionMethod.enveloped).sign(
        sample_root,
        key=key_source.private_key,
        cert=[key_source.certificate],
        reference_uri="#data",
    )
    status = verify_enveloped(etree.tostring(plain))
    assert not status.valid
    problems = " | ".join(status.problems)
    assert "canonicalisation is http://www.w3.org/2006/12/xml-c14n11" in problems
    assert "1 references, expected 2" in problems
    assert "no X509SubjectName" in problems


def test_unsupported_transform_is_reported(signed: bytes) -> None:
    xpath = b'<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>'
    tampered = signed.replace(b"<ds:Transforms>", b"<ds:Transforms>" + xpath, 1)
    status = verify_enveloped(tampered)
    assert not status.valid
    assert any("unsupported transform" in problem for problem in status.problems)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "DTD"),
        (b'<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x/>', "DTD"),
        (b"<x", "not well-formed"),
        (b"<x/>", "found 0 signatures"),
        (b"", "not well-formed"),
    ],
)
def test_hostile_or_broken_input_never_raises(document: bytes, expected: str) -> None:
    status = verify_enveloped(document)
    assert not status.valid
    assert expected in " ".join(status.problems)


def test_size_limit(signed: bytes) -> None:
    status = verify_enveloped(signed, max_bytes=len(signed) - 1)
    assert not status.valid
    assert "more than the" in status.problems[0]


def test_several_signatures_need_a_signature_id(signed: bytes, key_source: KeySource) -> None:
    root = etree.fromstring(signed)
    twice = sign_enveloped(
        root,
        signed_id="data",
        key=key_source,
        signing_time=SIGNED_AT,
        tz=VIETNAM_TZ,
        signature_id="second",
    )
    document = etree.tostring(twice)
    assert "found 2 signatures" in verify_enveloped(document).problems[0]
    first = verify_enveloped(document, signature_id="data-sig")
    second = verify_enveloped(document, signature_id="second")
    assert first.valid, first.problems
    assert second.valid, second.problems


def test_certificate_helpers_are_consistent_with_status(signed: bytes) -> None:
    status = verify_enveloped(signed)
    assert isinstance(status.certificate, x509.Certificate)
    assert certs.tax_code_of(status.certificate) == status.tax_code
