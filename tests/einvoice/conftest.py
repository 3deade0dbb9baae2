"""Fixtures for the receipt wording and XML tests: one fixed receipt, and a throw-away signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from einvoice.document import Collector, FeeKind, Payer, ReceiptDocument, ReceiptLine
from einvoice.receipt_xml import build_receipt_xml


@pytest.fixture
def receipt_document() -> ReceiptDocument:
    """A fixed receipt: diacritics everywhere, one lệ phí, one phí exempted down to 0 đồng.

    Issued at 02:15:30 UTC, i.e. 09:15:30 in Asia/Ho_Chi_Minh, on 2026-11-20.
    """
    return ReceiptDocument(
        receipt_id="0f8e2b7c9d4a4e1b8c3d2a1f0e9b8c7d",
        template="EBL01",
        series="26TAB",
        number=1234,
        issued_at=datetime(2026, 11, 20, 2, 15, 30, 987654, tzinfo=UTC),
        collector=Collector(
            name="Ủy ban nhân dân phường Hàng Bạc",
            tax_code="0101234567-001",
            address="Số 38 phố Hàng Bạc, phường Hàng Bạc, quận Hoàn Kiếm, Hà Nội",
        ),
        payer=Payer(
            name="Nguyễn Thị Ánh Tuyết",
            address="Số 5 ngõ Huyện, phường Hàng Trống, quận Hoàn Kiếm, Hà Nội",
            id_number="001190012345",
            email="anh.tuyet@example.vn",
            phone="0912345678",
        ),
        lines=(
            ReceiptLine(
                fee_code="LP-HT-01",
                name="Lệ phí đăng ký khai sinh",
                kind=FeeKind.LE_PHI,
                quantity=1,
                unit_price=8_000,
                amount=8_000,
                unit="lần",
            ),
            ReceiptLine(
                fee_code="P-CT-02",
                name="Phí chứng thực bản sao từ bản chính",
                kind=FeeKind.PHI,
                quantity=3,
                unit_price=2_000,
                amount=0,
                unit="trang",
                exemption="Miễn phí cho hộ nghèo (Thông tư 226/2016/TT-BTC)",
            ),
        ),
        payment_method="Chuyển khoản",
        payment_reference="MC7Q2K9X",
        procedure_code="1.001193",
        procedure_name="Thủ tục đăng ký khai sinh",
        dossier_code="000.00.12.H26-261120-0007",
        verify_code="K7PQ2M4XWZ3NB6RA",
        verify_url="https://bienlai.example.vn/tra-cuu/K7PQ2M4XWZ3NB6RA",
        notes=("Nộp tại Bộ phận Một cửa",),
    )


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
