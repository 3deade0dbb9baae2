"""Messages to and from the tax authority: the ``TDiep`` envelope and the documents it carries.

Two mappings exist, chosen by each message's ``PBan`` (:mod:`.formats`):

* **0.2** (what we build now): the tax authority's confirmed vocabulary (Decision 1271/QĐ-CT,
  ``PBan`` 2.1.0, or 2.1.1 from the settings; domain.md, "What is now confirmed of the official
  formats"): the e-document family's message codes (109/110/111 registration, 304/301 error
  notice, 999), and 01/ĐKTĐ-CTĐT with ``LHSDung`` flags, ``HTGDLCTDT`` and
  ``DSCTSSDung/CTS``. **Still unconfirmed**, and configurable: the code of 01/TH-BLĐT and of its
  result (``400``/``204`` by analogy with the invoice summary). The element lists of 01/TH-BLĐT
  and of the envelope are not public: their names remain our reading of the e-invoice family.
* **0.1** (no longer built, still read, sent and judged): our first guesses (``PBan`` 0.1;
  100/103, 300/301, 400/204). A summary or notice queued before the upgrade goes out exactly as
  signed, in the envelope of its own mapping.

The reason codes in acknowledgements (:class:`ReasonCode`) are ours.

Every element name lives in this module (the notice's in :mod:`einvoice.error_notice`) and
every code in :mod:`.formats` / :mod:`einvoice.official` — the sandbox and the client call the
functions here. Schemas (``einvoice/schemas``, one file per mapping ``<v>``):

* ``tdiep-<v>.xsd``: ``TDiep`` (``TTChung`` + ``DLieu``) and ``DSTDiep``, our list of answers;
* ``tdiep-ack-<v>.xsd``: the ``TBao`` of a 999 technical acknowledgement;
* ``tdiep-result-<v>.xsd``: the ``TBao`` of a result (204 / 110 / 111 / 301; 103 in 0.1);
* ``01-th-bldt-<v>.xsd``: the daily summary ``BTHDLieu``;
* ``01-dktd-ctdt-<v>.xsd``: the registration ``TKhai``.

Decisions that are ours, not the tax authority's:

* Each summary row is one receipt; the daily close joins the names of a receipt's items with
  ``"; "`` in ``TKhoan`` and writes the receipt total in ``TgTTTBSo``. A row names its receipt
  by template, series, number and date only, so one summary covers receipts of both receipt
  mappings (a day across an agency's switch date).
* Row statuses (``TThai``) are only those receipts can have (Circular 91/2026 art. 20: no cancel,
  no adjustment): 1 new, 2 replaced, 3 replacing (:class:`RowStatus`).
* Dates are the collector's local calendar dates (Asia/Ho_Chi_Minh) in ISO form, as on receipts.
* A summary may have no rows: an empty day can still be declared if the collector wants proof.
* The collector signs the summary and the registration in ``DSCKS/NNT`` (a taxpayer's
  declaration), with the enveloped XMLDSig profile of :mod:`signing.xmldsig`.
* An HTTP answer is a ``DSTDiep`` list: the 999 and, once the data were checked, the result(s).
* The envelope of a document takes the document's mapping and ``PBan``: a 0.1 notice travels in
  a 0.1 envelope (300), a 0.2 one in a 0.2 envelope (304).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from einvoice.document import ReceiptReference
from einvoice.official import REGISTRATION_FLAG_FOR_TEMPLATE, REGISTRATION_FLAGS
from einvoice.tax_authority.errors import MessageInvalid, UnsafeMessage
from einvoice.tax_authority.formats import (
    LEGACY,
    RECEIVED_TYPE_FOR,
    RESULT_TYPE_FOR,
    MessageFormat,
    MessageType,
    current,
    for_version,
)
from settings.untrusted_xml import (
    UntrustedXmlError,
    UntrustedXmlReason,
    hardened_parser,
    load_schema,
    parse_untrusted,
)
from signing.certs import check_signing_certificate
from signing.keys import KeySource
from signing.xmldsig import DEFAULT_MAX_BYTES, DS_NS, PLACEHOLDER_ID, VIETNAM_TZ
from signing.xmldsig_fast import sign_enveloped_fast

__all__ = [
    "ACK_SCHEMA_PATH",
    "ENVELOPE_SCHEMA_PATH",
    "LEGACY",
    "MAPPING_VERSION",
    "MAX_MESSAGE_BYTES",
    "RECEIVED_TYPE_FOR",
    "REGISTRATION_FORM",
    "REGISTRATION_SCHEMA_PATH",
    "RESULT_SCHEMA_PATH",
    "RESULT_TYPE_FOR",
    "SUMMARY_FORM",
    "SUMMARY_SCHEMA_PATH",
    "AuthorityAnswers",
    "CertificateAction",
    "DataCheckResult",
    "EnvelopeHeader",
    "Message",
    "MessageFormat",
    "MessageType",
    "Reason",
    "ReasonCode",
    "RegisteredCertificate",
    "RegistrationKind",
    "RowStatus",
    "SummaryFacts",
    "SummaryRow",
    "TechnicalAck",
    "TransmissionMode",
    "TransmissionRoute",
    "answers_bytes",
    "build_daily_summary",
    "build_registration",
    "build_registration_xml",
    "build_result",
    "build_summary_xml",
    "build_technical_ack",
    "current_format",
    "document_format",
    "document_tax_code",
    "load_xml",
    "message_bytes",
    "new_message_id",
    "parse_answers",
    "read_message",
    "read_message_tree",
    "signed_data_of",
    "signed_data_tag",
    "summary_facts",
    "validate_document",
    "validate_registration_xml",
    "validate_summary_xml",
    "wrap_document",
]

MAPPING_VERSION: Final = "0.2"
"""The mapping new messages are built in (:func:`current_format`); 0.1 is still read."""

current_format = current
"""The format new messages are built in (mapping 0.2, ``PBan`` and summary codes from the
settings)."""

_SCHEMAS: Final = Path(__file__).resolve().parent.parent / "schemas"
"""``einvoice/schemas``, found next to the package (as :mod:`einvoice.receipt_common` does)."""

ENVELOPE_SCHEMA_PATH: Final = _SCHEMAS / f"tdiep-{MAPPING_VERSION}.xsd"
ACK_SCHEMA_PATH: Final = _SCHEMAS / f"tdiep-ack-{MAPPING_VERSION}.xsd"
RESULT_SCHEMA_PATH: Final = _SCHEMAS / f"tdiep-result-{MAPPING_VERSION}.xsd"
SUMMARY_SCHEMA_PATH: Final = _SCHEMAS / f"01-th-bldt-{MAPPING_VERSION}.xsd"
REGISTRATION_SCHEMA_PATH: Final = _SCHEMAS / f"01-dktd-ctdt-{MAPPING_VERSION}.xsd"
"""The schemas of the current mapping; :meth:`MessageFormat.schema` names any mapping's."""

MAX_MESSAGE_BYTES: Final = DEFAULT_MAX_BYTES
"""10 MB: a province's busiest day is a few MB of summary; anything larger is refused unread."""

