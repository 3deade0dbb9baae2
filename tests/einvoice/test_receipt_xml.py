"""The receipt XML in both mappings: build, golden files, schema rules, round trip, signed copies,
hostile input. Most tests run once per mapping (the ``mapping`` fixture); names that differ
between 0.1 and 0.2 are looked up in :data:`NAMES`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import einvoice_golden
import pytest
from infra.clock import local, today
from lxml import etree

from einvoice.document import FeeKind, Payer, ReceiptDocument, ReceiptLine, ReceiptReference
from einvoice.receipt_xml import (
    LATEST_MAPPING,
    MAPPINGS,
    MAX_XML_BYTES,
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

NAMES: dict[str, dict[str, str]] = {
    "0.1": {"payer": "NNop", "words": "TgTTTBChu", "name": "TCTu", "pban": "0.1"},
    "0.2": {"payer": "TTNNT", "words": "STBChu", "name": "Ten", "pban": "2.1.0"},
}
"""The elements whose names differ between the mappings (0.2 uses the confirmed names)."""


def golden(mapping: str) -> Path:
    return einvoice_golden.GOLDEN / f"receipt-{mapping}.xml"


def _pretty(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _schema_errors(root: etree._Element) -> str:
    with pytest.raises(ReceiptSchemaError) as info:
        validate_receipt_xml(root)
    return str(info.value)


# ----------------------------------------------------------------------------- build


def test_golden_file(unsigned_root: etree._Element, mapping: str) -> None:
    """The exact XML of the fixed receipt in each mapping. Regenerate with UPDATE_GOLDEN=1 after
    a deliberate change, and review the diff: this is the legal original's shape. The 0.1 file
    must never change: receipts signed in 0.1 are held by payers and tax offices."""
    produced = _pretty(unsigned_root)
    if os.environ.get("UPDATE_GOLDEN") == "1" and mapping != "0.1":
        golden(mapping).write_bytes(produced)
    assert produced.decode() == golden(mapping).read_text(encoding="utf-8")


def test_golden_file_is_a_valid_receipt(mapping: str) -> None:
    parsed = parse_receipt_xml(golden(mapping).read_bytes())
    assert parsed.number == 1234 and parsed.schema_version == mapping


def test_the_latest_mapping_is_the_default_and_both_are_known() -> None:
    assert set(MAPPINGS) == {"0.1", "0.2"} and LATEST_MAPPING == "0.2"
    assert ReceiptDocument.__dataclass_fields__["mapping_version"].default == LATEST_MAPPING


def test_confirmed_names_in_0_2_and_ours_in_0_1(
    unsigned_root: etree._Element, mapping: str
) -> None:
    """Issue 17's table: TCTu → Ten, NNop → TTNNT/{Ten, MST, DChi}, TgTTTBChu → STBChu, PBan."""
    names = NAMES[mapping]
    other = NAMES["0.1" if mapping == "0.2" else "0.2"]
    data = unsigned_root.find("DLBLai")
    assert data is not None
    assert data.findtext("TTChung/PBan") == names["pban"]
    assert data.findtext(f"TTChung/{names['name']}") == "Biên lai thu phí, lệ phí"
    assert data.findtext(f"NDBLai/{names['payer']}/Ten") == "Nguyễn Thị Ánh Tuyết"
    assert data.findtext(f"NDBLai/TToan/{names['words']}") == "Tám nghìn đồng"
    for path in (
        f"TTChung/{other['name']}",
        f"NDBLai/{other['payer']}",
        f"NDBLai/TToan/{other['words']}",
    ):
        assert data.find(path) is None, path


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
    # 00:30:05 local is 17:30:05 UTC the day before: the receipt's day is the local one.
    local_moment = local(today(), 0, 30, 5)
    doc = replace(receipt_document, issued_at=local_moment.astimezone(UTC))
    root = build_receipt_xml(doc)
    assert local_moment.astimezone(UTC).date() == today() - timedelta(days=1)
    assert root.findtext("DLBLai/TTChung/NLap") == today().isoformat()
    assert root.findtext("DLBLai/TTChung/GLap") == "00:30:05"


def test_naive_issue_time_is_refused(receipt_document: ReceiptDocument) -> None:
    doc = replace(receipt_document, issued_at=datetime.combine(today(), time(9, 0)))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_receipt_xml(doc)


def test_an_unknown_mapping_is_refused(receipt_document: ReceiptDocument) -> None:
    with pytest.raises(ValueError, match=r"no receipt mapping '0\.3'"):
        build_receipt_xml(replace(receipt_document, mapping_version="0.3"))


