"""The fixed inputs of the golden files in ``golden/``, and how each document is made from them.

A golden file is the exact bytes of a document built (and, for ``*-signed`` and the messages,
signed) at one fixed moment with the fixed development key in ``golden/org.p12``: RSA PKCS#1
v1.5 has no randomness, so the same inputs give the same bytes, and any change of structure,
names, order or canonicalisation shows as a diff. The dates here are **deliberately fixed**
(issue 12 exempts them): the moment a golden document was signed is history, not "today".

The 0.1 files were captured from the code as it was before issue 17 (the mapping 0.1 builders of
the notice and the registration no longer exist); they must keep validating, reading and
verifying exactly as they are. Regenerate the others after a deliberate change with
``UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

from lxml import etree

from einvoice.document import (
    Collector,
    FeeKind,
    Payer,
    ReceiptDocument,
    ReceiptLine,
    ReceiptReference,
)
from einvoice.error_notice import (
    ErrorNoticeDocument,
    NoticeEntry,
    build_error_notice_xml,
    signed_id_for_notice,
    validate_error_notice_xml,
)
from einvoice.official import FormatChoices
from einvoice.receipt_xml import build_receipt_xml, signed_id_for, validate_receipt_xml
from einvoice.tax_authority.formats import LEGACY, MessageFormat, confirmed
from einvoice.tax_authority.messages import (
    RegisteredCertificate,
    RowStatus,
    SummaryRow,
    build_daily_summary,
    build_registration,
)
from signing.keys import Pkcs12KeySource
from signing.xmldsig import VIETNAM_TZ, sign_enveloped
from signing.xmldsig_fast import sign_enveloped_fast

GOLDEN = Path(__file__).parent / "golden"
CA_PEM = GOLDEN / "ca.pem"
ORG_P12 = GOLDEN / "org.p12"
"""Development PKI made for these files only (issued 2026-01-01, valid ten years)."""
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
XMLSEC1 = shutil.which("xmlsec1")

SIGNED_AT = datetime(2026, 11, 20, 2, 15, 30, 987654, tzinfo=UTC)  # golden: signed at this moment
DAY = date(2026, 11, 20)  # golden: the fixed receipt's local day (09:15:30 in Hà Nội)
EVE = date(2026, 11, 19)  # golden: the day of the receipt the summary's replacement replaced

TAX_CODE = "0101234567-001"
COLLECTOR = "Ủy ban nhân dân phường Hàng Bạc"
ADDRESS = "Số 38 phố Hàng Bạc, phường Hàng Bạc, quận Hoàn Kiếm, Hà Nội"
SENDER = "V0101234567"
AUTHORITY = "Chi cục Thuế khu vực I"
SUMMARY_ID = SENDER + "0F8E2B7C9D4A4E1B8C3D2A1F0E9B8C7D"
REGISTRATION_ID = SENDER + "5C1D7A9E3B2F4C6D8E0A1B2C3D4E5F60"

CHOICES = FormatChoices()
"""The defaults (PBan 2.1.0, summary 400 → 204), not the environment's: goldens are fixed."""
CONFIRMED = confirmed(CHOICES)


@cache
def key() -> Pkcs12KeySource:
    return Pkcs12KeySource.load(ORG_P12, None)


def receipt_document(mapping: str) -> ReceiptDocument:
    """A fixed receipt: diacritics everywhere, one lệ phí, one phí exempted down to 0 đồng."""
    return ReceiptDocument(
        receipt_id="0f8e2b7c9d4a4e1b8c3d2a1f0e9b8c7d",
        template="EBL01",
        series="26TAB",
        number=1234,
        issued_at=SIGNED_AT,
        collector=Collector(name=COLLECTOR, tax_code=TAX_CODE, address=ADDRESS),
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
        mapping_version=mapping,
    )


def signed_receipt(mapping: str) -> bytes:
    """As :func:`einvoice.issuing.issue_receipt` signs and stores it."""
    doc = receipt_document(mapping)
    root = build_receipt_xml(doc)
    signed = sign_enveloped_fast(
        root,
        signed_id=signed_id_for(doc),
        key=key(),
        signing_time=SIGNED_AT,
        tz=VIETNAM_TZ,
        copy=False,
    )
    validate_receipt_xml(signed)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def notice_document() -> ErrorNoticeDocument:
    return ErrorNoticeDocument(
        notice_id="5c1d7a9e3b2f4c6d8e0a1b2c3d4e5f60",
        collector=Collector(name=COLLECTOR, tax_code=TAX_CODE, address=ADDRESS),
        tax_authority_name=AUTHORITY,
        tax_authority_code="10100",
        place="Hà Nội",
        notified_at=SIGNED_AT,
        entries=(
            NoticeEntry(
                "EBL01",
                "26TAB",
                1234,
                DAY,
                "Sai tên người nộp: Nguyễn Thị Ánh Tuyết, không phải Nguyễn Thị Anh Tuyết",
            ),
        ),
        document_version=CHOICES.document_version,
    )