SUMMARY_FORM: Final = "01/TH-BLĐT"
SUMMARY_NAME: Final = "Bảng tổng hợp dữ liệu biên lai điện tử"
REGISTRATION_FORM: Final = "01/ĐKTĐ-CTĐT"
REGISTRATION_NAME: Final = "Tờ khai đăng ký/thay đổi thông tin sử dụng biên lai điện tử"
RESULT_FORM: Final = "01/TB-KTDL"
"""Form of the result notice, by analogy with the invoice family's notice of the data check."""
RESULT_NAME: Final = "Thông báo về kết quả kiểm tra dữ liệu"

_DAY_PERIOD: Final = "N"
"""``LKDLieu``: the data period is a day (ngày)."""
_VND_RATE: Final = Decimal(1)
_SIGNATURE_TAG: Final = f"{{{DS_NS}}}Signature"
_CODE_SHAPE: Final = re.compile(r"^[A-Za-z0-9]{1,20}$")
_MESSAGE_ID_SHAPE: Final = re.compile(r"^[A-Za-z0-9]{1,20}[0-9A-F]{32}$")
_LOCAL_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"


_RESULT_TYPES: Final = frozenset({*RESULT_TYPE_FOR.values(), *RECEIVED_TYPE_FOR.values()})

_DOCUMENT_ROOT: Final[dict[MessageType, str]] = {
    MessageType.REGISTRATION: "TKhai",
    MessageType.ERROR_NOTICE: "TBao",
    MessageType.DAILY_SUMMARY: "BTHDLieu",
}
_SIGNED_DATA: Final[dict[MessageType, str]] = {
    MessageType.REGISTRATION: "DLTKhai",
    MessageType.ERROR_NOTICE: "DLTBao",
    MessageType.DAILY_SUMMARY: "DLBTHop",
}
_SIGNATURE_SLOT: Final = "DSCKS/NNT"
"""Every document the collector sends is a taxpayer's declaration: signature in ``NNT``."""


class RowStatus(StrEnum):
    """``TThai`` of a summary row: what happened to the receipt (Circular 91/2026 art. 20).

    Receipts have no cancellation and no adjustment, so only three of the invoice family's
    statuses exist. Codes are ours (unconfirmed).
    """

    NEW = "1"
    """Mới: a receipt issued that day, in force."""
    REPLACED = "2"
    """Bị thay thế: an earlier receipt that a replacement now supersedes; give the replacing
    receipt as the related one and the original's day as the adjusted period."""
    REPLACING = "3"
    """Thay thế: a replacement receipt; give the receipt it replaces as the related one."""


class ReasonCode(StrEnum):
    """``MLoi`` in acknowledgements. Ours (the official codes are unknown); stable once published.

    The client only acts on :attr:`DUPLICATE`; the others are shown to people.
    """

    MALFORMED = "malformed"
    """Not well-formed XML."""
    UNSAFE_XML = "unsafe_xml"
    """A DOCTYPE, entity declaration or similar: refused unread."""
    TOO_LARGE = "too_large"
    """Larger than :data:`MAX_MESSAGE_BYTES`."""
    ENVELOPE_INVALID = "envelope_invalid"
    """``TDiep``/``TTChung`` breaks ``tdiep-<mapping>.xsd`` or its rules, or its ``PBan`` is
    none of ours."""
    WRONG_RECEIVER = "wrong_receiver"
    """``MNNhan`` is not the receiving system's code."""
    UNKNOWN_TYPE = "unknown_message_type"
    """``MLTDiep`` is not a request the receiver handles."""
    DUPLICATE = "duplicate_message_id"
    """The receiver already holds a message with this ``MTDiep`` and the same content; the
    earlier message stands (and its result can be queried)."""
    MESSAGE_ID_REUSED = "message_id_reused"
    """The ``MTDiep`` was already used for different content."""
    DOCUMENT_INVALID = "document_invalid"
    """The document in ``DLieu`` breaks its schema or a rule of its form."""
    SIGNATURE_INVALID = "signature_invalid"
    """The collector's signature is missing, broken, or not trusted."""
    TAX_CODE_MISMATCH = "tax_code_mismatch"
    """Envelope ``MST``, document ``MST`` and certificate ``UID=MST:`` disagree."""
    SUMMARY_SEQUENCE = "summary_sequence"
    """A second first summary for a day, a supplement without a first, or a repeated ``BSLThu``."""
    REJECTED = "rejected"
    """Rejected for a reason stated in the description."""


class RegistrationKind(StrEnum):
    """``HThuc`` of 01/ĐKTĐ-CTĐT."""

    NEW = "1"
    """Đăng ký mới: first registration, before the first receipt."""
    CHANGE = "2"
    """Thay đổi thông tin: e.g. a new or renewed certificate, another template."""


class TransmissionRoute(StrEnum):
    """How data reach the authority: the flags of ``HTGDLCTDT`` (confirmed names; what each
    means is read from its name, the official descriptions are not public)."""

    DIRECT = "CDLQCCQT"
    """Chuyển dữ liệu qua cổng của cơ quan thuế: through the tax authority's own portal (0.1
    called it CDLTTDCQT, "directly")."""
    VIA_PROVIDER = "CDLQTCTN"
    """Chuyển dữ liệu qua tổ chức cung cấp dịch vụ (T-VAN style): the usual path (domain.md)."""
    VIA_ENTRUSTED_PROVIDER = "CDLQTCTNUT"
    """Through a provider the collector entrusts (ủy thác) with sending its data."""


class TransmissionMode(StrEnum):
    """What is sent (``PThuc``, ours, not confirmed for e-documents): each receipt in full, or
    the daily summary 01/TH-BLĐT."""

    FULL = "CDDu"
    """Chuyển đầy đủ nội dung từng biên lai."""
    SUMMARY = "CBTHop"
    """Chuyển theo bảng tổng hợp 01/TH-BLĐT (Decree 254/2026 art. 29(3)(b))."""


class CertificateAction(StrEnum):
    """``CTS/HThuc`` of a registered certificate."""

    ADD = "1"
    """Thêm mới: start using this certificate."""
    RENEW = "2"
    """Gia hạn: the same certificate, renewed."""
    STOP = "3"
    """Ngừng sử dụng: stop using it."""


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One receipt in the daily summary 01/TH-BLĐT (one row of the form)."""

    template: str
    """``KHMCTu``: EBL01 or EBL02."""
    series: str
    """``KHCTu``: e.g. 26TAB."""
    number: int
    """``SCTu``: 1..99,999,999."""
    issued_on: date
    """``NLap``: the collector's local date of issue."""
    fee_name: str
    """``TKhoan``: the fee/charge name; several items joined with ``"; "``."""
    amount: int
    """``TgTTTBSo``: whole VND, the receipt total."""
    status: RowStatus = RowStatus.NEW
    exchange_rate: Decimal = _VND_RATE
    """``TGia``: 1, since receipts are in VND (Decree 254/2026 art. 23 item 9)."""
    adjusted_period: date | None = None
    """``KDLDChinh``: the day whose data this row corrects (for a replaced receipt)."""
    related: ReceiptReference | None = None
    """The replacing (for REPLACED) or replaced (for REPLACING) receipt, as printed."""
    explanation: str | None = None
    """``GThich``: why, in words (e.g. why the receipt was replaced)."""
    notes: str | None = None
    """``GChu``."""