def test_amounts_in_words_and_fee_kinds(unsigned_root: etree._Element, mapping: str) -> None:
    items = unsigned_root.findall("DLBLai/NDBLai/DSKhoan/Khoan")
    assert [i.findtext("LKhoan") for i in items] == ["2", "1"]
    assert [i.findtext("ThTienBChu") for i in items] == ["Tám nghìn đồng", "Không đồng"]
    assert items[1].findtext("MGiam") == "Miễn phí cho hộ nghèo (Thông tư 226/2016/TT-BTC)"
    assert unsigned_root.findtext("DLBLai/NDBLai/TToan/TgTTTBSo") == "8000"
    words = NAMES[mapping]["words"]
    assert unsigned_root.findtext(f"DLBLai/NDBLai/TToan/{words}") == "Tám nghìn đồng"


def test_payer_contact_data_is_not_written(unsigned_root: etree._Element) -> None:
    xml = receipt_xml_bytes(unsigned_root).decode()
    assert "anh.tuyet@example.vn" not in xml
    assert "0912345678" not in xml


def test_optional_fields_are_omitted(receipt_document: ReceiptDocument, mapping: str) -> None:
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
    payer = NAMES[mapping]["payer"]
    for path in (
        "TTChung/MTCuu",
        "TTChung/DCTCuu",
        "TTChung/TTBLLQuan",
        f"NDBLai/{payer}/DChi",
        f"NDBLai/{payer}/SDDanh",
        f"NDBLai/{payer}/MST",
        "NDBLai/TTKhac/MHSo",
        "NDBLai/TTKhac/GChu",
        "NDBLai/DSKhoan/Khoan/DVTinh",
        "NDBLai/DSKhoan/Khoan/MGiam",
    ):
        assert root.find(f"DLBLai/{path}") is None, path


def test_text_is_whitespace_normalised(receipt_document: ReceiptDocument, mapping: str) -> None:
    doc = replace(receipt_document, payer=Payer(name="  Lê   Thị\n Hoa  ", address="   "))
    root = build_receipt_xml(doc)
    validate_receipt_xml(root)
    payer = NAMES[mapping]["payer"]
    assert root.findtext(f"DLBLai/NDBLai/{payer}/Ten") == "Lê Thị Hoa"
    assert root.find(f"DLBLai/NDBLai/{payer}/DChi") is None


@pytest.mark.parametrize(
    ("id_number", "tags"),
    [
        ("001190012345", ["Ten", "MST", "DChi"]),  # personal identification number = tax code
        ("0101234567", ["Ten", "MST", "DChi"]),  # an organisation's MST
        ("B1234567", ["Ten", "DChi", "SDDanh"]),  # a passport: not a tax code
        ("123456789", ["Ten", "DChi", "SDDanh"]),  # an old 9-digit ID card
    ],
)
def test_0_2_writes_the_payers_tax_code_in_mst_and_other_ids_in_sddanh(
    receipt_document: ReceiptDocument, id_number: str, tags: list[str]
) -> None:
    doc = replace(
        receipt_document,
        mapping_version="0.2",
        payer=replace(receipt_document.payer, id_number=id_number),
    )
    root = build_receipt_xml(doc)
    validate_receipt_xml(root)
    payer = root.find("DLBLai/NDBLai/TTNNT")
    assert payer is not None
    assert [child.tag for child in payer] == tags
    assert payer.findtext("MST" if "MST" in tags else "SDDanh") == id_number
    assert parse_receipt_xml(receipt_xml_bytes(root)).payer_id_number == id_number


def test_0_2_refuses_a_payer_mst_that_is_no_tax_code(receipt_document: ReceiptDocument) -> None:
    root = build_receipt_xml(replace(receipt_document, mapping_version="0.2"))
    validate_receipt_xml(root)
    root.find("DLBLai/NDBLai/TTNNT/MST").text = "B1234567"
    assert "MST" in _schema_errors(root)


def test_replacement_receipt_references_the_original(receipt_document: ReceiptDocument) -> None:
    doc = replace(receipt_document, replaces="1a2b3c4d5e6f")
    root = build_receipt_xml(doc)
    validate_receipt_xml(root)
    assert root.findtext("DLBLai/TTChung/TTBLLQuan/TCBLai") == "1"
    assert parse_receipt_xml(receipt_xml_bytes(root)).replaces == "1a2b3c4d5e6f"