def signed_notice() -> bytes:
    """A 0.2 notice, as :func:`einvoice.lifecycle.create_error_notice` signs and stores it."""
    doc = notice_document()
    root = build_error_notice_xml(doc)
    validate_error_notice_xml(root)
    signed = sign_enveloped(
        root,
        signed_id=signed_id_for_notice(doc.notice_id),
        key=key(),
        signing_time=SIGNED_AT,
        tz=VIETNAM_TZ,
    )
    validate_error_notice_xml(signed)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def summary_rows() -> list[SummaryRow]:
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


def summary_message(fmt: MessageFormat) -> bytes:
    """01/TH-BLĐT for :data:`DAY` in a ``TDiep`` of ``fmt`` (LEGACY or CONFIRMED)."""
    return build_daily_summary(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        day=DAY,
        first=True,
        supplement_no=None,
        rows=summary_rows(),
        key=key(),
        now=SIGNED_AT,
        tz=VIETNAM_TZ,
        message_id=SUMMARY_ID,
        allow_development_certificate=True,
        fmt=fmt,
    )


def registration_message() -> bytes:
    """01/ĐKTĐ-CTĐT (mapping 0.2) for the golden certificate, in a ``TDiep`` (109)."""
    return build_registration(
        sender_code=SENDER,
        receiver_code="TCT",
        collector_name=COLLECTOR,
        tax_code=TAX_CODE,
        tax_authority_name=AUTHORITY,
        templates=["EBL01"],
        certificates=[RegisteredCertificate.from_certificate(key().certificate)],
        key=key(),
        now=SIGNED_AT,
        tz=VIETNAM_TZ,
        tax_authority_code="10100",
        message_id=REGISTRATION_ID,
        allow_development_certificate=True,
        fmt=CONFIRMED,
    )


BUILDERS = {
    "receipt-0.1-signed.xml": lambda: signed_receipt("0.1"),
    "receipt-0.2-signed.xml": lambda: signed_receipt("0.2"),
    "04-ss-ctdt-0.2-signed.xml": signed_notice,
    "01-th-bldt-0.1.xml": lambda: summary_message(LEGACY),
    "01-th-bldt-0.2.xml": lambda: summary_message(CONFIRMED),
    "01-dktd-ctdt-0.2.xml": registration_message,
}
"""Golden files today's code still makes (the others are captured history: see above)."""

CAPTURED = ("04-ss-ctdt-0.1-signed.xml", "01-dktd-ctdt-0.1.xml")
"""0.1 documents no code makes any more: they are only read."""

SIGNED_ELEMENT = {
    "receipt": "DLBLai",
    "04-ss-ctdt": "DLTBao",
    "01-th-bldt": "DLBTHop",
    "01-dktd-ctdt": "DLTKhai",
}
"""The ``Id``-carrying element each document's signature covers (xmlsec1 ``--id-attr``)."""


def signed_element_of(name: str) -> str:
    return next(tag for prefix, tag in SIGNED_ELEMENT.items() if name.startswith(prefix))


def golden_bytes(name: str) -> bytes:
    """The file's bytes; rewritten first from its builder when ``UPDATE_GOLDEN=1``."""
    path = GOLDEN / name
    if UPDATE and name in BUILDERS:
        path.write_bytes(BUILDERS[name]())
    return path.read_bytes()


def xmlsec1_verify(data: bytes, element: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify`` trusting the golden CA (not ``--insecure``): chain and signature,
    the certificates judged at the moment of signing (whatever the machine's or suite's clock)."""
    assert XMLSEC1 is not None
    path = tmp_path / "document.xml"
    path.write_bytes(data)
    at = SIGNED_AT.strftime("%Y-%m-%d %H:%M:%S")
    return subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--verification-gmt-time",
            at,
            "--trusted-pem",
            str(CA_PEM),
            "--id-attr:Id",
            element,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
