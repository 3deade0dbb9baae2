"""Form 04/SS-CTĐT: the collector's notice to the tax office of receipts with errors.

Circular 91/2026 art. 20: an error in the payer's name or address, or in the amount in words,
that touches neither the tax code nor the amount is **not** corrected by reissuing. The
collector tells the payer and notifies the tax office on form 04/SS-CTĐT; receipt numbers and
the signed receipts stay as they are.

**This is not the official format** (as for receipts, see :mod:`einvoice.receipt_xml`): the
tax authority's schema for 04/SS-CTĐT could not be obtained. It is modelled on the e-invoice
error notice 04/SS-HĐĐT (``TBao``/``DLTBao``): ``TTChung`` carries the form number, the tax
authority, the collector (``TNNT``, ``MST``), the place (``DDanh``) and date (``NTBao``);
``NDTBao/DSCTu/CTu`` lists each receipt by the names receipts use (``KHMCTu``, ``KHCTu``,
``SCTu``, ``NLap``) with the kind of notice (``TCTBao``) and the reason (``LDo``). The signature
is the collector's, in ``DSCKS/NNT`` (a taxpayer's declaration). The schema is
``einvoice/schemas/04-ss-ctdt-0.1.xsd``, version :data:`SCHEMA_VERSION`; every element name
lives in this module only.

``TCTBao`` keeps the invoice family's codes (1 cancel, 2 adjust, 3 replace, 4 explain); only
``4`` (giải trình, explanation) exists for receipts, since they have no cancel or adjustment and
a replacement is itself the correction. ``Loai`` 1 is a notice on the collector's own initiative;
answering a tax office's request (``Loai`` 2, with its notice number) is not modelled yet.

The document travels to the tax authority inside a ``TDiep`` envelope (message type 300 by
analogy with invoices); that is the tax-authority client's business (issue 5), not this module's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from lxml import etree

from einvoice.document import Collector
from einvoice.receipt_xml import ReceiptSchemaError, load_receipt_xml

__all__ = [
    "FORM_NAME",
    "FORM_NUMBER",
    "NOTICE_ORIGIN_OWN",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "ErrorNoticeDocument",
    "NoticeEntry",
    "NoticeKind",
    "ParsedErrorNotice",
    "build_error_notice_xml",
    "load_error_notice_xml",
    "notice_from_element",
    "signed_id_for_notice",
    "validate_error_notice_xml",
]

SCHEMA_VERSION: Final = "0.1"
SCHEMA_PATH: Final = Path(__file__).with_name("schemas") / f"04-ss-ctdt-{SCHEMA_VERSION}.xsd"
FORM_NUMBER: Final = "04/SS-CTĐT"
FORM_NAME: Final = "Thông báo chứng từ điện tử có sai sót"
NOTICE_ORIGIN_OWN: Final = "1"
"""``Loai`` 1: the collector notifies on its own initiative (not in reply to the tax office)."""

_ID_PREFIX: Final = "notice-"
_DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
_SIGNATURE_TAG: Final = f"{{{_DS_NS}}}Signature"
_PLACEHOLDER_ID: Final = "placeholder"


class NoticeKind(StrEnum):
    """``TCTBao``, tính chất thông báo: the invoice family's codes, restricted to receipts."""

    EXPLANATION = "4"
    """Giải trình: the receipt stays in force; the tax office is told what was wrong."""

    @property
    def label_vi(self) -> str:
        return {NoticeKind.EXPLANATION: "Giải trình"}[self]


@dataclass(frozen=True, slots=True)
class NoticeEntry:
    """One receipt the notice is about, named by what it printed."""

    template: str
    series: str
    number: int
    issued_on: date
    reason: str
    kind: NoticeKind = NoticeKind.EXPLANATION


@dataclass(frozen=True, slots=True)
class ErrorNoticeDocument:
    """Everything the 04/SS-CTĐT XML states, before signing."""

    notice_id: str
    collector: Collector
    tax_authority_name: str
    place: str
    """Địa danh: where the notice is made (e.g. the district), printed before the date."""
    notified_at: datetime
    """Timezone-aware; ``NTBao`` is its date in the collector's time zone."""
    entries: tuple[NoticeEntry, ...]
    tax_authority_code: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedErrorNotice:
    """What a 04/SS-CTĐT document states, read back from its signed element."""

    schema_version: str
    notice_id: str
    form_number: str
    tax_authority_name: str
    tax_authority_code: str | None
    collector_name: str
    tax_code: str
    place: str
    notified_on: date
    entries: tuple[NoticeEntry, ...]


def signed_id_for_notice(notice_id: str) -> str:
    """``Id`` of ``DLTBao``, the element the collector signs."""
    return f"{_ID_PREFIX}{notice_id}"


def _clean(text: str) -> str:
    return " ".join(text.split())


def _sub(parent: etree._Element, tag: str, text: str | int) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = str(text) if isinstance(text, int) else _clean(text)
    return element


