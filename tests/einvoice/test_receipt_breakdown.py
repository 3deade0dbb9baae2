"""A receipt line says how its amount was reached (issue 14): ``CTTinh`` in mapping 0.2, read back,
signed and verified, printed under the line on the display copy; 0.1 and lines without one are
byte-for-byte as before.

The receipt is the golden one of ``einvoice_golden.py`` (signed at a fixed historical moment, on
purpose: a golden file's signing time is history, not "today") with its exempt line replaced by
a certified copy of 3 pages priced by Circular 226/2016/TT-BTC. Regenerate the two golden files
after a deliberate change with ``UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import einvoice_golden
import pytest
from lxml import etree

from einvoice.document import FeeKind, ReceiptDocument, ReceiptLine
from einvoice.pdf_render import render_receipt_pdf
from einvoice.receipt_xml import (
    ReceiptSchemaError,
    build_receipt_xml,
    parse_receipt_xml,
    receipt_xml_bytes,
    signed_id_for,
    validate_receipt_xml,
)
from signing.xmldsig import VIETNAM_TZ
from signing.xmldsig_fast import sign_enveloped_fast

BREAKDOWN = "2 trang × 2.000 đ + 1 trang × 1.000 đ = 5.000 đ"
UNSIGNED = "receipt-0.2-breakdown.xml"
SIGNED = "receipt-0.2-breakdown-signed.xml"

CERTIFIED_COPY = ReceiptLine(
    fee_code="CT-BS",
    name="Phí chứng thực bản sao từ bản chính",
    kind=FeeKind.PHI,
    quantity=3,
    unit_price=2_000,
    amount=5_000,
    unit="trang",
    breakdown=BREAKDOWN,
)


def _document(mapping: str = "0.2", line: ReceiptLine = CERTIFIED_COPY) -> ReceiptDocument:
    base = einvoice_golden.receipt_document(mapping)
    return replace(base, lines=(base.lines[0], line))


def _unsigned_bytes(doc: ReceiptDocument) -> bytes:
    return receipt_xml_bytes(build_receipt_xml(doc))


def _signed_bytes() -> bytes:
    doc = _document()
    root = build_receipt_xml(doc)
    signed = sign_enveloped_fast(
        root,
        signed_id=signed_id_for(doc),
        key=einvoice_golden.key(),
        signing_time=einvoice_golden.SIGNED_AT,
        tz=VIETNAM_TZ,
        copy=False,
    )
    validate_receipt_xml(signed)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _golden(name: str, produce: bytes) -> bytes:
    path = einvoice_golden.GOLDEN / name
    if einvoice_golden.UPDATE:
        path.write_bytes(produce)
    return path.read_bytes()


def test_the_breakdown_is_written_in_its_line_and_matches_the_golden_file() -> None:
    produced = _unsigned_bytes(_document())
    assert produced == _golden(UNSIGNED, produced)
    root = etree.fromstring(produced)
    items = root.findall("DLBLai/NDBLai/DSKhoan/Khoan")
    assert items[0].find("CTTinh") is None  # a line without one writes nothing new
    assert items[1].findtext("CTTinh") == BREAKDOWN
    assert [c.tag for c in items[1]][-1] == "CTTinh"


def test_signed_golden_is_what_issuing_makes_and_reads_back() -> None:
    produced = _signed_bytes()
    assert produced == _golden(SIGNED, produced)
    parsed = parse_receipt_xml(produced)
    assert [line.breakdown for line in parsed.lines] == [None, BREAKDOWN]
    assert parsed.total == 13_000


@pytest.mark.skipif(einvoice_golden.XMLSEC1 is None, reason="xmlsec1 not installed")
def test_xmlsec1_verifies_the_signed_breakdown_and_catches_a_change(tmp_path: Path) -> None:
    data = (einvoice_golden.GOLDEN / SIGNED).read_bytes()
    done = einvoice_golden.xmlsec1_verify(data, "DLBLai", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "SignedInfo References (ok/all): 2/2" in done.stderr
    tampered = data.replace("1 trang × 1.000 đ".encode(), "1 trang × 2.000 đ".encode(), 1)
    assert tampered != data
    assert einvoice_golden.xmlsec1_verify(tampered, "DLBLai", tmp_path).returncode != 0


def test_lines_without_a_breakdown_keep_the_existing_golden_bytes() -> None:
    name = "receipt-0.2-signed.xml"
    assert einvoice_golden.BUILDERS[name]() == (einvoice_golden.GOLDEN / name).read_bytes()


def test_mapping_0_1_is_frozen_and_ignores_the_breakdown() -> None:
    plain = replace(CERTIFIED_COPY, breakdown=None)
    with_it = _unsigned_bytes(_document("0.1"))
    assert with_it == _unsigned_bytes(_document("0.1", plain))
    assert b"CTTinh" not in with_it


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_breakdown_is_not_written(text: str) -> None:
    root = build_receipt_xml(_document(line=replace(CERTIFIED_COPY, breakdown=text)))
    assert root.find("DLBLai/NDBLai/DSKhoan/Khoan/CTTinh") is None


def test_the_schema_bounds_the_breakdown() -> None:
    root = build_receipt_xml(_document(line=replace(CERTIFIED_COPY, breakdown="x" * 2001)))
    with pytest.raises(ReceiptSchemaError, match="CTTinh"):
        validate_receipt_xml(root)
    validate_receipt_xml(
        build_receipt_xml(_document(line=replace(CERTIFIED_COPY, breakdown="x" * 2000)))
    )


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext is not installed")
def test_the_display_copy_prints_the_breakdown_under_the_line(tmp_path: Path) -> None:
    parsed = parse_receipt_xml(_unsigned_bytes(_document()))
    pdf = render_receipt_pdf(parsed, verify_url="https://bienlai.example.vn/r/K7PQ2M4XWZ3NB6RA")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    text = " ".join(
        subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert f"Cách tính (How computed): {BREAKDOWN}" in text
    assert text.count("Cách tính") == 1  # only the line that has one
