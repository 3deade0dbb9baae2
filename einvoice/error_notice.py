"""Form 04/SS-CTĐT: the collector's notice to the tax office of receipts with errors.

Circular 91/2026 art. 20: an error in the payer's name or address, or in the amount in words,
that touches neither the tax code nor the amount is **not** corrected by reissuing. The
collector tells the payer and notifies the tax office on form 04/SS-CTĐT; receipt numbers and
the signed receipts stay as they are.

Notices are written in **mapping 0.2**, the structure the tax authority's viewer confirms
(Decision 1271/QĐ-CT; domain.md, "What is now confirmed of the official formats"): root ``TBao``
→ signed ``DLTBao`` holding ``PBan``, the kind of notice ``Loai`` and the list ``DSCTu/CTu``,
each receipt with ``STT``, ``KHMSCTu`` (template), ``KHCTu``, ``SCTu``, ``NLap``, ``LCTDT``
(kind of e-document) and ``LDo`` (reason). ``PBan`` is the official version (2.1.0, or 2.1.1).
**Not confirmed**, ours: the other header elements, named as in the e-invoice notice
04/SS-HĐĐT (``MSo``, ``Ten``, ``MCQT``, ``TCQT``, ``TNNT``, ``MST``, ``DDanh``, ``NTBao``), the
collector's signature slot ``DSCKS/NNT`` (a taxpayer's declaration), and which ``LCTDT`` a
template is (:data:`einvoice.official.DOCUMENT_KIND_FOR_TEMPLATE`). Schema
``einvoice/schemas/04-ss-ctdt-0.2.xsd``.

**Mapping 0.1** (``04-ss-ctdt-0.1.xsd``, ``PBan`` 0.1) was ours: ``DLTBao/TTChung`` and
``NDTBao/DSCTu/CTu`` with ``KHMCTu`` and the invoice family's ``TCTBao`` (4, explanation). It is
no longer written, but notices signed in it are still read, validated and sent exactly as signed
(a notice queued before the upgrade goes out unchanged).

``Loai`` 1 is a notice on the collector's own initiative; answering a tax office's request
(``Loai`` 2, with its notice number) is not modelled yet. The notice travels inside a ``TDiep``
(message type 304 in mapping 0.2, 300 in 0.1): the tax-authority client's business.
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
from einvoice.official import (
    DEFAULT_DOCUMENT_VERSION,
    DOCUMENT_KIND_FOR_TEMPLATE,
    DOCUMENT_VERSIONS,
    LEGACY_VERSION,
)
from einvoice.receipt_common import SCHEMAS, ReceiptSchemaError
from einvoice.receipt_xml import load_receipt_xml
from settings.untrusted_xml import load_schema

__all__ = [
    "FORM_NAME",
    "FORM_NUMBER",
    "NOTICE_ORIGIN_OWN",
    "SCHEMA_PATH",
    "SCHEMA_PATHS",
    "SCHEMA_VERSION",
    "ErrorNoticeDocument",
    "NoticeEntry",
    "NoticeKind",
    "ParsedErrorNotice",
    "build_error_notice_xml",
    "load_error_notice_xml",
    "notice_from_element",
    "notice_mapping",
    "signed_id_for_notice",
    "validate_error_notice_xml",
]

SCHEMA_VERSION: Final = "0.2"
"""The mapping new notices are written in."""
SCHEMA_PATHS: Final[dict[str, Path]] = {
    version: SCHEMAS / f"04-ss-ctdt-{version}.xsd" for version in ("0.1", SCHEMA_VERSION)
}
SCHEMA_PATH: Final = SCHEMA_PATHS[SCHEMA_VERSION]
FORM_NUMBER: Final = "04/SS-CTĐT"
FORM_NAME: Final = "Thông báo chứng từ điện tử có sai sót"
NOTICE_ORIGIN_OWN: Final = "1"
"""``Loai`` 1: the collector notifies on its own initiative (not in reply to the tax office)."""

_ID_PREFIX: Final = "notice-"
_DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
_SIGNATURE_TAG: Final = f"{{{_DS_NS}}}Signature"
_PLACEHOLDER_ID: Final = "placeholder"


class NoticeKind(StrEnum):
    """``TCTBao`` of mapping 0.1, tính chất thông báo: the invoice family's codes, restricted to
    receipts. Mapping 0.2 has no such element (the confirmed ``CTu`` states ``LCTDT`` instead)."""

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
    kind: NoticeKind | None = None
    """``TCTBao``, as read from a 0.1 notice; not written in 0.2."""
    document_kind: str | None = None
    """``LCTDT`` as read from a 0.2 notice; written from the template."""


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
    document_version: str = DEFAULT_DOCUMENT_VERSION
    """``PBan``: the official document version (2.1.0 or 2.1.1)."""


@dataclass(frozen=True, slots=True)
class ParsedErrorNotice:
    """What a 04/SS-CTĐT document states, read back from its signed element (either mapping)."""

    schema_version: str
    """Our mapping: ``0.1`` or ``0.2``."""
    notice_id: str
    form_number: str
    tax_authority_name: str
    tax_authority_code: str | None
    collector_name: str
    tax_code: str
    place: str
    notified_on: date
    entries: tuple[NoticeEntry, ...]
    document_version: str | None = None
    """``PBan`` as written."""


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
    """The unsigned 0.2 notice: ``TBao`` with an empty ``ds:Signature`` placeholder in
    ``DSCKS/NNT``.

    :raises ValueError: ``notified_at`` is naive, or a template has no known ``LCTDT``.
    """
    if doc.notified_at.tzinfo is None or doc.notified_at.utcoffset() is None:
        raise ValueError("ErrorNoticeDocument.notified_at must be timezone-aware")
    local = doc.notified_at.astimezone(ZoneInfo(doc.collector.time_zone))

    root = etree.Element("TBao")
    data = etree.SubElement(root, "DLTBao", Id=signed_id_for_notice(doc.notice_id))
    _sub(data, "PBan", doc.document_version)
    _sub(data, "MSo", FORM_NUMBER)
    _sub(data, "Ten", FORM_NAME)
    _sub(data, "Loai", NOTICE_ORIGIN_OWN)
    if doc.tax_authority_code and _clean(doc.tax_authority_code):
        _sub(data, "MCQT", doc.tax_authority_code)
    _sub(data, "TCQT", doc.tax_authority_name)
    _sub(data, "TNNT", doc.collector.name)
    _sub(data, "MST", doc.collector.tax_code)
    _sub(data, "DDanh", doc.place)
    _sub(data, "NTBao", local.date().isoformat())

    receipts = etree.SubElement(data, "DSCTu")
    for index, entry in enumerate(doc.entries, start=1):
        kind = DOCUMENT_KIND_FOR_TEMPLATE.get(entry.template)
        if kind is None:
            raise ValueError(f"no LCTDT for receipt template {entry.template!r}")
        item = etree.SubElement(receipts, "CTu")
        _sub(item, "STT", index)
        _sub(item, "KHMSCTu", entry.template)
        _sub(item, "KHCTu", entry.series)
        _sub(item, "SCTu", entry.number)
        _sub(item, "NLap", entry.issued_on.isoformat())
        _sub(item, "LCTDT", kind)
        _sub(item, "LDo", entry.reason)

    signatures = etree.SubElement(root, "DSCKS")
    taxpayer = etree.SubElement(signatures, "NNT")
    etree.SubElement(taxpayer, _SIGNATURE_TAG, Id=_PLACEHOLDER_ID, nsmap={"ds": _DS_NS})
    return root


def notice_mapping(element: etree._Element) -> str:
    """``0.1`` or ``0.2``: the mapping of a notice (``TBao`` or its ``DLTBao``), by its ``PBan``.

    :raises ReceiptSchemaError: no ``DLTBao``, or a ``PBan`` neither mapping writes.
    """
    data = element if element.tag == "DLTBao" else element.find("DLTBao")
    if data is None:
        raise ReceiptSchemaError([f"no DLTBao element under {element.tag!r}"])
    if data.findtext("TTChung/PBan") == LEGACY_VERSION:
        return "0.1"
    version = data.findtext("PBan")
    if version in DOCUMENT_VERSIONS:
        return SCHEMA_VERSION
    raise ReceiptSchemaError([f"PBan {version!r} is not a 04/SS-CTĐT version we know"])


_schema = cache(load_schema)
"""Compiled once per process and file: compiling costs milliseconds, validating microseconds."""

_schema_lock = threading.Lock()
"""lxml keeps a validator's error log on the shared XMLSchema object: validate one at a time."""


