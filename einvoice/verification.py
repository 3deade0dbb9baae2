"""Verifying a receipt someone holds: is it genuine, whose is it, is it still in force?

Used by the public ``POST /api/v1/verify`` and the page the receipt's QR opens. The input is
untrusted, so the order of work matters:

1. size check, then a hardened parse that refuses any DOCTYPE/entity (XXE, billion laughs) —
   :class:`~einvoice.errors.UnsafeXml` / :class:`~einvoice.errors.FileTooLarge` are *refusals*
   (4xx); anything readable gets an *answer* (:class:`VerificationResult`, maybe not valid);
2. the receipt schema of the mapping the document names by its ``PBan`` (0.1, our own, or 0.2,
   the tax authority's confirmed names: :mod:`einvoice.receipt_xml`), so a receipt signed in
   0.1 verifies exactly as signed after its agency switched to 0.2; and the enveloped signature
   (:func:`signing.xmldsig.verify_enveloped`);
3. the receipt's data is read **only from the element the signature covers** (signxml's
   ``signed_xml``), and that element must be the document's ``DLBLai``: an unsigned look-alike
   elsewhere in the file is never shown as receipt data;
4. the certificate's ``UID=MST:`` must equal the collector's MST on the receipt;
5. when a database session is given, the receipt is looked up (by id, then by MST + template
   + series + number): a known receipt must be byte-for-byte the signed data we stored, else it
   is a forgery even with a mathematically valid signature (anyone can make a self-signed
   certificate that claims our MST); its status is ours (valid, or replaced by N). Receipts
   we never issued get status ``unknown``.

Certificate chains are checked only when a trusted CA is passed (``trusted_chain``); without
it the result carries a warning, because a valid signature alone proves nothing about who
holds the key. Revocation is not checked yet.

PDF display copies are verified by ``signing.pades.verify_pdf`` when that module exists (it is
being written alongside this one and is imported lazily); until then a PDF gets an answer
saying so. The XML stays the legal original either way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from cryptography import x509
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.errors import FileTooLarge, UnsafeXml
from einvoice.models import Receipt
from einvoice.receipt_xml import (
    MAX_XML_BYTES,
    ParsedReceipt,
    ReceiptSchemaError,
    UnsafeXmlError,
    load_receipt_xml,
    receipt_from_element,
    validate_receipt_xml,
)
from signing.certs import same_tax_code
from signing.xmldsig import verify_enveloped

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "STATUS_UNKNOWN",
    "LinkedReceipt",
    "VerificationProblem",
    "VerificationResult",
    "verify_document",
]

MAX_DOCUMENT_BYTES: Final = 5 * 1024 * 1024
"""Largest file accepted for verification (a receipt PDF is tens of KB, its XML a few KB)."""

STATUS_UNKNOWN: Final = "unknown"
"""Status of a document we did not issue, or could not establish (invalid signature)."""

_PDF_MAGIC: Final = b"%PDF-"
_PDF_HEADER_WINDOW: Final = 1024
"""PDF readers accept the header anywhere in the first 1024 bytes; so do we."""


@dataclass(frozen=True, slots=True)
class VerificationProblem:
    """One reason for a verdict, with a stable code, in English and Vietnamese."""

    code: str
    en: str
    vi: str


@dataclass(frozen=True, slots=True)
class LinkedReceipt:
    """Another receipt of ours, as a result links to it (replacement or replaced original)."""

    id: str
    template: str
    series: str
    number: int
    verify_code: str


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The verdict on one submitted document. Fields other than ``valid``, ``problems`` and
    ``warnings`` come from the signed data (or ``None`` when nothing could be trusted)."""

    valid: bool
    """The bottom line: signature valid, signed data is the receipt, MST matches, and (when we
    know the receipt) identical to what we issued."""
    format: str
    """``xml`` or ``pdf``: which path checked it."""
    status: str
    """``valid`` / ``replaced`` (our record) or ``unknown`` (not ours, or not established)."""
    signer: str | None = None
    """Certificate subject CN: "signed by"."""
    signer_tax_code: str | None = None
    """MST from the certificate's ``UID=MST:``."""
    tax_code: str | None = None
    """The collector's MST as the receipt states it."""
    tax_code_matches: bool | None = None
    collector_name: str | None = None
    template: str | None = None
    series: str | None = None
    number: int | None = None
    issued_on: date | None = None
    total: int | None = None
    signing_time: str | None = None
    development: bool = False
    """Signed with a development certificate: no legal validity."""
    trusted_chain: bool | None = None
    """Whether the certificate chains to the trusted CA; ``None``: not checked."""
    receipt_id: str | None = None
    """Our receipt id, when the document is one of ours."""
    replaced_by: LinkedReceipt | None = None
    replaces: LinkedReceipt | None = None
    problems: tuple[VerificationProblem, ...] = ()
    """Why it is not valid; empty when valid."""
    warnings: tuple[VerificationProblem, ...] = ()
    """What a reader should know even when valid (development certificate, unknown status)."""
    details: dict[str, Any] = field(default_factory=dict)