@dataclass(frozen=True, slots=True)
class RegisteredCertificate:
    """A certificate declared in 01/ĐKTĐ-CTĐT: its CA, serial and validity."""

    issuer_name: str
    """``TTChuc``: the CA that issued it (its O, else CN)."""
    serial: str
    """``Seri``: upper-case hexadecimal."""
    valid_from: datetime
    valid_to: datetime
    action: CertificateAction = CertificateAction.ADD

    @classmethod
    def from_certificate(
        cls, certificate: x509.Certificate, action: CertificateAction = CertificateAction.ADD
    ) -> RegisteredCertificate:
        """Read what the form states from the certificate itself, so it cannot be mistyped."""
        issuer = certificate.issuer
        names = issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) or (
            issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
        value = names[0].value if names else issuer.rfc4514_string()
        name = value if isinstance(value, str) else value.decode("utf-8", "replace")
        return cls(
            issuer_name=name,
            serial=format(certificate.serial_number, "X"),
            valid_from=certificate.not_valid_before_utc,
            valid_to=certificate.not_valid_after_utc,
            action=action,
        )


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """``TTChung`` of a ``TDiep``: who sends what to whom."""

    version: str
    sender_code: str
    receiver_code: str
    message_type: str
    """``MLTDiep`` as written (may be a code we do not know: see :attr:`known_type`)."""
    message_id: str
    referenced_id: str | None
    """``MTDTChieu``: the message this one answers; ``None`` when empty."""
    tax_code: str | None
    count: int

    @property
    def format(self) -> MessageFormat | None:
        """The mapping its ``PBan`` names (``None``: none of ours)."""
        return for_version(self.version)

    @property
    def known_type(self) -> MessageType | None:
        """What ``MLTDiep`` means in this message's mapping; ``None`` when it means nothing."""
        fmt = self.format
        return None if fmt is None else fmt.kind(self.message_type)


@dataclass(frozen=True, slots=True)
class Message:
    """A read and envelope-validated ``TDiep``: the tree, its header and its documents."""

    root: etree._Element
    header: EnvelopeHeader
    documents: tuple[etree._Element, ...]


@dataclass(frozen=True, slots=True)
class Reason:
    """One ``LDo``: why a message was not received or not accepted."""

    code: str
    """``MLoi``; compare with :class:`ReasonCode` values."""
    description: str
    """``MTa``, for people."""


@dataclass(frozen=True, slots=True)
class TechnicalAck:
    """A 999 technical acknowledgement: was the message taken in?"""

    message_id: str
    """The acknowledgement's own ``MTDiep``."""
    referenced_id: str | None
    """The message acknowledged; ``None`` when it could not be read at all."""
    received: bool
    """``TTTNhan`` 0. Received is not accepted: the content is judged in the result."""
    received_at: str
    """``NNhan``: the receiver's local time, as written."""
    reasons: tuple[Reason, ...] = ()

    @property
    def duplicate(self) -> bool:
        """The receiver already holds this ``MTDiep`` with the same content."""
        return any(reason.code == ReasonCode.DUPLICATE for reason in self.reasons)


@dataclass(frozen=True, slots=True)
class DataCheckResult:
    """A result (204 / 111 / 301, or 110 "received"; 103 in 0.1): the authority on the content."""

    message_id: str
    referenced_id: str
    message_type: MessageType
    accepted: bool
    """``TTXNCQT`` 1 (for a "received" notice: received)."""
    tax_code: str | None
    """The taxpayer, when the judged message named one readably."""
    notified_on: date
    reasons: tuple[Reason, ...] = ()

    @property
    def final(self) -> bool:
        """A verdict, not the intermediate "received" notice (110) that precedes one."""
        return self.message_type not in RECEIVED_TYPE_FOR.values()


@dataclass(frozen=True, slots=True)
class AuthorityAnswers:
    """What one HTTP answer held: acknowledgements and results, in order."""

    acks: tuple[TechnicalAck, ...]
    results: tuple[DataCheckResult, ...]

    def ack_for(self, message_id: str) -> TechnicalAck | None:
        """The acknowledgement of ``message_id`` (or of an unreadable message, as a fallback)."""
        for ack in self.acks:
            if ack.referenced_id == message_id:
                return ack
        for ack in self.acks:
            if ack.referenced_id is None:
                return ack
        return None

    def result_for(self, message_id: str) -> DataCheckResult | None:
        """The verdict on ``message_id``; failing one, a "not received" notice (which settles
        the message as refused). A bare "received" is no verdict: ``None``."""
        mine = [r for r in self.results if r.referenced_id == message_id]
        for result in mine:
            if result.final:
                return result
        for result in mine:
            if not result.accepted:
                return result
        return None


@dataclass(frozen=True, slots=True)
class SummaryFacts:
    """What a (signed, validated) 01/TH-BLĐT states about itself: for checks and listings."""

    tax_code: str
    collector_name: str
    day: date
    first: bool
    supplement_no: int | None
    row_count: int
    total_amount: int


# --------------------------------------------------------------------------- helpers


def _clean(text: str) -> str:
    return " ".join(text.split())


def _sub(parent: etree._Element, tag: str, text: str | int) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = str(text) if isinstance(text, int) else _clean(text)
    return element


def _sub_opt(parent: etree._Element, tag: str, text: str | None) -> None:
    if text is not None and _clean(text):
        _sub(parent, tag, text)


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(tz)


def _decimal_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _check_code(value: str, what: str, document: str) -> None:
    if not _CODE_SHAPE.match(value):
        raise MessageInvalid(
            [f"{what} {value!r} must be 1-20 letters or digits"], document=document
        )


def new_message_id(sender_code: str) -> str:
    """``MTDiep``: the sender's code followed by 32 upper-case hex digits (a random UUID).

    Generated once per message and kept with it: re-sending the same bytes under the same id is
    what lets the authority recognise a duplicate instead of counting the data twice.
    """
    _check_code(sender_code, "sender code", "TDiep")
    return f"{sender_code}{uuid.uuid4().hex.upper()}"


_REASON_CODES: Final[dict[UntrustedXmlReason, ReasonCode]] = {
    UntrustedXmlReason.TOO_LARGE: ReasonCode.TOO_LARGE,
    UntrustedXmlReason.EMPTY: ReasonCode.MALFORMED,
    UntrustedXmlReason.MALFORMED: ReasonCode.MALFORMED,
    UntrustedXmlReason.DOCTYPE: ReasonCode.UNSAFE_XML,
    UntrustedXmlReason.ENTITY: ReasonCode.UNSAFE_XML,
}
"""How the service-wide refusal reasons read in an acknowledgement's ``MLoi``."""


def load_xml(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> etree._Element:
    """Parse untrusted bytes by the service's one set of rules
    (:func:`settings.untrusted_xml.parse_untrusted`: size, no DOCTYPE, no entities).

    The refusal is re-raised as this subpackage's own error so that the sandbox and the client
    can answer with a :class:`ReasonCode` without knowing the shared module.

    :raises UnsafeMessage: with ``code`` ``tax_message_unsafe``; ``extra["reason"]`` is a
        :class:`ReasonCode` value.
    """
    try:
        return parse_untrusted(data, what="XML", max_bytes=max_bytes)
    except UntrustedXmlError as exc:
        raise UnsafeMessage(str(exc), extra={"reason": _REASON_CODES[exc.reason]}) from exc


_schema = cache(load_schema)
"""Compiled once per process and file: compiling costs milliseconds, validating microseconds."""

_schema_lock = threading.Lock()
"""lxml keeps a validator's error log on the shared XMLSchema object: validate one at a time."""


def _validate(root: etree._Element, path: Path, document: str) -> None:
    schema = _schema(path)
    with _schema_lock:
        valid = schema.validate(root)
        # lxml-stubs declares _ErrorLog empty; at run time it iterates over _LogEntry objects.
        log = cast("Iterable[Any]", schema.error_log)
        errors = [f"line {entry.line}: {entry.message}" for entry in log]
    if not valid:
        raise MessageInvalid(errors or [f"does not match {path.name}"], document=document)


def _copy(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element), hardened_parser())


def message_bytes(root: etree._Element) -> bytes:
    """Serialise as sent and signed: UTF-8 with a declaration, never pretty-printed (whitespace
    inside signed data is signed)."""
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _signature_problems(document: etree._Element, *, signed: bool) -> list[str]:
    slot = document.find(_SIGNATURE_SLOT)
    if slot is None or len(slot) != 1 or slot[0].tag != _SIGNATURE_TAG:
        return [f"{_SIGNATURE_SLOT} must hold exactly one ds:Signature"]
    if signed and not (slot[0].findtext(f"{{{DS_NS}}}SignatureValue") or "").strip():
        return [f"the ds:Signature in {_SIGNATURE_SLOT} is not signed"]
    return []


def _signed_data(document: etree._Element) -> etree._Element | None:
    """The child that carries an ``Id`` (``DLBTHop``, ``DLTKhai``, ``DLTBao``), or the element
    itself when it is that child."""
    if document.get("Id") is not None:
        return document
    for child in document:
        if isinstance(child.tag, str) and child.get("Id") is not None:
            return child
    return None


def document_format(document: etree._Element) -> MessageFormat | None:
    """The mapping a document (or its signed data) is written in, from its ``PBan``
    (``TTChung/PBan``, or ``PBan`` directly under the signed data as in the 0.2 notice)."""
    data = _signed_data(document)
    if data is None:
        return None
    version = data.findtext("TTChung/PBan")
    if version is None:
        version = data.findtext("PBan")
    return for_version(version)


def _format_of(document: etree._Element, form: str) -> MessageFormat:
    fmt = document_format(document)
    if fmt is None:
        data = _signed_data(document)
        found = None if data is None else (data.findtext("TTChung/PBan") or data.findtext("PBan"))
        raise MessageInvalid([f"PBan {found!r} is not a version we know"], document=form)
    return fmt


def _sign(
    root: etree._Element, signed_id: str, key: KeySource, now: datetime, tz: ZoneInfo
) -> etree._Element:
    return sign_enveloped_fast(
        root, signed_id=signed_id, key=key, signing_time=now, tz=tz, copy=False
    )


def _placeholder(document: etree._Element) -> None:
    signatures = etree.SubElement(document, "DSCKS")
    taxpayer = etree.SubElement(signatures, "NNT")
    etree.SubElement(taxpayer, _SIGNATURE_TAG, Id=PLACEHOLDER_ID, nsmap={"ds": DS_NS})


# --------------------------------------------------------------------------- 01/TH-BLĐT


def _related_problems(index: int, row: SummaryRow) -> list[str]:
    if row.status is RowStatus.NEW and row.related is not None:
        return [f"row {index}: a new receipt has no related receipt"]
    if row.status is not RowStatus.NEW and row.related is None:
        return [f"row {index}: status {row.status.name} needs the related receipt"]
    return []


def build_summary_xml(
    *,
    signed_id: str,
    collector_name: str,
    tax_code: str,
    day: date,
    first: bool,
    supplement_no: int | None,
    rows: Sequence[SummaryRow],
    made_on: date,
    fmt: MessageFormat | None = None,
) -> etree._Element:
    """The unsigned 01/TH-BLĐT ``BTHDLieu`` with an empty signature placeholder in ``DSCKS/NNT``.

    Not validated here (see :func:`validate_summary_xml`), so a caller can inspect what it
    built. :func:`build_daily_summary` is the usual entry point. ``fmt`` (default
    :func:`current_format`) gives the ``PBan``; the element names are the same in both
    mappings (nothing of 01/TH-BLĐT itself has been confirmed).

    :raises MessageInvalid: ``first`` and ``supplement_no`` disagree, or a row's related
        receipt does not fit its status.
    """
    problems: list[str] = []
    if first and supplement_no is not None:
        problems.append("a first summary (LDau 1) has no supplement number")
    if not first and supplement_no is None:
        problems.append("a supplement (LDau 0) needs its supplement number BSLThu")
    for index, row in enumerate(rows, start=1):
        problems.extend(_related_problems(index, row))
    if problems:
        raise MessageInvalid(problems, document=SUMMARY_FORM)

    root = etree.Element("BTHDLieu")
    data = etree.SubElement(root, "DLBTHop", Id=signed_id)
    general = etree.SubElement(data, "TTChung")
    _sub(general, "PBan", (fmt or current()).document_version)
    _sub(general, "MSo", SUMMARY_FORM)
    _sub(general, "Ten", SUMMARY_NAME)
    _sub(general, "LKDLieu", _DAY_PERIOD)
    _sub(general, "KDLieu", day.isoformat())
    _sub(general, "LDau", "1" if first else "0")
    if supplement_no is not None:
        _sub(general, "BSLThu", supplement_no)
    _sub(general, "NLap", made_on.isoformat())
    _sub(general, "TNNT", collector_name)
    _sub(general, "MST", tax_code)

    content = etree.SubElement(data, "NDBTHDLieu")
    rows_element = etree.SubElement(content, "DSDLieu")
    for index, row in enumerate(rows, start=1):
        item = etree.SubElement(rows_element, "DLieu")
        _sub(item, "STT", index)
        _sub(item, "KHMCTu", row.template)
        _sub(item, "KHCTu", row.series)
        _sub(item, "SCTu", row.number)
        _sub(item, "NLap", row.issued_on.isoformat())
        _sub(item, "TKhoan", row.fee_name)
        _sub(item, "TgTTTBSo", row.amount)
        _sub(item, "TGia", _decimal_text(row.exchange_rate))
        _sub(item, "TThai", row.status.value)
        if row.adjusted_period is not None:
            _sub(item, "KDLDChinh", row.adjusted_period.isoformat())
        if row.related is not None:
            _sub(item, "KHMCTuCLQuan", row.related.template)
            _sub(item, "KHCTuCLQuan", row.related.series)
            _sub(item, "SCTuCLQuan", row.related.number)
            _sub(item, "NLCTuCLQuan", row.related.issued_on.isoformat())
        _sub_opt(item, "GThich", row.explanation)
        _sub_opt(item, "GChu", row.notes)

    _placeholder(root)
    return root


def validate_summary_xml(root: etree._Element, *, signed: bool = False) -> None:
    """Check a 01/TH-BLĐT (unsigned with its placeholder, or ``signed``) against its XSD and the
    rules XSD 1.0 cannot state: ``BSLThu`` exactly when ``LDau`` is 0, ``STT`` 1..n, a related
    receipt exactly on rows of status 2 and 3.

    The schema is that of the summary's mapping (its ``PBan``).

    :raises MessageInvalid: with the validator's lines.
    """
    fmt = _format_of(root, SUMMARY_FORM)
    _validate(root, fmt.schema("01-th-bldt"), SUMMARY_FORM)
    problems = _signature_problems(root, signed=signed)
    general = root.find("DLBTHop/TTChung")
    assert general is not None  # the schema requires it
    first = general.findtext("LDau") == "1"
    has_supplement = general.find("BSLThu") is not None
    if first and has_supplement:
        problems.append("a first summary (LDau 1) has no BSLThu")
    if not first and not has_supplement:
        problems.append("a supplement (LDau 0) needs BSLThu")
    for index, item in enumerate(root.iterfind("DLBTHop/NDBTHDLieu/DSDLieu/DLieu"), start=1):
        if item.findtext("STT") != str(index):
            problems.append(f"row {index}: STT is {item.findtext('STT')}, expected {index}")
        related = item.find("KHMCTuCLQuan") is not None
        status = item.findtext("TThai")
        if status == RowStatus.NEW and related:
            problems.append(f"row {index}: a new receipt has no related receipt")
        if status != RowStatus.NEW and not related:
            problems.append(f"row {index}: status {status} needs the related receipt")
    if problems:
        raise MessageInvalid(problems, document=SUMMARY_FORM)


def summary_facts(signed_data: etree._Element) -> SummaryFacts:
    """Read day, LDau/BSLThu, MST, row count and total from a validated summary.

    Accepts ``BTHDLieu`` or the signed ``DLBTHop`` alone, so that a verifier reads exactly what
    the signature covers.
    """
    data = signed_data if signed_data.tag == "DLBTHop" else signed_data.find("DLBTHop")
    if data is None:
        raise MessageInvalid(["no DLBTHop"], document=SUMMARY_FORM)
    supplement = data.findtext("TTChung/BSLThu")
    amounts = [int(e.text or "0") for e in data.iterfind("NDBTHDLieu/DSDLieu/DLieu/TgTTTBSo")]
    return SummaryFacts(
        tax_code=data.findtext("TTChung/MST") or "",
        collector_name=data.findtext("TTChung/TNNT") or "",
        day=date.fromisoformat(data.findtext("TTChung/KDLieu") or ""),
        first=data.findtext("TTChung/LDau") == "1",
        supplement_no=None if supplement is None else int(supplement),
        row_count=len(amounts),
        total_amount=sum(amounts),
    )


def build_daily_summary(
    *,
    sender_code: str,
    receiver_code: str,
    collector_name: str,
    tax_code: str,
    day: date,
    first: bool,
    supplement_no: int | None,
    rows: list[SummaryRow],
    key: KeySource,
    now: datetime,
    tz: ZoneInfo = VIETNAM_TZ,
    message_id: str | None = None,
    allow_development_certificate: bool = False,
    fmt: MessageFormat | None = None,
) -> bytes:
    """The daily summary 01/TH-BLĐT, signed by the collector, in a ``TDiep``, as bytes.

    ``fmt`` (default :func:`current_format`) gives the ``PBan`` and the message type (the
    configured, unconfirmed code; ``400`` by default).

    ``first`` is ``LDau`` (1 the first summary of ``day``, 0 a supplement, e.g. receipts found
    after an outage; domain.md); ``supplement_no`` is ``BSLThu`` (1, 2, ... for supplements,
    ``None`` for the first). ``now`` (timezone-aware) is the signing time and, in ``tz``, the
    date the summary was made. ``message_id`` defaults to a new :func:`new_message_id`; keep the
    returned bytes and re-send *them*, never a rebuilt message (a rebuilt one is signed anew
    and is different content under a new id).

    The certificate is checked first (validity at ``now``, key usage, ``UID=MST:`` equal to
    ``tax_code``, and development certificates only if allowed), because the authority would
    reject the summary anyway and a late rejection can miss the same-day deadline. The
    document is validated before and after signing, the envelope before returning.

    :raises MessageInvalid: bad input or a schema violation.
    :raises signing.errors.CertificateRejected: the key may not sign for ``tax_code``.
    """
    mid = message_id or new_message_id(sender_code)
    fmt = fmt or current()
    check_signing_certificate(
        key.certificate, tax_code, now, allow_development=allow_development_certificate
    )
    signed_id = f"BTH-{mid[-32:]}"
    root = build_summary_xml(
        signed_id=signed_id,
        collector_name=collector_name,
        tax_code=tax_code,
        day=day,
        first=first,
        supplement_no=supplement_no,
        rows=rows,
        made_on=_local(now, tz).date(),
        fmt=fmt,
    )
    validate_summary_xml(root)
    signed = _sign(root, signed_id, key, now, tz)
    validate_summary_xml(signed, signed=True)
    return wrap_document(
        MessageType.DAILY_SUMMARY,
        signed,
        sender_code=sender_code,
        receiver_code=receiver_code,
        tax_code=tax_code,
        message_id=mid,
        fmt=fmt,
    )


# --------------------------------------------------------------------------- 01/ĐKTĐ-CTĐT


def build_registration_xml(
    *,
    signed_id: str,
    collector_name: str,
    tax_code: str,
    tax_authority_name: str,
    templates: Sequence[str],
    certificates: Sequence[RegisteredCertificate],
    made_on: date,
    kind: RegistrationKind = RegistrationKind.NEW,
    route: TransmissionRoute = TransmissionRoute.VIA_PROVIDER,
    mode: TransmissionMode = TransmissionMode.SUMMARY,
    tax_authority_code: str | None = None,
    tz: ZoneInfo = VIETNAM_TZ,
    fmt: MessageFormat | None = None,
) -> etree._Element:
    """The unsigned registration 01/ĐKTĐ-CTĐT (``TKhai``) in mapping 0.2, placeholder in
    ``DSCKS/NNT``.

    Confirmed structure (Decision 1271/QĐ-CT, via iTaxViewer): ``NDTKhai`` with the ``LHSDung``
    flags (one per kind of e-document; ours are raised from ``templates``: EBL01 →
    ``BLTPLPKIn``, EBL02 → ``BLTPLPIn``), ``HTGDLCTDT`` (how data are sent, from ``route``) and
    ``DSCTSSDung/CTS`` (the certificates: use :meth:`RegisteredCertificate.from_certificate`).
    Ours, not confirmed: ``TTChung``'s children after ``PBan`` (the invoice registration's
    names) and ``PThuc`` (summary or full data, from ``mode``).

    :raises MessageInvalid: a template with no ``LHSDung`` flag, or a 0.1 ``fmt`` (registrations
        are no longer built in 0.1).
    """
    fmt = fmt or current()
    if fmt.legacy:
        raise MessageInvalid(["registrations are built in mapping 0.2 only"], document="TKhai")
    unknown = [t for t in templates if t not in REGISTRATION_FLAG_FOR_TEMPLATE]
    if unknown:
        raise MessageInvalid(
            [f"no LHSDung flag for receipt template {t!r}" for t in unknown],
            document=REGISTRATION_FORM,
        )
    raised = {REGISTRATION_FLAG_FOR_TEMPLATE[t] for t in templates}
    root = etree.Element("TKhai")
    data = etree.SubElement(root, "DLTKhai", Id=signed_id)
    general = etree.SubElement(data, "TTChung")
    _sub(general, "PBan", fmt.document_version)
    _sub(general, "MSo", REGISTRATION_FORM)
    _sub(general, "Ten", REGISTRATION_NAME)
    _sub(general, "HThuc", kind.value)
    _sub(general, "TNNT", collector_name)
    _sub(general, "MST", tax_code)
    _sub(general, "CQTQLy", tax_authority_name)
    _sub_opt(general, "MCQTQLy", tax_authority_code)
    _sub(general, "NLap", made_on.isoformat())

    content = etree.SubElement(data, "NDTKhai")
    kinds = etree.SubElement(content, "LHSDung")
    for flag in REGISTRATION_FLAGS:
        _sub(kinds, flag, "1" if flag in raised else "0")
    routes = etree.SubElement(content, "HTGDLCTDT")
    for option in TransmissionRoute:
        _sub(routes, option.value, "1" if option is route else "0")
    modes = etree.SubElement(content, "PThuc")
    for option_mode in TransmissionMode:
        _sub(modes, option_mode.value, "1" if option_mode is mode else "0")
    listed = etree.SubElement(content, "DSCTSSDung")
    for index, cert in enumerate(certificates, start=1):
        item = etree.SubElement(listed, "CTS")
        _sub(item, "STT", index)
        _sub(item, "TTChuc", cert.issuer_name)
        _sub(item, "Seri", cert.serial)
        _sub(item, "TNgay", _local(cert.valid_from, tz).strftime(_LOCAL_TIME_FORMAT))
        _sub(item, "DNgay", _local(cert.valid_to, tz).strftime(_LOCAL_TIME_FORMAT))
        _sub(item, "HThuc", cert.action.value)

    _placeholder(root)
    return root


def validate_registration_xml(root: etree._Element, *, signed: bool = False) -> None:
    """Check a 01/ĐKTĐ-CTĐT against the XSD of its mapping (by ``PBan``), its signature slot and
    what XSD 1.0 cannot say: 0.2 raises at least one receipt flag; 0.1 lists no template twice.

    :raises MessageInvalid: with the validator's lines.
    """
    fmt = _format_of(root, REGISTRATION_FORM)
    _validate(root, fmt.schema("01-dktd-ctdt"), REGISTRATION_FORM)
    problems = _signature_problems(root, signed=signed)
    if fmt.legacy:
        templates = [e.text for e in root.iterfind("DLTKhai/NDTKhai/LCTuSDung/KHMCTu")]
        if len(set(templates)) != len(templates):
            problems.append("a receipt template is listed twice")
    else:
        receipts = set(REGISTRATION_FLAG_FOR_TEMPLATE.values())
        flags = root.find("DLTKhai/NDTKhai/LHSDung")
        if flags is None or not any(flags.findtext(flag) == "1" for flag in receipts):
            problems.append("LHSDung raises no receipt flag (BLTPLPKIn or BLTPLPIn)")
    if problems:
        raise MessageInvalid(problems, document=REGISTRATION_FORM)


def build_registration(
    *,
    sender_code: str,
    receiver_code: str,
    collector_name: str,
    tax_code: str,
    tax_authority_name: str,
    templates: Sequence[str],
    certificates: Sequence[RegisteredCertificate],
    key: KeySource,
    now: datetime,
    kind: RegistrationKind = RegistrationKind.NEW,
    route: TransmissionRoute = TransmissionRoute.VIA_PROVIDER,
    mode: TransmissionMode = TransmissionMode.SUMMARY,
    tax_authority_code: str | None = None,
    tz: ZoneInfo = VIETNAM_TZ,
    message_id: str | None = None,
    allow_development_certificate: bool = False,
    fmt: MessageFormat | None = None,
) -> bytes:
    """The registration 01/ĐKTĐ-CTĐT, signed, in a ``TDiep`` (109), as bytes.

    Minimal on purpose (domain.md lists what it must state): receipt types (``templates``:
    the ``LHSDung`` flags), how data are sent (``route``, ``mode``), the certificates with CA,
    serial and validity (use :meth:`RegisteredCertificate.from_certificate` on the real
    certificate(s)). Checks as :func:`build_daily_summary`.
    """
    mid = message_id or new_message_id(sender_code)
    fmt = fmt or current()
    check_signing_certificate(
        key.certificate, tax_code, now, allow_development=allow_development_certificate
    )
    signed_id = f"TK-{mid[-32:]}"
    root = build_registration_xml(
        signed_id=signed_id,
        collector_name=collector_name,
        tax_code=tax_code,
        tax_authority_name=tax_authority_name,
        templates=templates,
        certificates=certificates,
        made_on=_local(now, tz).date(),
        kind=kind,
        route=route,
        mode=mode,
        tax_authority_code=tax_authority_code,
        tz=tz,
        fmt=fmt,
    )
    validate_registration_xml(root)
    signed = _sign(root, signed_id, key, now, tz)
    validate_registration_xml(signed, signed=True)
    return wrap_document(
        MessageType.REGISTRATION,
        signed,
        sender_code=sender_code,
        receiver_code=receiver_code,
        tax_code=tax_code,
        message_id=mid,
        fmt=fmt,
    )


# --------------------------------------------------------------------------- envelope


def _validate_error_notice(document: etree._Element) -> None:
    """04/SS-CTĐT is :mod:`einvoice.error_notice`'s document: its own validator (either mapping).

    Imported lazily: that module imports nothing of this package, and this one should not make
    receipts a dependency of every message.
    """
    from einvoice import error_notice

    try:
        error_notice.validate_error_notice_xml(document)
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        raise MessageInvalid(
            list(errors) if isinstance(errors, list) else [str(exc)], document="04/SS-CTĐT"
        ) from exc


def validate_document(
    message_type: MessageType,
    document: etree._Element,
    *,
    signed: bool = True,
    fmt: MessageFormat | None = None,
) -> None:
    """Check a document against what its message type carries: root, schema (of the document's
    own mapping), signature slot; and, when ``fmt`` (the envelope's) is given, that the document
    is of the envelope's mapping.

    :raises MessageInvalid: wrong root, schema violation, no (signed) signature, or a document
        of another mapping than its envelope.
    """
    expected = _DOCUMENT_ROOT.get(message_type)
    if expected is None:
        raise MessageInvalid([f"message type {message_type} carries no document we send"])
    if document.tag != expected:
        raise MessageInvalid(
            [f"message type {message_type} carries {expected}, not {document.tag}"]
        )
    if message_type is MessageType.DAILY_SUMMARY:
        validate_summary_xml(document, signed=signed)
    elif message_type is MessageType.REGISTRATION:
        validate_registration_xml(document, signed=signed)
    else:
        _validate_error_notice(document)
        problems = _signature_problems(document, signed=signed)
        if problems:
            raise MessageInvalid(problems, document="04/SS-CTĐT")
    inner = document_format(document)
    if fmt is not None and (inner is None or inner.mapping_version != fmt.mapping_version):
        found = "none" if inner is None else inner.mapping_version
        raise MessageInvalid(
            [f"a mapping {fmt.mapping_version} envelope carries a mapping {found} document"],
            document="TDiep",
        )


def _envelope(
    fmt: MessageFormat,
    message_type: MessageType,
    *,
    sender_code: str,
    receiver_code: str,
    message_id: str,
    referenced_id: str | None,
    tax_code: str | None,
    documents: Sequence[etree._Element],
) -> etree._Element:
    root = etree.Element("TDiep")
    general = etree.SubElement(root, "TTChung")
    _sub(general, "PBan", fmt.document_version)
    _sub(general, "MNGui", sender_code)
    _sub(general, "MNNhan", receiver_code)
    _sub(general, "MLTDiep", fmt.code(message_type))
    _sub(general, "MTDiep", message_id)
    etree.SubElement(general, "MTDTChieu").text = referenced_id or ""
    if tax_code is not None:
        _sub(general, "MST", tax_code)
    _sub(general, "SLuong", len(documents))
    data = etree.SubElement(root, "DLieu")
    for document in documents:
        data.append(document)
    return root


def wrap_document(
    message_type: MessageType,
    inner_signed_xml: bytes | etree._Element,
    *,
    sender_code: str,
    receiver_code: str,
    tax_code: str,
    message_id: str | None = None,
    referenced_message_id: str | None = None,
    fmt: MessageFormat | None = None,
) -> bytes:
    """Put one signed document into a ``TDiep`` of ``message_type`` and return the message bytes.

    For documents built elsewhere, e.g. the 04/SS-CTĐT of :mod:`einvoice.error_notice` (type
    :attr:`MessageType.ERROR_NOTICE`). The document is copied (never moved out of the caller's
    tree) and checked first: right root for the type, its schema, a signed ``ds:Signature`` in
    ``DSCKS/NNT``, and its ``MST`` equal to the envelope's. The envelope carries no namespace
    declarations or ``xml:*`` attributes, so the document's canonical form, and therefore its
    signature, is the same inside the envelope as alone.

    The envelope takes the document's mapping and ``PBan`` (:func:`document_format`, with the
    configured codes): a notice signed in 0.1 before the upgrade goes out in a 0.1 envelope
    (300), a 0.2 one in a 0.2 envelope (304), so the pair is always one the receiver can judge,
    and wrapping the same stored document again gives the same envelope (the settings' ``PBan``
    may have changed since). ``fmt`` imposes a format (its codes and ``PBan``) instead; the
    document must be of its mapping.

    :raises MessageInvalid: bad codes, or the document fails its checks.
    :raises UnsafeMessage: ``inner_signed_xml`` bytes are not safe XML.
    """
    _check_code(sender_code, "sender code", "TDiep")
    _check_code(receiver_code, "receiver code", "TDiep")
    mid = message_id or new_message_id(sender_code)
    if not _MESSAGE_ID_SHAPE.match(mid) or not mid.startswith(sender_code):
        raise MessageInvalid(
            [f"MTDiep {mid!r} must be the sender code followed by 32 upper-case hex digits"],
            document="TDiep",
        )
    document = (
        load_xml(inner_signed_xml)
        if isinstance(inner_signed_xml, bytes)
        else _copy(inner_signed_xml)
    )
    validate_document(message_type, document, signed=True, fmt=fmt)
    stated = document_tax_code(document)
    if stated is not None and stated != tax_code:
        raise MessageInvalid(
            [f"the document is for MST {stated}, the envelope for {tax_code}"], document="TDiep"
        )
    fmt = fmt or document_format(document)
    assert fmt is not None  # validate_document read its PBan
    root = _envelope(
        fmt,
        message_type,
        sender_code=sender_code,
        receiver_code=receiver_code,
        message_id=mid,
        referenced_id=referenced_message_id,
        tax_code=tax_code,
        documents=[document],
    )
    read_message_tree(root)
    return message_bytes(root)


def _header(root: etree._Element) -> EnvelopeHeader:
    general = root.find("TTChung")
    assert general is not None  # the schema requires it
    referenced = general.findtext("MTDTChieu") or ""
    return EnvelopeHeader(
        version=general.findtext("PBan") or "",
        sender_code=general.findtext("MNGui") or "",
        receiver_code=general.findtext("MNNhan") or "",
        message_type=general.findtext("MLTDiep") or "",
        message_id=general.findtext("MTDiep") or "",
        referenced_id=referenced or None,
        tax_code=general.findtext("MST"),
        count=int(general.findtext("SLuong") or "0"),
    )


def read_message_tree(root: etree._Element) -> Message:
    """Validate a ``TDiep`` tree against the envelope schema of its mapping (``tdiep-0.1.xsd``
    or ``tdiep-0.2.xsd``, by its ``PBan``) and the rules XSD cannot state.

    :raises MessageInvalid: with ``document`` ``TDiep``.
    """
    if root.tag != "TDiep":
        raise MessageInvalid([f"the root is {root.tag}, expected TDiep"], document="TDiep")
    version = root.findtext("TTChung/PBan")
    fmt = for_version(version)
    if fmt is None:
        raise MessageInvalid([f"PBan {version!r} is not a version we know"], document="TDiep")
    _validate(root, fmt.schema("tdiep"), "TDiep")
    header = _header(root)
    documents = tuple(child for child in root.iterfind("DLieu/*"))
    problems: list[str] = []
    if not header.message_id.startswith(header.sender_code):
        problems.append("MTDiep does not start with MNGui")
    if header.count != len(documents):
        problems.append(f"SLuong is {header.count} but DLieu holds {len(documents)} documents")
    if problems:
        raise MessageInvalid(problems, document="TDiep")
    return Message(root=root, header=header, documents=documents)


def read_message(data: bytes) -> Message:
    """Hardened parse and envelope validation of a ``TDiep``; documents are not validated.

    :raises UnsafeMessage: see :func:`load_xml`.
    :raises MessageInvalid: the envelope breaks its schema or rules.
    """
    return read_message_tree(load_xml(data))


def signed_data_of(message_type: MessageType, document: etree._Element) -> etree._Element | None:
    """The element the collector signs in a document of ``message_type`` (``DLBTHop``, ...)."""
    name = _SIGNED_DATA.get(message_type)
    return None if name is None else document.find(name)


def signed_data_tag(message_type: MessageType) -> str | None:
    """Tag of the element the signature must cover for ``message_type``."""
    return _SIGNED_DATA.get(message_type)


def document_tax_code(document: etree._Element) -> str | None:
    """The collector's ``MST`` stated in a document's signed data (or in the signed data itself):
    ``TTChung/MST``, or ``MST`` directly under it as in the 0.2 notice."""
    data = _signed_data(document)
    if data is None:
        return None
    stated = data.findtext("TTChung/MST")
    return stated if stated is not None else data.findtext("MST")


# --------------------------------------------------------------------------- answers


def _reasons_element(parent: etree._Element, reasons: Sequence[Reason]) -> None:
    if not reasons:
        return
    listed = etree.SubElement(parent, "DSLDo")
    for reason in reasons:
        item = etree.SubElement(listed, "LDo")
        _sub(item, "MLoi", reason.code)
        _sub(item, "MTa", reason.description[:1000])


def build_technical_ack(
    *,
    sender_code: str,
    referenced: EnvelopeHeader | None,
    received: bool,
    reasons: Sequence[Reason] = (),
    now: datetime,
    tz: ZoneInfo = VIETNAM_TZ,
    receiver_code: str | None = None,
) -> etree._Element:
    """A 999 ``TDiep`` from ``sender_code`` (the authority): taken in, or not and why.

    ``referenced`` is the header of the message acknowledged, ``None`` when it could not be
    read (then ``receiver_code`` names whom we answer, if known). The answer is in the
    acknowledged message's mapping; in the current one when that is unknown.
    """
    fmt = (None if referenced is None else referenced.format) or current()
    ack = etree.Element("TBao")
    if referenced is not None:
        _sub(ack, "MTDiep", referenced.message_id)
        _sub(ack, "MNGui", referenced.sender_code)
    _sub(ack, "NNhan", _local(now, tz).strftime(_LOCAL_TIME_FORMAT))
    _sub(ack, "TTTNhan", "0" if received else "1")
    _reasons_element(ack, reasons)
    to = referenced.sender_code if referenced is not None else (receiver_code or sender_code)
    return _envelope(
        fmt,
        MessageType.TECHNICAL_ACK,
        sender_code=sender_code,
        receiver_code=to,
        message_id=new_message_id(sender_code),
        referenced_id=None if referenced is None else referenced.message_id,
        tax_code=None if referenced is None else referenced.tax_code,
        documents=[ack],
    )


def build_result(
    *,
    sender_code: str,
    referenced: EnvelopeHeader,
    request_type: MessageType,
    tax_code: str | None,
    accepted: bool,
    reasons: Sequence[Reason] = (),
    now: datetime,
    tz: ZoneInfo = VIETNAM_TZ,
    result_type: MessageType | None = None,
) -> etree._Element:
    """A result ``TDiep`` on ``referenced``: accepted, or not and why.

    ``result_type`` defaults to the verdict on ``request_type`` (:data:`RESULT_TYPE_FOR`); give
    the "received" type (:data:`RECEIVED_TYPE_FOR`, 110) for the intermediate notice. The answer
    is in the request's mapping, so its code is the one that mapping gives the result (204 /
    111 / 301 / 110; 103 in 0.1).

    :raises MessageInvalid: the request's mapping has no such result (e.g. 110 in 0.1).
    """
    kind = result_type or RESULT_TYPE_FOR[request_type]
    fmt = referenced.format or current()
    if kind not in fmt.codes:
        raise MessageInvalid([f"mapping {fmt.mapping_version} has no {kind} message"])
    notice = etree.Element("TBao")
    data = etree.SubElement(notice, "DLTBao")
    _sub(data, "PBan", fmt.document_version)
    _sub(data, "MSo", RESULT_FORM)
    _sub(data, "Ten", RESULT_NAME)
    if tax_code:
        _sub(data, "MST", tax_code)
    _sub(data, "MTDTChieu", referenced.message_id)
    _sub(data, "NTBao", _local(now, tz).date().isoformat())
    _sub(data, "TTXNCQT", "1" if accepted else "2")
    _reasons_element(data, reasons)
    return _envelope(
        fmt,
        kind,
        sender_code=sender_code,
        receiver_code=referenced.sender_code,
        message_id=new_message_id(sender_code),
        referenced_id=referenced.message_id,
        tax_code=tax_code,
        documents=[notice],
    )


def _validate_answers(wrapper: etree._Element) -> None:
    """A ``DSTDiep`` against the envelope schema of its messages' mapping (the first one's
    ``PBan``; the schema then refuses a list that mixes mappings)."""
    fmt = for_version(wrapper.findtext("TDiep/TTChung/PBan")) or current()
    _validate(wrapper, fmt.schema("tdiep"), "DSTDiep")


def answers_bytes(messages: Sequence[etree._Element]) -> bytes:
    """The body of an HTTP answer: ``DSTDiep`` holding ``messages`` (copies), validated."""
    wrapper = etree.Element("DSTDiep")
    for message in messages:
        wrapper.append(_copy(message))
    _validate_answers(wrapper)
    return message_bytes(wrapper)


def _reasons(parent: etree._Element) -> tuple[Reason, ...]:
    return tuple(
        Reason(code=item.findtext("MLoi") or "", description=item.findtext("MTa") or "")
        for item in parent.iterfind("DSLDo/LDo")
    )


def _technical_ack(message: Message) -> TechnicalAck:
    if len(message.documents) != 1:
        raise MessageInvalid(["a 999 carries exactly one TBao"], document="999")
    ack = message.documents[0]
    fmt = message.header.format or current()
    _validate(ack, fmt.schema("tdiep-ack"), "999")
    return TechnicalAck(
        message_id=message.header.message_id,
        referenced_id=message.header.referenced_id or ack.findtext("MTDiep"),
        received=ack.findtext("TTTNhan") == "0",
        received_at=ack.findtext("NNhan") or "",
        reasons=_reasons(ack),
    )


def _data_check_result(message: Message, message_type: MessageType) -> DataCheckResult:
    if len(message.documents) != 1:
        raise MessageInvalid(["a result carries exactly one TBao"], document=message_type.value)
    notice = message.documents[0]
    fmt = message.header.format or current()
    _validate(notice, fmt.schema("tdiep-result"), message_type.value)
    data = notice.find("DLTBao")
    assert data is not None  # the schema requires it
    return DataCheckResult(
        message_id=message.header.message_id,
        referenced_id=data.findtext("MTDTChieu") or "",
        message_type=message_type,
        accepted=data.findtext("TTXNCQT") == "1",
        tax_code=data.findtext("MST"),
        notified_on=date.fromisoformat(data.findtext("NTBao") or ""),
        reasons=_reasons(data),
    )


def parse_answers(data: bytes) -> AuthorityAnswers:
    """Read an HTTP answer (``DSTDiep``, or a lone ``TDiep``): its 999s and results.

    Answers are untrusted input like any other: hardened parse, then each message and its
    ``TBao`` against their schemas. Message types we do not know are skipped, so that the
    authority may add messages without breaking us.

    :raises UnsafeMessage: see :func:`load_xml`.
    :raises MessageInvalid: an answer of a known type breaks its schema.
    """
    root = load_xml(data)
    if root.tag == "DSTDiep":
        _validate_answers(root)
        trees = [_copy(child) for child in root.iterfind("TDiep")]
    else:
        trees = [root]
    acks: list[TechnicalAck] = []
    results: list[DataCheckResult] = []
    for tree in trees:
        message = read_message_tree(tree)
        kind = message.header.known_type
        if kind is MessageType.TECHNICAL_ACK:
            acks.append(_technical_ack(message))
        elif kind is not None and kind in _RESULT_TYPES:
            results.append(_data_check_result(message, kind))
    return AuthorityAnswers(acks=tuple(acks), results=tuple(results))
