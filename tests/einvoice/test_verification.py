"""``einvoice.verification.verify_document`` without a database: signature, MST, refusals, PDF."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import einvoice_golden
import pytest
from cryptography import x509

from einvoice.document import ReceiptDocument
from einvoice.errors import FileTooLarge, UnsafeXml
from einvoice.receipt_xml import build_receipt_xml, receipt_xml_bytes, signed_id_for
from einvoice.verification import MAX_DOCUMENT_BYTES, STATUS_UNKNOWN, verify_document
from signing.certs import create_dev_ca, create_dev_org_certificate
from signing.keys import Pkcs12KeySource
from signing.xmldsig import VIETNAM_TZ, sign_enveloped


def key_for(tax_code: str) -> Pkcs12KeySource:
    ca_key, ca_cert = create_dev_ca("Test CA")
    key, cert = create_dev_org_certificate(ca_key, ca_cert, "Phường Hàng Bạc", tax_code)
    return Pkcs12KeySource(Path("/dev/null"), key, cert, (ca_cert,))


def signed_bytes(doc: ReceiptDocument, key: Pkcs12KeySource) -> bytes:
    return receipt_xml_bytes(
        sign_enveloped(
            build_receipt_xml(doc),
            signed_id=signed_id_for(doc),
            key=key,
            signing_time=datetime.now(UTC),
            tz=VIETNAM_TZ,
        )
    )


def test_a_valid_receipt_without_a_database(receipt_document: ReceiptDocument) -> None:
    key = key_for(receipt_document.collector.tax_code)
    result = verify_document(signed_bytes(receipt_document, key), "application/xml")
    assert result.valid, result.problems
    assert result.status == STATUS_UNKNOWN  # no database: we cannot say whether it is in force
    assert result.signer == "Phường Hàng Bạc" and result.tax_code_matches is True
    assert (result.template, result.series, result.number) == ("EBL01", "26TAB", 1234)
    assert result.total == 8000 and result.receipt_id is None
    assert {w.code for w in result.warnings} == {"development_certificate", "chain_not_checked"}


def test_the_certificate_must_carry_the_receipts_tax_code(
    receipt_document: ReceiptDocument,
) -> None:
    result = verify_document(signed_bytes(receipt_document, key_for("0100109106")))
    assert not result.valid
    assert [p.code for p in result.problems] == ["tax_code_mismatch"]
    assert "0100109106" in result.problems[0].en and "0101234567-001" in result.problems[0].vi


def test_trusted_chain_is_checked_when_a_ca_is_given(receipt_document: ReceiptDocument) -> None:
    key = key_for(receipt_document.collector.tax_code)
    data = signed_bytes(receipt_document, key)
    good = verify_document(data, trusted_ca=key.chain[0])
    assert good.valid and good.trusted_chain is True
    _, other_ca = create_dev_ca("Another CA")
    bad = verify_document(data, trusted_ca=other_ca)
    assert not bad.valid and bad.trusted_chain is False


def test_refusals_are_errors_not_answers() -> None:
    with pytest.raises(FileTooLarge):
        verify_document(b"<BLai/>" + b" " * MAX_DOCUMENT_BYTES)
    with pytest.raises(UnsafeXml):
        verify_document(b'<!DOCTYPE BLai [<!ENTITY x "y">]><BLai>&x;</BLai>')


def test_pdf_without_the_pades_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "signing.pades", None)
    result = verify_document(b"%PDF-1.7\n...", "application/pdf")
    assert not result.valid and result.format == "pdf"
    assert result.problems[0].en.startswith("PDF verification not available yet")


def test_signed_pdf_is_checked_by_pades() -> None:
    pades = pytest.importorskip("signing.pades")
    canvas_module = pytest.importorskip("reportlab.pdfgen.canvas")
    buffer = BytesIO()
    canvas = canvas_module.Canvas(buffer)
    canvas.drawString(72, 720, "Bien lai")
    canvas.save()
    key = key_for("0101234567-001")
    signed = pades.sign_pdf(buffer.getvalue(), key, signing_time=datetime.now(UTC))
    result = verify_document(signed, "application/pdf")
    assert result.valid, result.problems
    assert result.format == "pdf" and result.signer_tax_code == "0101234567-001"
    assert result.status == STATUS_UNKNOWN
    assert b"ReportLab Generated" in signed
    tampered = signed.replace(b"ReportLab Generated", b"ReportLab Generatex", 1)
    assert not verify_document(tampered, "application/pdf").valid


@pytest.mark.parametrize("mapping_", ["0.1", "0.2"])
def test_signed_golden_receipts_of_both_mappings_verify(mapping_: str) -> None:
    """A receipt signed in 0.1 before issue 17 verifies as it was signed, as does a 0.2 one."""
    ca = x509.load_pem_x509_certificate(einvoice_golden.CA_PEM.read_bytes())
    data = einvoice_golden.golden_bytes(f"receipt-{mapping_}-signed.xml")
    result = verify_document(data, "application/xml", trusted_ca=ca)
    assert result.valid and result.trusted_chain, result.problems
    assert (result.template, result.series, result.number) == ("EBL01", "26TAB", 1234)
    assert result.tax_code == result.signer_tax_code == einvoice_golden.TAX_CODE
    assert result.issued_on == einvoice_golden.DAY and result.total == 8000
    tampered = verify_document(data.replace("Tuyết".encode(), "Tuyến".encode(), 1))
    assert not tampered.valid