def _problem(code: str, en: str, vi: str) -> VerificationProblem:
    return VerificationProblem(code=code, en=en, vi=vi)


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n")


def verify_document(
    data: bytes,
    content_type_hint: str | None = None,
    *,
    session: Session | None = None,
    trusted_ca: x509.Certificate | None = None,
) -> VerificationResult:
    """Verify a receipt XML or PDF; never parses unsafely, never raises for a bad signature.

    ``content_type_hint`` (the upload's media type or a file-name guess) only decides what to
    say about a file that claims to be a PDF but is not one; the bytes decide the path.

    :raises FileTooLarge: more than :data:`MAX_DOCUMENT_BYTES` (or an XML over the receipt cap).
    :raises UnsafeXml: the XML declares a DOCTYPE or entities.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FileTooLarge(f"files are verified up to {MAX_DOCUMENT_BYTES} bytes")
    if _PDF_MAGIC in data[:_PDF_HEADER_WINDOW]:
        return _verify_pdf(data, trusted_ca=trusted_ca)
    if content_type_hint and "pdf" in content_type_hint.lower():
        return VerificationResult(
            valid=False,
            format="pdf",
            status=STATUS_UNKNOWN,
            problems=(
                _problem(
                    "not_a_pdf",
                    "the file is not a PDF (no %PDF header)",
                    "Tệp không phải là tệp PDF (thiếu phần đầu %PDF)",
                ),
            ),
        )
    return _verify_xml(data, session=session, trusted_ca=trusted_ca)


# --------------------------------------------------------------------------- XML


def _verify_xml(
    data: bytes, *, session: Session | None, trusted_ca: x509.Certificate | None
) -> VerificationResult:
    if len(data) > MAX_XML_BYTES:
        raise FileTooLarge(f"receipt XML is verified up to {MAX_XML_BYTES} bytes")
    try:
        root = load_receipt_xml(data)
    except UnsafeXmlError as exc:
        if isinstance(exc.__cause__, etree.XMLSyntaxError):
            return VerificationResult(
                valid=False,
                format="xml",
                status=STATUS_UNKNOWN,
                problems=(
                    _problem(
                        "not_readable",
                        "the file is neither a signed PDF nor well-formed XML",
                        "Tệp không phải là PDF đã ký cũng không phải XML hợp lệ",
                    ),
                ),
            )
        raise UnsafeXml(str(exc)) from exc

    problems: list[VerificationProblem] = []
    warnings: list[VerificationProblem] = []
    schema_ok = True
    try:
        validate_receipt_xml(root)
    except ReceiptSchemaError as exc:
        schema_ok = False
        problems.append(
            _problem(
                "not_a_receipt",
                "the document is not a receipt in a format we know: " + "; ".join(exc.errors[:5]),
                "Tệp không phải là biên lai điện tử đúng định dạng: " + "; ".join(exc.errors[:5]),
            )
        )

    status = verify_enveloped(data, trusted_ca=trusted_ca)
    for text in status.problems:
        problems.append(_problem("signature_invalid", text, f"Chữ ký số không hợp lệ ({text})"))

    base: dict[str, Any] = {
        "format": "xml",
        "signer": status.signer_common_name,
        "signer_tax_code": status.tax_code,
        "signing_time": status.signing_time,
        "development": status.development,
        "trusted_chain": status.trusted_chain,
    }
    if status.development:
        warnings.append(
            _problem(
                "development_certificate",
                "signed with a development certificate: no legal validity",
                "Ký bằng chứng thư số thử nghiệm: không có giá trị pháp lý",
            )
        )
    if status.trusted_chain is None and status.certificate is not None:
        warnings.append(
            _problem(
                "chain_not_checked",
                "the certificate chain to a trusted root was not checked",
                "Chưa kiểm tra chuỗi chứng thư số đến tổ chức chứng thực gốc",
            )
        )

    signed = status.signed_element
    parsed: ParsedReceipt | None = None
    if status.valid and signed is not None and schema_ok:
        visible = root.find("DLBLai")
        if signed.tag != "DLBLai" or visible is None or _c14n(signed) != _c14n(visible):
            problems.append(
                _problem(
                    "signed_data_mismatch",
                    "the signature does not cover the receipt data shown in the file",
                    "Chữ ký số không bao trùm dữ liệu biên lai trong tệp",
                )
            )
        else:
            try:
                parsed = receipt_from_element(signed)
            except (ReceiptSchemaError, ValueError) as exc:
                problems.append(
                    _problem(
                        "not_a_receipt",
                        f"the signed data is not a readable receipt: {exc}",
                        f"Dữ liệu đã ký không đọc được như biên lai: {exc}",
                    )
                )

    if parsed is None or signed is None:
        return VerificationResult(
            valid=False,
            status=STATUS_UNKNOWN,
            problems=tuple(problems)
            or (
                _problem(
                    "not_verified",
                    "the receipt could not be verified",
                    "Không xác minh được biên lai",
                ),
            ),
            warnings=tuple(warnings),
            **base,
        )

    matches: bool | None = None
    if status.tax_code is None:
        problems.append(
            _problem(
                "no_tax_code_in_certificate",
                "the signing certificate carries no tax code (UID=MST:...)",
                "Chứng thư số ký không chứa mã số thuế (UID=MST:...)",
            )
        )
    else:
        matches = same_tax_code(status.tax_code, parsed.tax_code)
        if not matches:
            problems.append(
                _problem(
                    "tax_code_mismatch",
                    f"the certificate belongs to tax code {status.tax_code}, "
                    f"but the receipt is issued under {parsed.tax_code}",
                    f"Chứng thư số thuộc mã số thuế {status.tax_code}, "
                    f"nhưng biên lai ghi mã số thuế {parsed.tax_code}",
                )
            )

    receipt_status = STATUS_UNKNOWN
    receipt_id: str | None = None
    replaced_by: LinkedReceipt | None = None
    replaces: LinkedReceipt | None = None
    if session is not None:
        row = _find_ours(session, parsed)
        if row is None:
            other = _by_number(session, parsed)
            if other is not None:
                problems.append(
                    _problem(
                        "number_registered_to_another_receipt",
                        "a different receipt is registered under this tax code, template, "
                        "series and number",
                        "Số biên lai này đã được đăng ký cho một biên lai khác",
                    )
                )
            else:
                warnings.append(
                    _problem(
                        "not_issued_here",
                        "this receipt was not issued through this service; its status is unknown",
                        "Biên lai không do hệ thống này phát hành; chưa rõ tình trạng",
                    )
                )
        elif _c14n(_stored_signed_data(row)) != _c14n(signed):
            problems.append(
                _problem(
                    "differs_from_issued",
                    "the document differs from the receipt we issued under this number",
                    "Nội dung khác với biên lai đã phát hành mang số này",
                )
            )
        else:
            receipt_id = row.id
            receipt_status = row.status.value
            replaced_by = _linked(session, row.replaced_by_id)
            replaces = _linked(session, row.replaces_id)

    return VerificationResult(
        valid=not problems,
        status=receipt_status,
        tax_code=parsed.tax_code,
        tax_code_matches=matches,
        collector_name=parsed.collector_name,
        template=parsed.template,
        series=parsed.series,
        number=parsed.number,
        issued_on=parsed.issued_on,
        total=parsed.total,
        receipt_id=receipt_id,
        replaced_by=replaced_by,
        replaces=replaces,
        problems=tuple(problems),
        warnings=tuple(warnings),
        **base,
    )


def _stored_signed_data(row: Receipt) -> etree._Element:
    stored = load_receipt_xml(row.xml).find("DLBLai")
    if stored is None:  # pragma: no cover - we validated it before storing
        raise ValueError(f"stored receipt {row.id} has no DLBLai")
    return stored


def _find_ours(session: Session, parsed: ParsedReceipt) -> Receipt | None:
    row = session.get(Receipt, parsed.receipt_id)
    if row is None:
        return None
    same = (row.template, row.series, row.number) == (parsed.template, parsed.series, parsed.number)
    if not same or not same_tax_code(row.collector_tax_code or "", parsed.tax_code):
        return None
    return row


def _by_number(session: Session, parsed: ParsedReceipt) -> Receipt | None:
    return session.scalars(
        select(Receipt).where(
            Receipt.collector_tax_code == parsed.tax_code,
            Receipt.template == parsed.template,
            Receipt.series == parsed.series,
            Receipt.number == parsed.number,
        )
    ).first()


def _linked(session: Session, receipt_id: str | None) -> LinkedReceipt | None:
    if receipt_id is None:
        return None
    row = session.get(Receipt, receipt_id)
    if row is None:
        return None
    return LinkedReceipt(
        id=row.id,
        template=row.template,
        series=row.series,
        number=row.number,
        verify_code=row.verify_code,
    )


# --------------------------------------------------------------------------- PDF


def _pdf_unavailable() -> VerificationResult:
    return VerificationResult(
        valid=False,
        format="pdf",
        status=STATUS_UNKNOWN,
        problems=(
            _problem(
                "pdf_verification_unavailable",
                "PDF verification not available yet; verify the receipt's XML legal original",
                "Chưa hỗ trợ kiểm tra tệp PDF; hãy kiểm tra tệp XML (bản gốc pháp lý)",
            ),
        ),
    )


def _field(status: object, *names: str) -> Any:
    for name in names:
        if hasattr(status, name):
            return getattr(status, name)
    return None


def _verify_pdf(data: bytes, *, trusted_ca: x509.Certificate | None) -> VerificationResult:
    """Delegate to ``signing.pades.verify_pdf`` if it exists, reading its verdict by name.

    The PAdES module is written in parallel and imported lazily, so that this package works
    without it; its status (``PdfSignatureStatus``) is read by attribute name (``valid``,
    ``signer_common_name``, ``tax_code``, ``signing_time``, ``problems``, ``development``,
    ``trusted_chain``). Until it exists, or if it fails on a malformed file, the answer is "not
    valid" with the reason. A PDF does not say which of our receipts it shows in a form we can
    trust, so its status stays ``unknown`` with a pointer to the XML and the QR page.
    """
    try:
        pades = importlib.import_module("signing.pades")
    except ModuleNotFoundError as exc:
        if exc.name not in {"signing.pades", "pyhanko"}:
            raise
        return _pdf_unavailable()
    verify_pdf = getattr(pades, "verify_pdf", None)
    if not callable(verify_pdf):
        return _pdf_unavailable()
    try:
        status = verify_pdf(data, trusted_ca=trusted_ca)
    except Exception as exc:  # any failure on untrusted bytes is a "not valid", never a 500
        return VerificationResult(
            valid=False,
            format="pdf",
            status=STATUS_UNKNOWN,
            problems=(
                _problem(
                    "pdf_unreadable",
                    f"the PDF signature could not be checked: {exc}",
                    f"Không kiểm tra được chữ ký trên tệp PDF: {exc}",
                ),
            ),
        )
    valid = bool(_field(status, "valid"))
    texts = [str(text) for text in (_field(status, "problems") or ())]
    problems = tuple(
        _problem("pdf_signature_invalid", text, f"Chữ ký trên tệp PDF không hợp lệ ({text})")
        for text in texts
    )
    if not valid and not problems:
        problems = (
            _problem(
                "pdf_signature_invalid",
                "the PDF signature is not valid",
                "Chữ ký số trên tệp PDF không hợp lệ",
            ),
        )
    signer = _field(status, "signer_common_name")
    tax_code = _field(status, "tax_code")
    moment = _field(status, "signing_time")
    development = bool(_field(status, "development"))
    trusted_chain = _field(status, "trusted_chain")
    warnings = [
        _problem(
            "pdf_status_unknown",
            "a PDF is a display copy: check the XML legal original or the page its QR code opens "
            "for the receipt's status",
            "Tệp PDF là bản thể hiện: hãy kiểm tra tệp XML gốc hoặc trang tra cứu (mã QR) để "
            "biết tình trạng biên lai",
        )
    ]
    if development:
        warnings.append(
            _problem(
                "development_certificate",
                "signed with a development certificate: no legal validity",
                "Ký bằng chứng thư số thử nghiệm: không có giá trị pháp lý",
            )
        )
    return VerificationResult(
        valid=valid and not problems,
        format="pdf",
        status=STATUS_UNKNOWN,
        signer=signer if isinstance(signer, str) else None,
        signer_tax_code=tax_code if isinstance(tax_code, str) else None,
        signing_time=(
            moment.isoformat()
            if isinstance(moment, datetime)
            else (str(moment) if moment is not None else None)
        ),
        development=development,
        trusted_chain=trusted_chain if isinstance(trusted_chain, bool) else None,
        problems=problems,
        warnings=tuple(warnings),
    )
