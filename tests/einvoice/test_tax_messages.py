"""01/TH-BLĐT, 01/ĐKTĐ-CTĐT and the TDiep envelope: build, validate, sign, verify, read back.

Messages built now are in mapping 0.2 (confirmed codes, ``PBan`` 2.1.0 or 2.1.1); those of
mapping 0.1 are still read, sent and judged. Most tests check structure and values element by
element on freshly signed messages, for days taken from the suite's clock; the golden files
(test_golden_messages.py) pin the exact bytes of each document in both mappings.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from infra.clock import today
from lxml import etree

from einvoice.document import ReceiptReference
from einvoice.official import REGISTRATION_FLAGS, FormatChoices
from einvoice.tax_authority.errors import MessageInvalid, UnsafeMessage
from einvoice.tax_authority.formats import LEGACY, confirmed
from einvoice.tax_authority.messages import (
    MAPPING_VERSION,
    SUMMARY_SCHEMA_PATH,
    CertificateAction,
    MessageFormat,
    MessageType,
    Reason,
    ReasonCode,
    RegisteredCertificate,
    RowStatus,
    SummaryRow,
    answers_bytes,
    build_daily_summary,
    build_registration,
    build_registration_xml,
    build_result,
    build_summary_xml,
    build_technical_ack,
    current_format,
    load_xml,
    message_bytes,
    new_message_id,
    parse_answers,
    read_message,
    summary_facts,
    validate_document,
    validate_registration_xml,
    validate_summary_xml,
    wrap_document,
)
from settings.config import get_settings
from signing.certs import create_dev_ca, create_dev_org_certificate, write_pem, write_pkcs12
from signing.errors import CertificateRejected
from signing.keys import KeySource, Pkcs12KeySource
from signing.xmldsig import DS_NS, VIETNAM_TZ, verify_enveloped

TAX_CODE = "0101234567-001"
COLLECTOR = "Ủy ban nhân dân phường Hàng Bạc"
SENDER = "V0101234567"
DAY = today()
"""The suite's today (moved with ``--clock``, which conftest does before collection)."""
EVE = DAY - timedelta(days=1)
XMLSEC1 = shutil.which("xmlsec1")