def build_error_notice_xml(doc: ErrorNoticeDocument) -> etree._Element:
    """The unsigned notice: ``TBao`` with an empty ``ds:Signature`` placeholder in ``DSCKS/NNT``.

    :raises ValueError: ``notified_at`` is naive.
    """
    if doc.notified_at.tzinfo is None or doc.notified_at.utcoffset() is None:
        raise ValueError("ErrorNoticeDocument.notified_at must be timezone-aware")
    local = doc.notified_at.astimezone(ZoneInfo(doc.collector.time_zone))

    root = etree.Element("TBao")
    data = etree.SubElement(root, "DLTBao", Id=signed_id_for_notice(doc.notice_id))
    general = etree.SubElement(data, "TTChung")
    _sub(general, "PBan", SCHEMA_VERSION)
    _sub(general, "MSo", FORM_NUMBER)
    _sub(general, "Ten", FORM_NAME)
    _sub(general, "Loai", NOTICE_ORIGIN_OWN)
    if doc.tax_authority_code and _clean(doc.tax_authority_code):
        _sub(general, "MCQT", doc.tax_authority_code)
    _sub(general, "TCQT", doc.tax_authority_name)
    _sub(general, "TNNT", doc.collector.name)
    _sub(general, "MST", doc.collector.tax_code)
    _sub(general, "DDanh", doc.place)
    _sub(general, "NTBao", local.date().isoformat())

    content = etree.SubElement(data, "NDTBao")
    receipts = etree.SubElement(content, "DSCTu")
    for index, entry in enumerate(doc.entries, start=1):
        item = etree.SubElement(receipts, "CTu")
        _sub(item, "STT", index)
        _sub(item, "KHMCTu", entry.template)
        _sub(item, "KHCTu", entry.series)
        _sub(item, "SCTu", entry.number)
        _sub(item, "NLap", entry.issued_on.isoformat())
        _sub(item, "TCTBao", entry.kind.value)
        _sub(item, "LDo", entry.reason)

    signatures = etree.SubElement(root, "DSCKS")
    taxpayer = etree.SubElement(signatures, "NNT")
    etree.SubElement(taxpayer, _SIGNATURE_TAG, Id=_PLACEHOLDER_ID, nsmap={"ds": _DS_NS})
    return root


@cache
def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.fromstring(SCHEMA_PATH.read_bytes(), parser))


_schema_lock = threading.Lock()
"""lxml keeps a validator's error log on the shared XMLSchema object: validate one at a time."""


def validate_error_notice_xml(root: etree._Element) -> None:
    """Check a notice (unsigned with the placeholder, or signed) against :data:`SCHEMA_PATH`.

    :raises ReceiptSchemaError: with the validator's messages.
    """
    schema = _schema()
    with _schema_lock:
        valid = schema.validate(root)
        log = cast("Iterable[Any]", schema.error_log)
        errors = [f"line {entry.line}: {entry.message}" for entry in log]
    if not valid:
        raise ReceiptSchemaError(errors or ["document does not match the 04/SS-CTĐT schema"])
    slot = root.find("DSCKS/NNT")
    if slot is None or len(slot) != 1 or slot[0].tag != _SIGNATURE_TAG:
        raise ReceiptSchemaError(["DSCKS/NNT must hold exactly one ds:Signature"])


def load_error_notice_xml(xml_bytes: bytes) -> etree._Element:
    """Hardened parse (no DOCTYPE, no entities, size-capped), as for receipts; no validation.

    :raises einvoice.receipt_xml.UnsafeXmlError: refused before or while reading.
    """
    return load_receipt_xml(xml_bytes)


def _text(parent: etree._Element, path: str) -> str:
    value = parent.findtext(path)
    if value is None:
        raise ReceiptSchemaError([f"missing {path}"])
    return value


def notice_from_element(element: etree._Element) -> ParsedErrorNotice:
    """The fields of a validated notice; accepts ``TBao`` or the signed ``DLTBao`` alone."""
    data = element if element.tag == "DLTBao" else element.find("DLTBao")
    if data is None:
        raise ReceiptSchemaError([f"no DLTBao element under {element.tag!r}"])
    signed_id = data.get("Id", "")
    if not signed_id.startswith(_ID_PREFIX):
        raise ReceiptSchemaError([f"DLTBao Id {signed_id!r} does not start with {_ID_PREFIX!r}"])
    general = "TTChung/"
    entries = tuple(
        NoticeEntry(
            template=_text(item, "KHMCTu"),
            series=_text(item, "KHCTu"),
            number=int(_text(item, "SCTu")),
            issued_on=date.fromisoformat(_text(item, "NLap")),
            reason=_text(item, "LDo"),
            kind=NoticeKind(_text(item, "TCTBao")),
        )
        for item in data.iterfind("NDTBao/DSCTu/CTu")
    )
    return ParsedErrorNotice(
        schema_version=_text(data, general + "PBan"),
        notice_id=signed_id.removeprefix(_ID_PREFIX),
        form_number=_text(data, general + "MSo"),
        tax_authority_name=_text(data, general + "TCQT"),
        tax_authority_code=data.findtext(general + "MCQT"),
        collector_name=_text(data, general + "TNNT"),
        tax_code=_text(data, general + "MST"),
        place=_text(data, general + "DDanh"),
        notified_on=date.fromisoformat(_text(data, general + "NTBao")),
        entries=entries,
    )