def test_a_0_2_replacement_names_a_0_1_original_by_what_it_printed(
    receipt_document: ReceiptDocument,
) -> None:
    original = parse_receipt_xml(einvoice_golden.golden_bytes("receipt-0.1-signed.xml"))
    reference = ReceiptReference(
        original.template, original.series, original.number, original.issued_on
    )
    doc = replace(
        receipt_document,
        mapping_version="0.2",
        receipt_id="9a8b7c6d5e4f30211203f4e5d6c7b8a9",
        number=original.number + 1,
        replaces=original.receipt_id,
        replaces_reference=reference,
    )
    parsed = parse_receipt_xml(receipt_xml_bytes(build_receipt_xml(doc)))
    assert (parsed.schema_version, original.schema_version) == ("0.2", "0.1")
    assert parsed.replaces == original.receipt_id and parsed.replaces_reference == reference


@pytest.mark.parametrize("pban", ["2.1.0", "2.1.1"])
def test_0_2_writes_either_official_version(receipt_document: ReceiptDocument, pban: str) -> None:
    doc = replace(receipt_document, mapping_version="0.2", document_version=pban)
    parsed = parse_receipt_xml(receipt_xml_bytes(build_receipt_xml(doc)))
    assert (parsed.schema_version, parsed.document_version) == ("0.2", pban)


@pytest.mark.parametrize("pban", ["2.1.2", "0.2", "", "1.0.0"])
def test_an_unknown_version_is_refused_with_the_schema_messages(
    unsigned_root: etree._Element, pban: str
) -> None:
    unsigned_root.find("DLBLai/TTChung/PBan").text = pban
    assert "PBan" in _schema_errors(unsigned_root)
    with pytest.raises(ReceiptSchemaError, match="not a receipt version we know"):
        receipt_from_element(unsigned_root)


def test_a_0_1_document_is_not_valid_as_0_2(unsigned_root: etree._Element, mapping: str) -> None:
    """The version decides the schema: 0.1 names under an official PBan (or the reverse) fail."""
    unsigned_root.find("DLBLai/TTChung/PBan").text = "2.1.0" if mapping == "0.1" else "0.1"
    errors = _schema_errors(unsigned_root)
    assert NAMES[mapping]["name"] in errors


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


def test_parse_round_trip(
    receipt_document: ReceiptDocument, unsigned_root: etree._Element, mapping: str
) -> None:
    parsed = parse_receipt_xml(receipt_xml_bytes(unsigned_root))
    assert parsed.schema_version == mapping
    assert parsed.document_version == NAMES[mapping]["pban"]
    assert parsed.receipt_id == receipt_document.receipt_id
    assert (parsed.template, parsed.series, parsed.number) == ("EBL01", "26TAB", 1234)
    assert parsed.issued_on == einvoice_golden.DAY
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


def test_both_mappings_state_the_same_receipt() -> None:
    """What a verifier, the PDF and a replacement read is the same whatever the mapping."""
    old, new = (
        parse_receipt_xml(einvoice_golden.golden_bytes(f"receipt-{v}-signed.xml"))
        for v in ("0.1", "0.2")
    )
    assert replace(old, schema_version="0.2", document_version="2.1.0") == new


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


@pytest.mark.parametrize("name", ["receipt-0.1-signed.xml", "receipt-0.2-signed.xml"])
def test_signed_golden_files_are_what_issuing_makes(name: str) -> None:
    """Byte for byte: a change in either mapping or in signing shows here (UPDATE_GOLDEN=1 to
    regenerate 0.2 after a deliberate change; 0.1 must never need it)."""
    assert einvoice_golden.BUILDERS[name]() == einvoice_golden.golden_bytes(name)


@pytest.mark.skipif(einvoice_golden.XMLSEC1 is None, reason="xmlsec1 not installed")
@pytest.mark.parametrize("mapping_", ["0.1", "0.2"])
def test_xmlsec1_verifies_the_signed_golden_receipts(mapping_: str, tmp_path: Path) -> None:
    data = einvoice_golden.golden_bytes(f"receipt-{mapping_}-signed.xml")
    done = einvoice_golden.xmlsec1_verify(data, "DLBLai", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "SignedInfo References (ok/all): 2/2" in done.stderr
    words = NAMES[mapping_]["words"].encode()
    tag = b"<" + words + b">"
    tampered = data.replace(tag + "Tám".encode(), tag + "Chín".encode(), 1)
    assert tampered != data
    assert einvoice_golden.xmlsec1_verify(tampered, "DLBLai", tmp_path).returncode != 0


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
