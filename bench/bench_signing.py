"""Signed XML receipts per second against raw RSA-2048 signs per second (issue 3 goal ≥ 50%)."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bench.common import Table, rate
from einvoice.document import Collector, FeeKind, Payer, ReceiptDocument, ReceiptLine
from einvoice.receipt_xml import build_receipt_xml, signed_id_for, validate_receipt_xml
from signing.certs import create_dev_ca, create_dev_org_certificate, write_pkcs12
from signing.keys import Pkcs12KeySource
from signing.xmldsig import sign_enveloped
from signing.xmldsig_fast import sign_enveloped_fast

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ROUNDS = 5


def document(n: int) -> ReceiptDocument:
    return ReceiptDocument(
        receipt_id=uuid.uuid4().hex,
        template="EBL01",
        series="26TAB",
        number=n,
        issued_at=datetime.now(UTC),
        collector=Collector(
            name="Ủy ban nhân dân huyện Sơn Hà", tax_code="0108424452", address="Số 1 Trần Hưng Đạo"
        ),
        payer=Payer(name="Nguyễn Văn An", address="Hà Nội", id_number="001090012345"),
        lines=(
            ReceiptLine(
                fee_code="CT-BS",
                name="Phí chứng thực bản sao",
                kind=FeeKind.PHI,
                quantity=3,
                unit_price=2000,
                amount=6000,
                unit="trang",
            ),
            ReceiptLine(
                fee_code="HT-KS",
                name="Lệ phí đăng ký khai sinh",
                kind=FeeKind.LE_PHI,
                quantity=1,
                unit_price=8000,
                amount=8000,
            ),
        ),
        payment_method="transfer",
        payment_reference="MC7K3QH9XAB2C",
        procedure_code="1.001612",
        procedure_name="Chứng thực bản sao từ bản chính",
        dossier_code="H01.22-261121-0001",
        verify_code="ABCDEFGHJKMNPQRS",
        verify_url="https://thuphi.example.vn/r/ABCDEFGHJKMNPQRS",
    )


def run(table: Table) -> None:
    ca_key, ca = create_dev_ca("bench CA")
    key, cert = create_dev_org_certificate(ca_key, ca, "Ủy ban nhân dân huyện Sơn Hà", "0108424452")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "org.p12"
        write_pkcs12(path, key, cert, (ca,), None)
        source = Pkcs12KeySource.load(path, None)
    private = source.private_key
    data = b"x" * 1300
    raw = rate(lambda: private.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    counter = iter(range(1, 10**9))

    def one_receipt() -> None:
        doc = document(next(counter))
        signed = sign_enveloped(
            build_receipt_xml(doc),
            signed_id=signed_id_for(doc),
            key=source,
            signing_time=doc.issued_at,
            tz=ZONE,
        )
        validate_receipt_xml(signed)

    def one_receipt_fast() -> None:
        doc = document(next(counter))
        signed = sign_enveloped_fast(
            build_receipt_xml(doc),
            signed_id=signed_id_for(doc),
            key=source,
            signing_time=doc.issued_at,
            tz=ZONE,
            copy=False,
        )
        validate_receipt_xml(signed)

    generic = rate(one_receipt, max_n=5000)
    # Alternating rounds, median ratio: this VM's speed drifts between seconds, and a baseline
    # taken once at the start swung the ratio by ±0.1 on its own.
    pairs = []
    for _ in range(ROUNDS):
        base = rate(lambda: private.sign(data, padding.PKCS1v15(), hashes.SHA256()), max_s=1.5)
        pairs.append((base, rate(one_receipt_fast, max_n=10000, max_s=1.5)))
    pairs.sort(key=lambda pair: pair[1] / pair[0])
    raw, ours = pairs[len(pairs) // 2]
    rounds = ", ".join(f"{o / b:.2f}" for b, o in pairs)
    table.add(
        "signed XML receipts/s (build + sign + XSD) ÷ raw RSA-2048 signs/s"
        f" (median of {ROUNDS} alternating rounds: {rounds})",
        f"{ours:,.0f}/s",
        f"{raw:,.0f}/s",
        f"{ours / raw:.2f}",
        "≥ 0.50",
    )
    table.add(
        "  same through signxml's generic signer (reference path)",
        f"{generic:,.0f}/s",
        f"{raw:,.0f}/s",
        f"{generic / raw:.2f}",
        "",
    )