def validate_error_notice_xml(root: etree._Element) -> None:
    """Check a notice (unsigned with the placeholder, or signed) against the schema of its
    mapping (by ``PBan``; an unknown one is checked against 0.2, whose messages say why).

    :raises ReceiptSchemaError: with the validator's messages.
    """
    try:
        version = notice_mapping(root)
    except ReceiptSchemaError:
        version = SCHEMA_VERSION
    schema = _schema(SCHEMA_PATHS[version])
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
    """Read by the same rules and with the same refusal as a receipt: a notice is the same kind
    of signed legal document, so it gets no rules of its own. No validation.

    :raises einvoice.receipt_xml.UnsafeXmlError: refused before or while reading.
    """
    return load_receipt_xml(xml_bytes)


def _text(parent: etree._Element, path: str) -> str:
    value = parent.findtext(path)
    if value is None:
        raise ReceiptSchemaError([f"missing {path}"])
    return value


def notice_from_element(element: etree._Element) -> ParsedErrorNotice:
    """The fields of a validated notice in either mapping; accepts ``TBao`` or the signed
    ``DLTBao`` alone."""
    data = element if element.tag == "DLTBao" else element.find("DLTBao")
    if data is None:
        raise ReceiptSchemaError([f"no DLTBao element under {element.tag!r}"])
    signed_id = data.get("Id", "")
    if not signed_id.startswith(_ID_PREFIX):
        raise ReceiptSchemaError([f"DLTBao Id {signed_id!r} does not start with {_ID_PREFIX!r}"])
    version = notice_mapping(data)
    if version == "0.1":
        general, items, template = "TTChung/", "NDTBao/DSCTu/CTu", "KHMCTu"
    else:
        general, items, template = "", "DSCTu/CTu", "KHMSCTu"
    entries = tuple(
        NoticeEntry(
            template=_text(item, template),
            series=_text(item, "KHCTu"),
            number=int(_text(item, "SCTu")),
            issued_on=date.fromisoformat(_text(item, "NLap")),
            reason=_text(item, "LDo"),
            kind=None if item.find("TCTBao") is None else NoticeKind(_text(item, "TCTBao")),
            document_kind=item.findtext("LCTDT"),
        )
        for item in data.iterfind(items)
    )
    return ParsedErrorNotice(
        schema_version=version,
        notice_id=signed_id.removeprefix(_ID_PREFIX),
        form_number=_text(data, general + "MSo"),
        tax_authority_name=_text(data, general + "TCQT"),
        tax_authority_code=data.findtext(general + "MCQT"),
        collector_name=_text(data, general + "TNNT"),
        tax_code=_text(data, general + "MST"),
        place=_text(data, general + "DDanh"),
        notified_on=date.fromisoformat(_text(data, general + "NTBao")),
        entries=entries,
        document_version=_text(data, general + "PBan"),
    )
