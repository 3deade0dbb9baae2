"""The receipt XML: build, golden file, schema rules, round trip, signed copies, hostile input."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from einvoice.document import FeeKind, Payer, ReceiptDocument, ReceiptLine
from einvoice.receipt_xml import (
    MAX_XML_BYTES,
    SCHEMA_VERSION,
    SIGNATURE_PLACEHOLDER_ID,
    XMLDSIG_NS,
    ParsedLine,
    ReceiptSchemaError,
    UnsafeXmlError,
    build_receipt_xml,
    load_receipt_xml,
    parse_receipt_xml,
    receipt_from_element,
    receipt_xml_bytes,
    signed_id_for,
    validate_receipt_xml,
)

GOLDEN = Path(__file__).parent / "golden" / f"receipt-{SCHEMA_VERSION}.xml"


def _pretty(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _schema_errors(root: etree._Element) -> str:
    with pytest.raises(ReceiptSchemaError) as info:
        validate_receipt_xml(root)
    return str(info.value)


# ----------------------------------------------------------------------------- build


def test_golden_file(unsigned_root: etree._Element) -> None:
    """The exact XML of the fixed receipt. Regenerate with UPDATE_GOLDEN=1 after a deliberate
    change, and review the diff: this is the legal original's shape."""
    produced = _pretty(unsigned_root)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(produced)
    assert produced.decode() == GOLDEN.read_text(encoding="utf-8")


def test_golden_file_is_a_valid_receipt() -> None:
    parsed = parse_receipt_xml(GOLDEN.read_bytes())
    assert parsed.number == 1234


def test_built_receipt_validates(unsigned_root: etree._Element) -> None:
    validate_receipt_xml(unsigned_root)


def test_signed_id_and_placeholder(
    receipt_document: ReceiptDocument, unsigned_root: etree._Element
) -> None:
    assert signed_id_for(receipt_document) == "data-0f8e2b7c9d4a4e1b8c3d2a1f0e9b8c7d"
    assert unsigned_root.find("DLBLai").get("Id") == signed_id_for(receipt_document)
    slot = unsigned_root.find("DSCKS/NBan")
    assert slot is not None and len(slot) == 1
    assert slot[0].tag == f"{{{XMLDSIG_NS}}}Signature"
    assert slot[0].get("Id") == SIGNATURE_PLACEHOLDER_ID


def test_local_date_and_time_of_the_collector(receipt_document: ReceiptDocument) -> None:
    # 17:30:05 UTC on the 20th is 00:30:05 on the 21st in Hanoi: the receipt's day is the 21st.
    doc = replace(receipt_document, issued_at=datetime(2026, 11, 20, 17, 30, 5, tzinfo=UTC))
    root = build_receipt_xml(doc)
    assert root.findtext("DLBLai/TTChung/NLap") == "2026-11-21"
    assert root.findtext("DLBLai/TTChung/GLap") == "00:30:05"