@dataclass(frozen=True)
class Pki:
    ca_pem: Path
    key: KeySource
    other_key: KeySource
    """A certificate of the same CA for another tax code."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("tax-pki")
    ca_key, ca_cert = create_dev_ca("Dev CA motcua-pay")
    org_key, org_cert = create_dev_org_certificate(ca_key, ca_cert, COLLECTOR, TAX_CODE)
    other_key, other_cert = create_dev_org_certificate(ca_key, ca_cert, "UBND xã", "0109999999")
    write_pkcs12(folder / "org.p12", org_key, org_cert, [ca_cert])
    write_pkcs12(folder / "other.p12", other_key, other_cert, [ca_cert])
    write_pem(folder / "ca.pem", certificates=[ca_cert])
    return Pki(
        ca_pem=folder / "ca.pem",
        key=Pkcs12KeySource.load(folder / "org.p12", None),
        other_key=Pkcs12KeySource.load(folder / "other.p12", None),
    )


def _rows() -> list[SummaryRow]:
    return [
        SummaryRow("EBL01", "26TAB", 1234, DAY, "Lệ phí đăng ký khai sinh", 8_000),
        SummaryRow(
            "EBL01",
            "26TAB",
            1235,
            DAY,
            "Phí chứng thực bản sao; Lệ phí hộ tịch",
            10_000,
            status=RowStatus.REPLACING,
            related=ReceiptReference("EBL01", "26TAB", 1200, EVE),
            explanation="Sai số tiền trên biên lai gốc",
        ),
        SummaryRow(
            "EBL01",
            "26TAB",
            1200,
            EVE,
            "Phí chứng thực bản sao",
            6_000,
            status=RowStatus.REPLACED,
            adjusted_period=EVE,
            related=ReceiptReference("EBL01", "26TAB", 1235, DAY),
            notes="Bị thay thế bởi biên lai 1235",
        ),
    ]


def _summary(
    pki: Pki,
    *,
    first: bool = True,
    supplement_no: int | None = None,
    fmt: MessageFormat | None = None,
) -> bytes:
    return build_daily_summary(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        day=DAY,
        first=first,
        supplement_no=supplement_no,
        rows=_rows(),
        key=pki.key,
        now=datetime.now(UTC),
        allow_development_certificate=True,
        fmt=fmt,
    )


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change ``MOTCUA_*`` settings for one test; the cached settings are dropped around it."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_summary_envelope_and_document_structure(pki: Pki) -> None:
    data = _summary(pki)
    message = read_message(data)
    header = message.header
    assert MAPPING_VERSION == "0.2" and header.version == "2.1.0"
    assert (header.sender_code, header.receiver_code) == (SENDER, "TCT")
    assert header.known_type is MessageType.DAILY_SUMMARY
    assert header.message_type == "400"  # configured: unconfirmed, 400 by analogy
    assert header.message_id.startswith(SENDER)
    suffix = header.message_id.removeprefix(SENDER)
    assert len(suffix) == 32
    assert suffix == suffix.upper()
    int(suffix, 16)
    assert header.referenced_id is None
    assert header.tax_code == TAX_CODE
    assert header.count == 1

    root = message.root
    assert [child.tag for child in root] == ["TTChung", "DLieu"]
    envelope_general = root.find("TTChung")
    assert envelope_general is not None
    assert [child.tag for child in envelope_general] == [
        "PBan",
        "MNGui",
        "MNNhan",
        "MLTDiep",
        "MTDiep",
        "MTDTChieu",
        "MST",
        "SLuong",
    ]
    (document,) = message.documents
    assert document.tag == "BTHDLieu"
    data_element = document.find("DLBTHop")
    assert data_element is not None
    assert data_element.get("Id") == f"BTH-{suffix}"
    general = data_element.find("TTChung")
    assert general is not None
    assert [child.tag for child in general] == [
        "PBan",
        "MSo",
        "Ten",
        "LKDLieu",
        "KDLieu",
        "LDau",
        "NLap",
        "TNNT",
        "MST",
    ]
    assert general.findtext("PBan") == "2.1.0"
    assert general.findtext("MSo") == "01/TH-BLĐT"
    assert general.findtext("KDLieu") == DAY.isoformat()
    assert general.findtext("LDau") == "1"
    assert general.find("BSLThu") is None
    assert general.findtext("TNNT") == COLLECTOR

    rows = data_element.findall("NDBTHDLieu/DSDLieu/DLieu")
    assert [row.findtext("STT") for row in rows] == ["1", "2", "3"]
    first, replacing, replaced = rows
    assert [child.tag for child in first] == [
        "STT",
        "KHMCTu",
        "KHCTu",
        "SCTu",
        "NLap",
        "TKhoan",
        "TgTTTBSo",
        "TGia",
        "TThai",
    ]
    assert first.findtext("SCTu") == "1234"
    assert first.findtext("TGia") == "1"
    assert first.findtext("TThai") == "1"
    assert replacing.findtext("TThai") == "3"
    assert replacing.findtext("SCTuCLQuan") == "1200"
    assert replacing.findtext("NLCTuCLQuan") == EVE.isoformat()
    assert replacing.findtext("GThich") == "Sai số tiền trên biên lai gốc"
    assert replaced.findtext("TThai") == "2"
    assert replaced.findtext("KDLDChinh") == EVE.isoformat()
    assert replaced.findtext("GChu") == "Bị thay thế bởi biên lai 1235"

    signature = document.find(f"DSCKS/NNT/{{{DS_NS}}}Signature")
    assert signature is not None
    validate_summary_xml(document, signed=True)

    facts = summary_facts(document)
    assert (facts.day, facts.first, facts.supplement_no) == (DAY, True, None)
    assert (facts.row_count, facts.total_amount) == (3, 24_000)


def test_summary_signature_verifies_and_covers_the_data(pki: Pki) -> None:
    message = read_message(_summary(pki))
    document = message_bytes(message.documents[0])
    status = verify_enveloped(document)
    assert status.valid, status.problems
    assert status.signed_element is not None
    assert status.signed_element.tag == "DLBTHop"
    assert status.tax_code == TAX_CODE
    # Inside the envelope the canonical form is the same: the whole message verifies too.
    assert verify_enveloped(message_bytes(message.root)).valid


def test_tampered_summary_fails_verification(pki: Pki) -> None:
    data = _summary(pki)
    tampered = data.replace(b"<TgTTTBSo>8000</TgTTTBSo>", b"<TgTTTBSo>800</TgTTTBSo>")
    assert tampered != data
    status = verify_enveloped(tampered)
    assert not status.valid
    assert any("changed" in problem for problem in status.problems)


def _at_the_suites_now() -> list[str]:
    """xmlsec1 runs on the machine's clock; the PKI was made on the suite's (maybe moved) one."""
    return ["--verification-gmt-time", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")]


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 binary not installed")
def test_xmlsec1_verifies_the_signed_summary(pki: Pki, tmp_path: Path) -> None:
    assert XMLSEC1 is not None
    message = read_message(_summary(pki))
    document = tmp_path / "summary.xml"
    document.write_bytes(message_bytes(message.documents[0]))
    whole = tmp_path / "message.xml"
    whole.write_bytes(message_bytes(message.root))
    for path in (document, whole):
        result = subprocess.run(
            [
                XMLSEC1,
                "--verify",
                *_at_the_suites_now(),
                "--id-attr:Id",
                "DLBTHop",
                "--trusted-pem",
                str(pki.ca_pem),
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "SignedInfo References (ok/all): 2/2" in result.stderr
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(document.read_bytes().replace(b">8000<", b">800<"))
    result = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            *_at_the_suites_now(),
            "--id-attr:Id",
            "DLBTHop",
            "--trusted-pem",
            str(pki.ca_pem),
            str(tampered),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_supplement_carries_ldau_0_and_bslthu(pki: Pki) -> None:
    message = read_message(_summary(pki, first=False, supplement_no=2))
    general = message.documents[0].find("DLBTHop/TTChung")
    assert general is not None
    assert general.findtext("LDau") == "0"
    assert general.findtext("BSLThu") == "2"
    facts = summary_facts(message.documents[0])
    assert (facts.first, facts.supplement_no) == (False, 2)


@pytest.mark.parametrize(("first", "supplement_no"), [(True, 1), (False, None)])
def test_ldau_and_bslthu_must_agree(pki: Pki, first: bool, supplement_no: int | None) -> None:
    with pytest.raises(MessageInvalid) as caught:
        _summary(pki, first=first, supplement_no=supplement_no)
    assert caught.value.code == "tax_message_invalid"


def test_rows_must_fit_their_status(pki: Pki) -> None:
    bad = SummaryRow("EBL01", "26TAB", 7, DAY, "Lệ phí", 1_000, status=RowStatus.REPLACING)
    with pytest.raises(MessageInvalid, match="needs the related receipt"):
        build_summary_xml(
            signed_id="BTH-1",
            collector_name=COLLECTOR,
            tax_code=TAX_CODE,
            day=DAY,
            first=True,
            supplement_no=None,
            rows=[bad],
            made_on=DAY,
        )


def test_schema_refuses_bad_values(pki: Pki) -> None:
    row = SummaryRow("EBL03", "26TAB", 7, DAY, "Lệ phí", -5, exchange_rate=Decimal("1.5"))
    root = build_summary_xml(
        signed_id="BTH-1",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        day=DAY,
        first=True,
        supplement_no=None,
        rows=[row],
        made_on=DAY,
    )
    with pytest.raises(MessageInvalid) as caught:
        validate_summary_xml(root)
    joined = " ".join(caught.value.errors)
    assert "KHMCTu" in joined
    assert "TgTTTBSo" in joined
    assert SUMMARY_SCHEMA_PATH.exists()


def test_certificate_of_another_tax_code_is_refused_before_signing(pki: Pki) -> None:
    with pytest.raises(CertificateRejected) as caught:
        build_daily_summary(
            sender_code=SENDER,
            receiver_code="TCT",
            collector_name=COLLECTOR,
            tax_code=TAX_CODE,
            day=DAY,
            first=True,
            supplement_no=None,
            rows=_rows(),
            key=pki.other_key,
            now=datetime.now(UTC),
            allow_development_certificate=True,
        )
    assert caught.value.code == "certificate_mst_mismatch"


def test_development_certificate_needs_explicit_permission(pki: Pki) -> None:
    with pytest.raises(CertificateRejected) as caught:
        build_daily_summary(
            sender_code=SENDER,
            receiver_code="TCT",
            collector_name=COLLECTOR,
            tax_code=TAX_CODE,
            day=DAY,
            first=True,
            supplement_no=None,
            rows=_rows(),
            key=pki.key,
            now=datetime.now(UTC),
        )
    assert caught.value.code == "certificate_development"


def test_empty_day_can_be_declared(pki: Pki) -> None:
    data = build_daily_summary(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        day=DAY,
        first=True,
        supplement_no=None,
        rows=[],
        key=pki.key,
        now=datetime.now(UTC),
        allow_development_certificate=True,
    )
    facts = summary_facts(read_message(data).documents[0])
    assert (facts.row_count, facts.total_amount) == (0, 0)


@pytest.mark.parametrize(
    ("templates", "raised"),
    [
        (["EBL01"], {"BLTPLPKIn"}),
        (["EBL02"], {"BLTPLPIn"}),
        (["EBL01", "EBL02"], {"BLTPLPKIn", "BLTPLPIn"}),
    ],
)
def test_registration_states_kinds_route_and_certificates(
    pki: Pki, templates: list[str], raised: set[str]
) -> None:
    now = datetime.now(UTC)
    data = build_registration(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        tax_authority_name="Chi cục Thuế khu vực I",
        templates=templates,
        certificates=[RegisteredCertificate.from_certificate(pki.key.certificate)],
        key=pki.key,
        now=now,
        allow_development_certificate=True,
    )
    message = read_message(data)
    assert message.header.known_type is MessageType.REGISTRATION
    assert (message.header.message_type, message.header.version) == ("109", "2.1.0")
    document = message.documents[0]
    assert document.tag == "TKhai"
    content = document.find("DLTKhai/NDTKhai")
    assert content is not None
    assert [e.tag for e in content] == ["LHSDung", "HTGDLCTDT", "PThuc", "DSCTSSDung"]
    flags = content.find("LHSDung")
    assert flags is not None
    assert [e.tag for e in flags] == list(REGISTRATION_FLAGS)
    assert {e.tag for e in flags if e.text == "1"} == raised
    assert content.findtext("HTGDLCTDT/CDLQTCTN") == "1"
    assert content.findtext("HTGDLCTDT/CDLQCCQT") == "0"
    assert content.findtext("PThuc/CBTHop") == "1"
    assert content.find("LCTuSDung") is None  # the 0.1 name is gone
    cert = content.find("DSCTSSDung/CTS")
    assert cert is not None
    real = pki.key.certificate
    assert cert.findtext("TTChuc") == "Dev CA motcua-pay"
    assert cert.findtext("Seri") == format(real.serial_number, "X")
    local_from = real.not_valid_before_utc.astimezone(VIETNAM_TZ)
    assert cert.findtext("TNgay") == local_from.strftime("%Y-%m-%dT%H:%M:%S")
    assert cert.findtext("HThuc") == CertificateAction.ADD.value
    status = verify_enveloped(message_bytes(document))
    assert status.valid, status.problems
    assert status.signed_element is not None
    assert status.signed_element.tag == "DLTKhai"


def test_registration_needs_a_receipt_template_it_knows(pki: Pki) -> None:
    with pytest.raises(MessageInvalid, match="no LHSDung flag"):
        build_registration_xml(
            signed_id="TK-1",
            collector_name=COLLECTOR,
            tax_code=TAX_CODE,
            tax_authority_name="Chi cục Thuế khu vực I",
            templates=["EBL03"],
            certificates=[RegisteredCertificate.from_certificate(pki.key.certificate)],
            made_on=DAY,
        )
    root = build_registration_xml(
        signed_id="TK-1",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        tax_authority_name="Chi cục Thuế khu vực I",
        templates=[],
        certificates=[RegisteredCertificate.from_certificate(pki.key.certificate)],
        made_on=DAY,
    )
    with pytest.raises(MessageInvalid, match="raises no receipt flag"):
        validate_registration_xml(root)
    with pytest.raises(MessageInvalid, match=r"0\.2 only"):
        build_registration_xml(
            signed_id="TK-1",
            collector_name=COLLECTOR,
            tax_code=TAX_CODE,
            tax_authority_name="Chi cục Thuế khu vực I",
            templates=["EBL01"],
            certificates=[],
            made_on=DAY,
            fmt=LEGACY,
        )


def test_wrap_document_refuses_unsigned_and_foreign_documents(pki: Pki) -> None:
    unsigned = build_summary_xml(
        signed_id="BTH-1",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        day=DAY,
        first=True,
        supplement_no=None,
        rows=_rows(),
        made_on=DAY,
    )
    with pytest.raises(MessageInvalid, match="not signed"):
        wrap_document(
            MessageType.DAILY_SUMMARY,
            unsigned,
            sender_code=SENDER,
            receiver_code="TCT",
            tax_code=TAX_CODE,
        )
    signed = read_message(_summary(pki)).documents[0]
    with pytest.raises(MessageInvalid, match="carries TKhai"):
        wrap_document(
            MessageType.REGISTRATION,
            signed,
            sender_code=SENDER,
            receiver_code="TCT",
            tax_code=TAX_CODE,
        )
    with pytest.raises(MessageInvalid, match="envelope for"):
        wrap_document(
            MessageType.DAILY_SUMMARY,
            signed,
            sender_code=SENDER,
            receiver_code="TCT",
            tax_code="0109999999",
        )
    with pytest.raises(MessageInvalid, match="32 upper-case hex"):
        wrap_document(
            MessageType.DAILY_SUMMARY,
            signed,
            sender_code=SENDER,
            receiver_code="TCT",
            tax_code=TAX_CODE,
            message_id="OTHER" + "A" * 32,
        )


def test_wrap_document_takes_signed_bytes_and_keeps_the_signature(pki: Pki) -> None:
    signed = message_bytes(read_message(_summary(pki)).documents[0])
    mid = new_message_id(SENDER)
    data = wrap_document(
        MessageType.DAILY_SUMMARY,
        signed,
        sender_code=SENDER,
        receiver_code="TCT",
        tax_code=TAX_CODE,
        message_id=mid,
    )
    message = read_message(data)
    assert message.header.message_id == mid
    assert verify_enveloped(message_bytes(message.documents[0])).valid


def test_wrap_document_carries_an_error_notice_in_its_own_mapping(pki: Pki) -> None:
    from einvoice import error_notice as notice
    from einvoice.document import Collector
    from signing.xmldsig_fast import sign_enveloped_fast

    doc = notice.ErrorNoticeDocument(
        notice_id="0f8e2b7c9d4a4e1b8c3d2a1f0e9b8c7d",
        collector=Collector(name=COLLECTOR, tax_code=TAX_CODE, address="Hà Nội"),
        tax_authority_name="Chi cục Thuế khu vực I",
        place="Hà Nội",
        notified_at=datetime.now(UTC),
        entries=(notice.NoticeEntry("EBL02", "26TAB", 1234, DAY, "Sai tên người nộp"),),
        document_version="2.1.1",
    )
    root = notice.build_error_notice_xml(doc)
    signed = sign_enveloped_fast(
        root,
        signed_id=notice.signed_id_for_notice(doc.notice_id),
        key=pki.key,
        signing_time=datetime.now(UTC),
        tz=VIETNAM_TZ,
    )
    data = wrap_document(
        MessageType.ERROR_NOTICE,
        signed,
        sender_code=SENDER,
        receiver_code="TCT",
        tax_code=TAX_CODE,
    )
    message = read_message(data)
    assert (message.header.message_type, message.header.version) == ("304", "2.1.1")
    assert message.header.known_type is MessageType.ERROR_NOTICE
    assert message.documents[0].tag == "TBao"
    assert message.documents[0].findtext("DLTBao/DSCTu/CTu/LCTDT") == "4"  # EBL02
    assert verify_enveloped(message_bytes(message.documents[0])).valid


def test_a_document_must_be_of_its_envelopes_mapping(pki: Pki) -> None:
    legacy = read_message(_summary(pki, fmt=LEGACY)).documents[0]
    validate_document(MessageType.DAILY_SUMMARY, legacy, fmt=LEGACY)
    with pytest.raises(MessageInvalid, match=r"mapping 0\.2 envelope carries a mapping 0\.1"):
        validate_document(MessageType.DAILY_SUMMARY, legacy, fmt=current_format())


@pytest.mark.parametrize("pban", ["2.1.0", "2.1.1"])
def test_summaries_are_built_in_either_official_version(pki: Pki, pban: str) -> None:
    fmt = confirmed(FormatChoices(document_version=pban))
    message = read_message(_summary(pki, fmt=fmt))
    assert message.header.version == pban
    (document,) = message.documents
    assert document.findtext("DLBTHop/TTChung/PBan") == pban
    validate_summary_xml(document, signed=True)


def test_the_summary_code_is_configured(pki: Pki, settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("MOTCUA_TAX_SUMMARY_MESSAGE_TYPE", "402")
    settings_env.setenv("MOTCUA_TAX_SUMMARY_RESULT_TYPE", "205")
    message = read_message(_summary(pki))
    assert message.header.message_type == "402"
    assert message.header.known_type is MessageType.DAILY_SUMMARY
    now = datetime.now(UTC)
    result = build_result(
        sender_code="TCT",
        referenced=message.header,
        request_type=MessageType.DAILY_SUMMARY,
        tax_code=TAX_CODE,
        accepted=True,
        now=now,
    )
    assert read_message(message_bytes(result)).header.message_type == "205"
    verdict = parse_answers(answers_bytes([result])).result_for(message.header.message_id)
    assert verdict is not None and verdict.message_type is MessageType.DATA_CHECK_RESULT


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE TDiep [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<TDiep>&x;</TDiep>",
        b'<!DOCTYPE TDiep SYSTEM "http://127.0.0.1:9/x.dtd"><TDiep/>',
        b"<TDiep><unclosed></TDiep>",
        "<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>".encode(
            "utf-16"
        ),
    ],
)
def test_load_xml_refuses_doctype_entities_and_junk(payload: bytes) -> None:
    with pytest.raises(UnsafeMessage) as caught:
        load_xml(payload)
    assert caught.value.code == "tax_message_unsafe"


def test_load_xml_refuses_oversized_input() -> None:
    with pytest.raises(UnsafeMessage, match="larger than"):
        load_xml(b"<TDiep/>" + b" " * 100, max_bytes=50)


def test_acknowledgements_round_trip(pki: Pki) -> None:
    request = read_message(_summary(pki)).header
    now = datetime.now(UTC)
    ack = build_technical_ack(sender_code="TCT", referenced=request, received=True, now=now)
    result = build_result(
        sender_code="TCT",
        referenced=request,
        request_type=MessageType.DAILY_SUMMARY,
        tax_code=TAX_CODE,
        accepted=False,
        reasons=[Reason(ReasonCode.REJECTED.value, "Sai số liệu")],
        now=now + timedelta(1),
    )
    answers = parse_answers(answers_bytes([ack, result]))
    technical = answers.ack_for(request.message_id)
    assert technical is not None
    assert technical.received
    assert not technical.duplicate
    verdict = answers.result_for(request.message_id)
    assert verdict is not None
    assert verdict.message_type is MessageType.DATA_CHECK_RESULT
    assert not verdict.accepted
    assert verdict.reasons == (Reason("rejected", "Sai số liệu"),)
    assert read_message(message_bytes(result)).header.message_type == "204"
    assert read_message(message_bytes(ack)).header.message_type == "999"

    refused = build_technical_ack(
        sender_code="TCT",
        referenced=None,
        received=False,
        reasons=[Reason(ReasonCode.UNSAFE_XML.value, "DOCTYPE")],
        now=now,
    )
    parsed = parse_answers(message_bytes(refused))
    anonymous = parsed.ack_for(request.message_id)
    assert anonymous is not None
    assert anonymous.referenced_id is None
    assert not anonymous.received


def test_answers_are_validated(pki: Pki) -> None:
    request = read_message(_summary(pki)).header
    ack = build_technical_ack(
        sender_code="TCT", referenced=request, received=True, now=datetime.now(UTC)
    )
    status = ack.find("DLieu/TBao/TTTNhan")
    assert status is not None
    status.text = "7"
    with pytest.raises(MessageInvalid):
        parse_answers(etree.tostring(ack))
