"""Fixtures for the receipt wording and XML tests: one fixed receipt per mapping, a throw-away
signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import einvoice_golden
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from einvoice.document import ReceiptDocument
from einvoice.receipt_xml import build_receipt_xml


@pytest.fixture(params=["0.1", "0.2"])
def mapping(request: pytest.FixtureRequest) -> str:
    """Every receipt test runs in both mappings: 0.1 is still issued until an agency's switch
    date and read for ever, 0.2 is what new agencies issue."""
    return str(request.param)


@pytest.fixture
def receipt_document(mapping: str) -> ReceiptDocument:
    """The golden receipt (einvoice_golden.py): diacritics everywhere, one lệ phí, one phí
    exempted down to 0 đồng, issued at 09:15:30 in Asia/Ho_Chi_Minh on a fixed day (the golden
    files were made at that moment; a fixed date on purpose)."""
    return einvoice_golden.receipt_document(mapping)


@pytest.fixture
def unsigned_root(receipt_document: ReceiptDocument) -> etree._Element:
    return build_receipt_xml(receipt_document)


@dataclass(frozen=True)
class SigningMaterial:
    """A self-signed RSA-2048 organisation certificate carrying the collector's MST."""

    key: rsa.RSAPrivateKey
    cert_pem: str


@pytest.fixture(scope="session")
def signing_material() -> SigningMaterial:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Ủy ban nhân dân phường Hàng Bạc (TEST)"),
            x509.NameAttribute(NameOID.USER_ID, "MST:0101234567-001"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SigningMaterial(key=key, cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode())


@pytest.fixture
def sign_receipt(
    signing_material: SigningMaterial,
) -> Callable[[etree._Element, str], etree._Element]:
    """Sign a built receipt the way domain.md describes (enveloped, c14n 1.0, rsa-sha256)."""
    from signxml import SignatureConstructionMethod, XMLSigner

    def sign(root: etree._Element, signed_id: str) -> etree._Element:
        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm="rsa-sha256",
            digest_algorithm="sha256",
            c14n_algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        )
        signed: etree._Element = signer.sign(
            root,
            key=signing_material.key,
            cert=signing_material.cert_pem,
            reference_uri=f"#{signed_id}",
        )
        return signed

    return sign