def test_naive_issue_time_is_refused(receipt_document: ReceiptDocument) -> None:
    doc = replace(receipt_document, issued_at=datetime(2026, 11, 20, 9, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_receipt_xml(doc)


def test_amounts_in_words_and_fee_kinds(unsigned_root: etree._Element) -> None:
    items = unsigned_root.findall("DLBLai/NDBLai/DSKhoan/Khoan")
    assert [i.findtext("LKhoan") for i in items] == ["2", "1"]
    assert [i.findtext("ThTienBChu") for i in items] == ["Tám nghìn đồng", "Không đồng"]
    assert items[1].findtext("MGiam") == "Miễn phí cho hộ nghèo (Thông tư 226/2016/TT-BTC)"
    assert unsigned_root.findtext("DLBLai/NDBLai/TToan/TgTTTBSo") == "8000"
    assert unsigned_root.findtext("DLBLai/NDBLai/TToan/TgTTTBChu") == "Tám nghìn đồng"


def test_payer_contact_data_is_not_written(unsigned_root: etree._Element) -> None:
    xml = receipt_xml_bytes(unsigned_root).decode()
    assert "anh.tuyet@example.vn" not in xml
    assert "0912345678" not in xml


def test_optional_fields_are_omitted(receipt_document: ReceiptDocument) -> None:
    doc = replace(
        receipt_document,
        payer=Payer(name="Trần Văn Bình"),
        procedure_code=None,
        procedure_name=None,
        dossier_code=None,
        verify_code=None,
        verify_url=None,
        notes=(),
        lines=(replace(receipt_document.lines[0], unit=None),),
    )
    root = build_receipt_xml(doc)
    validate_receipt_xml(root)
    for path in (
        "TTChung/MTCuu",
        "TTChung/DCTCuu",
        "TTChung/TTBLLQuan",
        "NDBLai/NNop/DChi",
        "NDBLai/NNop/SDDanh",
        "NDBLai/TTKhac/MHSo",
        "NDBLai/TTKhac/GChu",
        "NDBLai/DSKhoan/Khoan/DVTinh",
        "NDBLai/DSKhoan/Khoan/MGiam",
    ):
        assert root.find(f"DLBLai/{path}") is None, path


def test_text_is_whitespace_normalised(receipt_document: ReceiptDocument) -> None:
    doc = replace(receipt_document, payer=Payer(name="  Lê   Thị\n Hoa  ", address="   "))
    root = build_receipt_xml(doc)
    validate_receipt_xml(root)
    assert root.findtext("DLBLai/NDBLai/NNop/Ten") == "Lê Thị Hoa"
    assert root.find("DLBLai/NDBLai/NNop/DChi") is None


def test_replacement_receipt_references_the_original(receipt_document: ReceiptDocument) -> None:
    doc = replace(receipt_document, replaces="1a2b3c4d5e6f")
    root = build_receipt_xml(doc)
    validate_receipt_xml(root)
    assert root.findtext("DLBLai/TTChung/TTBLLQuan/TCBLai") == "1"
    assert parse_receipt_xml(receipt_xml_bytes(root)).replaces == "1a2b3c4d5e6f"


# ----------------------------------------------------------------------------- schema rules


@pytest.mark.parametrize("series", ["26TAI", "26TA", "26TABC", "2TAB", "26XAB", "26tab", "26TAF"])
def test_schema_rejects_bad_series(receipt_document: ReceiptDocument, series: str) -> None:
    root = build_receipt_xml(replace(receipt_document, series=series))
    assert "KHCTu" in _schema_errors(root)


@pytest.mark.parametrize("series", ["26TAB", "27TYY", "00TCD"])
def test_schema_accepts_good_series(receipt_document: ReceiptDocument, series: str) -> None:
    validate_receipt_xml(build_receipt_xml(replace(receipt_document, series=series)))


@pytest.mark.parametrize("number", [0, -1, 100_000_000, 123_456_789])
def test_schema_rejects_number_out_of_range(receipt_document: ReceiptDocument, number: int) -> None:
    root = build_receipt_xml(replace(receipt_document, number=number))
    assert "SCTu" in _schema_errors(root)


@pytest.mark.parametrize("number", [1, 99_999_999])
def test_schema_accepts_number_bounds(receipt_document: ReceiptDocument, number: int) -> None:
    validate_receipt_xml(build_receipt_xml(replace(receipt_document, number=number)))


def test_schema_rejects_padded_number(unsigned_root: etree._Element) -> None:
    unsigned_root.find("DLBLai/TTChung/SCTu").text = "00001234"
    assert "SCTu" in _schema_errors(unsigned_root)


@pytest.mark.parametrize("path", ["ThTien", "DGia"])
def test_schema_rejects_negative_amount(unsigned_root: etree._Element, path: str) -> None:
    item = unsigned_root.find("DLBLai/NDBLai/DSKhoan/Khoan")
    item.find(path).text = "-8000"
    assert path in _schema_errors(unsigned_root)


@pytest.mark.parametrize("text", ["8000.5", "+8000", "08000", "8e3", ""])
def test_schema_rejects_non_canonical_amount(unsigned_root: etree._Element, text: str) -> None:
    unsigned_root.find("DLBLai/NDBLai/TToan/TgTTTBSo").text = text
    assert "TgTTTBSo" in _schema_errors(unsigned_root)


def test_negative_amount_cannot_even_be_built(receipt_document: ReceiptDocument) -> None:
    """The wording refuses it first; the schema is the second line of defence."""
    line = ReceiptLine("X", "Khoản âm", FeeKind.PHI, quantity=1, unit_price=1000, amount=-1000)
    with pytest.raises(ValueError, match="negative"):
        build_receipt_xml(replace(receipt_document, lines=(line,)))


@pytest.mark.parametrize("template", ["EBL03", "01BLP0-001", "ebl01", ""])
def test_schema_rejects_bad_template(receipt_document: ReceiptDocument, template: str) -> None:
    root = build_receipt_xml(replace(receipt_document, template=template))
    assert "KHMCTu" in _schema_errors(root)


@pytest.mark.parametrize("tax_code", ["010123456", "01012345678", "0101234567-01", "010123456A"])
def test_schema_rejects_bad_tax_code(receipt_document: ReceiptDocument, tax_code: str) -> None:
    collector = replace(receipt_document.collector, tax_code=tax_code)
    root = build_receipt_xml(replace(receipt_document, collector=collector))
    assert "MST" in _schema_errors(root)


def test_schema_accepts_ten_digit_tax_code(receipt_document: ReceiptDocument) -> None:
    collector = replace(receipt_document.collector, tax_code="0101234567")
    validate_receipt_xml(build_receipt_xml(replace(receipt_document, collector=collector)))


def test_schema_fixes_currency_to_vnd(unsigned_root: etree._Element) -> None:
    unsigned_root.find("DLBLai/TTChung/DVTTe").text = "USD"
    assert "DVTTe" in _schema_errors(unsigned_root)


def test_schema_requires_at_least_one_item(receipt_document: ReceiptDocument) -> None:
    root = build_receipt_xml(replace(receipt_document, lines=()))
    assert "DSKhoan" in _schema_errors(root)


def test_total_must_be_the_sum_of_items(unsigned_root: etree._Element) -> None:
    unsigned_root.find("DLBLai/NDBLai/TToan/TgTTTBSo").text = "9000"
    assert "not the sum" in _schema_errors(unsigned_root)


def test_signature_slot_must_hold_a_signature(unsigned_root: etree._Element) -> None:
    slot = unsigned_root.find("DSCKS/NBan")
    slot.remove(slot[0])
    _schema_errors(unsigned_root)
    etree.SubElement(slot, f"{{{XMLDSIG_NS}}}KeyInfo")
    assert "ds:Signature" in _schema_errors(unsigned_root)


def test_schema_rejects_unknown_elements(unsigned_root: etree._Element) -> None:
    etree.SubElement(unsigned_root.find("DLBLai/TTChung"), "Extra").text = "x"
    assert "Extra" in _schema_errors(unsigned_root)


def test_schema_errors_carry_every_message(receipt_document: ReceiptDocument) -> None:
    root = build_receipt_xml(replace(receipt_document, series="bad", number=0))
    with pytest.raises(ReceiptSchemaError) as info:
        validate_receipt_xml(root)
    assert len(info.value.errors) >= 2
    assert all(e.startswith("line ") for e in info.value.errors)


def test_validation_is_safe_across_threads(
    receipt_document: ReceiptDocument, unsigned_root: etree._Element
) -> None:
    """One compiled schema is shared; each caller must still get its own verdict and messages."""
    bad = build_receipt_xml(replace(receipt_document, number=0))
    outcomes: list[bool] = []
    lock = threading.Lock()

    def work(root: etree._Element, expect_valid: bool) -> None:
        for _ in range(200):
            try:
                validate_receipt_xml(root)
                ok = expect_valid
            except ReceiptSchemaError as exc:
                ok = not expect_valid and "SCTu" in str(exc)
            with lock:
                outcomes.append(ok)

    threads = [
        threading.Thread(target=work, args=(etree.fromstring(receipt_xml_bytes(r)), v))
        for r, v in [(unsigned_root, True), (bad, False)] * 3
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 1200 and all(outcomes)


# ----------------------------------------------------------------------------- round trip


def test_parse_round_trip(receipt_document: ReceiptDocument, unsigned_root: etree._Element) -> None:
    parsed = parse_receipt_xml(receipt_xml_bytes(unsigned_root))
    assert parsed.schema_version == SCHEMA_VERSION
    assert parsed.receipt_id == receipt_document.receipt_id
    assert (parsed.template, parsed.series, parsed.number) == ("EBL01", "26TAB", 1234)
    assert parsed.issued_on == date(2026, 11, 20)
    assert parsed.issued_time == time(9, 15, 30)
    assert parsed.tax_code == "0101234567-001"
    assert parsed.collector_name == "Ủy ban nhân dân phường Hàng Bạc"
    assert parsed.payer_name == "Nguyễn Thị Ánh Tuyết"
    assert parsed.total == receipt_document.total == 8000
    assert parsed.total_in_words == "Tám nghìn đồng"
    assert parsed.payment_method == "Chuyển khoản"
    assert parsed.payment_reference == "MC7Q2K9X"
    assert parsed.verify_code == "K7PQ2M4XWZ3NB6RA"
    assert parsed.procedure_code == "1.001193"
    assert parsed.dossier_code == "000.00.12.H26-261120-0007"
    assert parsed.replaces is None
    assert parsed.payer_id_number == "001190012345"
    assert parsed.payer_address == receipt_document.payer.address
    assert parsed.notes == ("Nộp tại Bộ phận Một cửa",)
    assert parsed.collector_address == receipt_document.collector.address
    assert parsed.procedure_name == "Thủ tục đăng ký khai sinh"
    assert parsed.verify_url == receipt_document.verify_url
    assert parsed.lines == tuple(
        ParsedLine(
            fee_code=line.fee_code,
            name=line.name,
            kind=line.kind,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
            amount_in_words=words,
            unit=line.unit,
            exemption=line.exemption,
        )
        for line, words in zip(
            receipt_document.lines, ["Tám nghìn đồng", "Không đồng"], strict=True
        )
    )


def test_receipt_from_the_signed_element_alone(unsigned_root: etree._Element) -> None:
    whole = receipt_from_element(unsigned_root)
    assert receipt_from_element(unsigned_root.find("DLBLai")) == whole


def test_parse_rejects_an_invalid_document(unsigned_root: etree._Element) -> None:
    unsigned_root.find("DLBLai/TTChung/KHCTu").text = "26TAI"
    with pytest.raises(ReceiptSchemaError, match="KHCTu"):
        parse_receipt_xml(receipt_xml_bytes(unsigned_root))


# ----------------------------------------------------------------------------- signed


def test_signed_receipt_validates_and_verifies(
    receipt_document: ReceiptDocument,
    unsigned_root: etree._Element,
    sign_receipt: Callable[[etree._Element, str], etree._Element],
    signing_material: Any,
) -> None:
    from signxml import SignatureConfiguration, XMLVerifier

    signed = sign_receipt(unsigned_root, signed_id_for(receipt_document))
    validate_receipt_xml(signed)
    signature = signed.find(f"DSCKS/NBan/{{{XMLDSIG_NS}}}Signature")
    assert signature is not None and signature.get("Id") is None  # the placeholder was filled

    data = receipt_xml_bytes(signed)
    parsed = parse_receipt_xml(data)
    assert parsed.number == 1234

    result = XMLVerifier().verify(
        load_receipt_xml(data),
        x509_cert=signing_material.cert_pem,
        expect_config=SignatureConfiguration(require_x509=True),
    )
    assert receipt_from_element(result.signed_xml) == parsed


# ----------------------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE BLai [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<BLai>&lol9;</BLai>
"""


def _xxe(path: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE BLai [<!ENTITY x SYSTEM "file://{path}">]>\n'
        "<BLai><DLBLai>&x;</DLBLai></BLai>\n"
    ).encode()


@pytest.mark.parametrize(
    "payload",
    [
        BILLION_LAUGHS,
        _xxe("/etc/passwd"),
        b'<?xml version="1.0"?><!DOCTYPE BLai SYSTEM "http://198.51.100.1/bl.dtd"><BLai/>',
        b"<!DOCTYPE BLai><BLai/>",
    ],
    ids=["billion-laughs", "xxe-file", "external-dtd", "bare-doctype"],
)
def test_hostile_input_is_refused(payload: bytes) -> None:
    with pytest.raises(UnsafeXmlError, match="DOCTYPE"):
        parse_receipt_xml(payload)


def test_doctype_in_another_encoding_is_refused_after_parsing(tmp_path: object) -> None:
    """UTF-16 hides the DOCTYPE from the byte scan; the parsed tree is checked again."""
    secret = os.path.join(str(tmp_path), "secret.txt")
    with open(secret, "w", encoding="utf-8") as fh:
        fh.write("TOP-SECRET")
    payload = _xxe(secret).decode().replace('version="1.0"?>', 'version="1.0" encoding="UTF-16"?>')
    data = payload.encode("utf-16")
    assert b"<!DOCTYPE" not in data
    with pytest.raises(UnsafeXmlError, match="DOCTYPE") as info:
        load_receipt_xml(data)
    assert "TOP-SECRET" not in str(info.value)


def test_oversized_input_is_refused() -> None:
    data = b"<BLai>" + b" " * MAX_XML_BYTES + b"</BLai>"
    with pytest.raises(UnsafeXmlError, match="larger than"):
        load_receipt_xml(data)


@pytest.mark.parametrize("payload", [b"", b"<BLai>", b"not xml", b"<BLai></blai>"])
def test_malformed_input_is_refused(payload: bytes) -> None:
    with pytest.raises(UnsafeXmlError, match="not well-formed"):
        load_receipt_xml(payload)


def test_text_input_is_refused(unsigned_root: etree._Element) -> None:
    with pytest.raises(UnsafeXmlError, match="bytes"):
        load_receipt_xml(receipt_xml_bytes(unsigned_root).decode())  # type: ignore[arg-type]


def test_errors_are_value_errors() -> None:
    assert issubclass(UnsafeXmlError, ValueError)
    assert issubclass(ReceiptSchemaError, ValueError)
