"""The XML legal original of a receipt: build it, validate it, read it back safely.

**This is not the official format.** The tax authority's data format for e-receipts
(Decision 1306/QĐ-CT, envelope PBan 2.1.0) could not be obtained. Until it is, receipts are
written in our own format :data:`SCHEMA_VERSION` ``0.1`` (``einvoice/schemas/bien-lai-0.1.xsd``),
modelled on the tax authority's e-invoice family: no XML namespace; a signed data element with
an ``Id`` (``DLBLai`` like ``DLHDon``); ``TTChung`` general information; the content in
``NDBLai`` (``NThu`` collector, ``NNop`` payer, ``DSKhoan/Khoan`` items like ``DSHHDVu/HHDVu``,
``TToan`` totals with ``TgTTTBSo``/``TgTTTBChu``); signatures in ``DSCKS/NBan``. The template,
series, number and date use the e-document names known for certain (``KHMCTu``, ``KHCTu``,
``SCTu``, ``NLap``, ``MST``); the receipt name is ``TCTu`` ("tên chứng từ", as the other names
of that family) rather than the e-invoice ``THDon``.

Every element name lives in this module and nowhere else, so that moving to the official schema
means a new schema file, a new :data:`SCHEMA_VERSION` and new mapping code here, while receipts
already signed keep validating against the version they were issued under.

Decisions that are ours, not the tax authority's:

* ``SCTu`` is written without padding (``123``, not ``00000123``), as e-invoices write ``SHDon``.
* ``NLap``/``GLap`` are the collector's local date and time (``Collector.time_zone``), without a
  zone: the receipt date is the local calendar day on which the money was collected, and the
  daily summary 01/TH-BLĐT groups by that day.
* Text is whitespace-normalised (trimmed, runs of blanks and newlines collapsed to one space):
  the legal original must not differ from what is displayed because of invisible characters.
* The payer's e-mail and phone are not written: they are contact data, not receipt content
  (Decree 254/2026 art. 23), and the signed XML is shown on a public verification page.
* ``replaces`` is written as the original receipt's id (``TTBLLQuan/MBLGoc``) and, when the
  document carries :attr:`~einvoice.document.ReceiptDocument.replaces_reference`, followed by
  what the original printed: template, series, number and date (``KHMCTuCLQuan``,
  ``KHCTuCLQuan``, ``SCTuCLQuan``, ``NLCTuCLQuan``, named after the e-invoice family's
  ``TTHDLQuan/KHMSHDCLQuan``...). The id alone means nothing to a payer or a tax officer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from lxml import etree

from einvoice.amount_words import amount_in_words
from einvoice.document import FeeKind, ReceiptDocument, ReceiptReference

__all__ = [
    "MAX_XML_BYTES",
    "RECEIPT_NAME",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SIGNATURE_PLACEHOLDER_ID",
    "XMLDSIG_NS",
    "ParsedLine",
    "ParsedReceipt",
    "ReceiptSchemaError",
    "UnsafeXmlError",
    "build_receipt_xml",
    "load_receipt_xml",
    "parse_receipt_xml",
    "receipt_from_element",
    "receipt_xml_bytes",
    "signed_id_for",
    "validate_receipt_xml",
]

SCHEMA_VERSION: Final = "0.1"
"""Our receipt data format version, written in ``TTChung/PBan``; equals the XSD's ``PBan``."""

SCHEMA_PATH: Final = Path(__file__).with_name("schemas") / f"bien-lai-{SCHEMA_VERSION}.xsd"
"""The XSD that documents of :data:`SCHEMA_VERSION` validate against (shipped as package data).

Found next to this module rather than through ``importlib.resources``: under pytest's default
import mode the ``tests/einvoice`` folder can make ``einvoice`` a namespace package, whose
resources are not this folder.
"""

RECEIPT_NAME: Final = "Biên lai thu phí, lệ phí"
"""Receipt name (Decree 254/2026 art. 23 item 1), written in ``TTChung/TCTu``."""

XMLDSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"

SIGNATURE_PLACEHOLDER_ID: Final = "placeholder"
"""``Id`` of the empty ``ds:Signature`` that signxml replaces with the enveloped signature."""

MAX_XML_BYTES: Final = 1_000_000
"""Largest receipt XML we agree to parse; a real one is a few KB, so more is an attack or junk."""

_ID_PREFIX: Final = "data-"

_KIND_CODE: Final[dict[FeeKind, str]] = {FeeKind.PHI: "1", FeeKind.LE_PHI: "2"}
"""LKhoan: the national payment platform's LoaiPhiLePhi (1 = phí, 2 = lệ phí)."""
_CODE_KIND: Final[dict[str, FeeKind]] = {code: kind for kind, code in _KIND_CODE.items()}

_REPLACEMENT: Final = "1"
"""TCBLai of a replacement receipt (the only correction path, Circular 91/2026 art. 20)."""

_SIGNATURE_TAG: Final = f"{{{XMLDSIG_NS}}}Signature"


class ReceiptSchemaError(ValueError):
    """The document is not a valid receipt of this format; ``errors`` are the validator's lines."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("receipt XML is not valid: " + "; ".join(errors))


class UnsafeXmlError(ValueError):
    """The bytes were refused before being read: a DOCTYPE (entities, XXE), too large, not XML."""


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """One ``Khoan`` as read back from a receipt."""

    fee_code: str
    name: str
    kind: FeeKind
    quantity: int
    unit_price: int
    amount: int
    amount_in_words: str
    unit: str | None = None
    exemption: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    """What a receipt XML states, as read back for verification and display.

    Only what the document says: whether the signature is valid and whose it is, is the
    verifier's business.
    """

    schema_version: str
    receipt_id: str
    """From the signed element's ``Id`` (``data-<receipt id>``)."""
    template: str
    series: str
    number: int
    issued_on: date
    """Collector's local calendar date (``NLap``)."""
    issued_time: time
    """Collector's local time of day (``GLap``)."""
    tax_code: str
    collector_name: str
    collector_address: str
    payer_name: str
    total: int
    total_in_words: str
    lines: tuple[ParsedLine, ...]
    payment_method: str
    payment_reference: str
    verify_code: str | None = None
    verify_url: str | None = None
    replaces: str | None = None
    procedure_code: str | None = None
    procedure_name: str | None = None
    dossier_code: str | None = None
    payer_address: str | None = None
    payer_id_number: str | None = None
    notes: tuple[str, ...] = ()
    replaces_reference: ReceiptReference | None = None
    """Template, series, number and date of the replaced receipt, when the document states them."""


# --------------------------------------------------------------------------- build


def signed_id_for(doc: ReceiptDocument) -> str:
    """``Id`` of the element the collector signs: the signature's reference is ``#<this>``."""
    return f"{_ID_PREFIX}{doc.receipt_id}"


def _clean(text: str) -> str:
    return " ".join(text.split())


def _sub(parent: etree._Element, tag: str, text: str | int) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = str(text) if isinstance(text, int) else _clean(text)
    return element


def _sub_opt(parent: etree._Element, tag: str, text: str | None) -> None:
    if text is not None and _clean(text):
        _sub(parent, tag, text)


def _local_issue_time(doc: ReceiptDocument) -> datetime:
    if doc.issued_at.tzinfo is None or doc.issued_at.utcoffset() is None:
        raise ValueError("ReceiptDocument.issued_at must be timezone-aware (UTC)")
    return doc.issued_at.astimezone(ZoneInfo(doc.collector.time_zone))


def build_receipt_xml(doc: ReceiptDocument) -> etree._Element:
    """The unsigned receipt: ``BLai`` with an empty ``ds:Signature`` placeholder in ``DSCKS/NBan``.

    The signer replaces the placeholder with an enveloped signature over ``#``
    :func:`signed_id_for` ``(doc)``. The result is not validated here (call
    :func:`validate_receipt_xml` before signing) so that a caller can see what it built.

    :raises ValueError: ``issued_at`` is naive, or the collector's time zone is unknown.
    """
    issued_local = _local_issue_time(doc)

    root = etree.Element("BLai")
    data = etree.SubElement(root, "DLBLai", Id=signed_id_for(doc))

    general = etree.SubElement(data, "TTChung")
    _sub(general, "PBan", SCHEMA_VERSION)
    _sub(general, "TCTu", RECEIPT_NAME)
    _sub(general, "KHMCTu", doc.template)
    _sub(general, "KHCTu", doc.series)
    _sub(general, "SCTu", doc.number)
    _sub(general, "NLap", issued_local.date().isoformat())
    _sub(general, "GLap", issued_local.time().replace(microsecond=0).isoformat())
    _sub(general, "DVTTe", "VND")
    _sub(general, "HTTToan", doc.payment_method)
    _sub_opt(general, "MTCuu", doc.verify_code)
    _sub_opt(general, "DCTCuu", doc.verify_url)
    if doc.replaces is not None:
        related = etree.SubElement(general, "TTBLLQuan")
        _sub(related, "TCBLai", _REPLACEMENT)
        _sub(related, "MBLGoc", doc.replaces)
        if doc.replaces_reference is not None:
            original = doc.replaces_reference
            _sub(related, "KHMCTuCLQuan", original.template)
            _sub(related, "KHCTuCLQuan", original.series)
            _sub(related, "SCTuCLQuan", original.number)
            _sub(related, "NLCTuCLQuan", original.issued_on.isoformat())

    content = etree.SubElement(data, "NDBLai")

    collector = etree.SubElement(content, "NThu")
    _sub(collector, "Ten", doc.collector.name)
    _sub(collector, "MST", doc.collector.tax_code)
    _sub(collector, "DChi", doc.collector.address)

    payer = etree.SubElement(content, "NNop")
    _sub(payer, "Ten", doc.payer.name)
    _sub_opt(payer, "DChi", doc.payer.address)
    _sub_opt(payer, "SDDanh", doc.payer.id_number)

    items = etree.SubElement(content, "DSKhoan")
    for index, line in enumerate(doc.lines, start=1):
        item = etree.SubElement(items, "Khoan")
        _sub(item, "STT", index)
        _sub(item, "MKhoan", line.fee_code)
        _sub(item, "TKhoan", line.name)
        _sub(item, "LKhoan", _KIND_CODE[line.kind])
        _sub_opt(item, "DVTinh", line.unit)
        _sub(item, "SLuong", line.quantity)
        _sub(item, "DGia", line.unit_price)
        _sub(item, "ThTien", line.amount)
        _sub(item, "ThTienBChu", amount_in_words(line.amount))
        _sub_opt(item, "MGiam", line.exemption)

    totals = etree.SubElement(content, "TToan")
    _sub(totals, "TgTTTBSo", doc.total)
    _sub(totals, "TgTTTBChu", amount_in_words(doc.total))

    other = etree.SubElement(content, "TTKhac")
    _sub_opt(other, "MHSo", doc.dossier_code)
    _sub_opt(other, "MTTHC", doc.procedure_code)
    _sub_opt(other, "TTTHC", doc.procedure_name)
    _sub(other, "MTChieu", doc.payment_reference)
    for note in doc.notes:
        _sub_opt(other, "GChu", note)

    signatures = etree.SubElement(root, "DSCKS")
    issuer = etree.SubElement(signatures, "NBan")
    etree.SubElement(issuer, _SIGNATURE_TAG, Id=SIGNATURE_PLACEHOLDER_ID, nsmap={"ds": XMLDSIG_NS})
    return root


def receipt_xml_bytes(root: etree._Element) -> bytes:
    """Serialise as stored and signed: UTF-8 with a declaration, no added whitespace.

    Never pretty-print a signed receipt: whitespace is inside the signed data.
    """
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


# --------------------------------------------------------------------------- validate


@cache
def _schema() -> etree.XMLSchema:
    """The compiled XSD, once per process: compiling costs milliseconds, validating microseconds."""
    return etree.XMLSchema(etree.fromstring(SCHEMA_PATH.read_bytes(), _hardened_parser()))


_schema_lock = threading.Lock()
"""lxml keeps a validator's error log on the shared XMLSchema object: validate one at a time."""


def validate_receipt_xml(root: etree._Element) -> None:
    """Check a receipt (unsigned with the placeholder, or signed) against :data:`SCHEMA_PATH`.

    Beyond the XSD, checks what XSD 1.0 cannot say: the signature slot holds a ``ds:Signature``
    and the total equals the sum of the items.

    :raises ReceiptSchemaError: with the validator's messages (line: message).
    """
    schema = _schema()
    with _schema_lock:
        valid = schema.validate(root)
        # lxml-stubs declares _ErrorLog empty; at run time it iterates over _LogEntry objects.
        log = cast("Iterable[Any]", schema.error_log)
        errors = [f"line {entry.line}: {entry.message}" for entry in log]
    if not valid:
        raise ReceiptSchemaError(errors or ["document does not match the receipt schema"])

    problems: list[str] = []
    slot = root.find("DSCKS/NBan")
    if slot is None or len(slot) != 1 or slot[0].tag != _SIGNATURE_TAG:
        problems.append("DSCKS/NBan must hold exactly one ds:Signature")
    amounts = [int(e.text or "0") for e in root.iterfind("DLBLai/NDBLai/DSKhoan/Khoan/ThTien")]
    total = int(root.findtext("DLBLai/NDBLai/TToan/TgTTTBSo", default="-1"))
    if total != sum(amounts):
        problems.append(f"TgTTTBSo {total} is not the sum of the items' ThTien {sum(amounts)}")
    if problems:
        raise ReceiptSchemaError(problems)


# --------------------------------------------------------------------------- read


def _hardened_parser() -> etree.XMLParser:
    """A parser that loads nothing from outside and expands no entity.

    A new one per call: lxml advises against sharing parsers between threads.
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def load_receipt_xml(xml_bytes: bytes) -> etree._Element:
    """Parse untrusted receipt bytes into a tree, refusing anything with a DOCTYPE.

    A receipt never needs a DTD, so any DOCTYPE is refused outright rather than defused: that
    closes entity expansion ("billion laughs"), external entities (XXE, file or network reads)
    and external DTDs at once. The bytes are checked before parsing (cheap, for the usual
    UTF-8) and the parsed tree again (for other encodings). Does not validate.

    :raises UnsafeXmlError: DOCTYPE present, input too large, or not well-formed XML.
    """
    if not isinstance(xml_bytes, bytes):
        raise UnsafeXmlError("receipt XML must be given as bytes")
    if len(xml_bytes) > MAX_XML_BYTES:
        raise UnsafeXmlError(f"receipt XML larger than {MAX_XML_BYTES} bytes refused")
    if b"<!DOCTYPE" in xml_bytes:
        raise UnsafeXmlError("receipt XML must not contain a DOCTYPE or entity declarations")
    try:
        root = etree.fromstring(xml_bytes, _hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError(f"receipt XML is not well-formed: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise UnsafeXmlError("receipt XML must not contain a DOCTYPE or entity declarations")
    return root


def parse_receipt_xml(xml_bytes: bytes) -> ParsedReceipt:
    """Read untrusted receipt bytes: hardened parse, schema validation, then the fields.

    :raises UnsafeXmlError: see :func:`load_receipt_xml`.
    :raises ReceiptSchemaError: the document is not a valid receipt of this format.
    """
    root = load_receipt_xml(xml_bytes)
    validate_receipt_xml(root)
    return receipt_from_element(root)


def _text(parent: etree._Element, path: str) -> str:
    value = parent.findtext(path)
    if value is None:
        raise ReceiptSchemaError([f"missing {path}"])
    return value


def _opt(parent: etree._Element, path: str) -> str | None:
    return parent.findtext(path)


def _kind(code: str) -> FeeKind:
    try:
        return _CODE_KIND[code]
    except KeyError:
        raise ReceiptSchemaError([f"unknown LKhoan {code!r}"]) from None


def _replaces_reference(data: etree._Element) -> ReceiptReference | None:
    related = data.find("TTChung/TTBLLQuan")
    if related is None or related.find("KHMCTuCLQuan") is None:
        return None
    return ReceiptReference(
        template=_text(related, "KHMCTuCLQuan"),
        series=_text(related, "KHCTuCLQuan"),
        number=int(_text(related, "SCTuCLQuan")),
        issued_on=date.fromisoformat(_text(related, "NLCTuCLQuan")),
    )


def receipt_from_element(element: etree._Element) -> ParsedReceipt:
    """The fields of a receipt tree that has already been validated.

    Accepts the ``BLai`` root or the signed ``DLBLai`` element alone, so that a verifier can
    read exactly what the signature covers (signxml's ``signed_xml``) and nothing else.

    :raises ReceiptSchemaError: a required element is missing (the tree was not validated).
    """
    data = element if element.tag == "DLBLai" else element.find("DLBLai")
    if data is None:
        raise ReceiptSchemaError([f"no DLBLai element under {element.tag!r}"])
    signed_id = data.get("Id", "")
    if not signed_id.startswith(_ID_PREFIX):
        raise ReceiptSchemaError([f"DLBLai Id {signed_id!r} does not start with {_ID_PREFIX!r}"])

    general = "TTChung/"
    content = "NDBLai/"
    lines = tuple(
        ParsedLine(
            fee_code=_text(item, "MKhoan"),
            name=_text(item, "TKhoan"),
            kind=_kind(_text(item, "LKhoan")),
            quantity=int(_text(item, "SLuong")),
            unit_price=int(_text(item, "DGia")),
            amount=int(_text(item, "ThTien")),
            amount_in_words=_text(item, "ThTienBChu"),
            unit=_opt(item, "DVTinh"),
            exemption=_opt(item, "MGiam"),
        )
        for item in data.iterfind(content + "DSKhoan/Khoan")
    )
    return ParsedReceipt(
        schema_version=_text(data, general + "PBan"),
        receipt_id=signed_id.removeprefix(_ID_PREFIX),
        template=_text(data, general + "KHMCTu"),
        series=_text(data, general + "KHCTu"),
        number=int(_text(data, general + "SCTu")),
        issued_on=date.fromisoformat(_text(data, general + "NLap")),
        issued_time=time.fromisoformat(_text(data, general + "GLap")),
        tax_code=_text(data, content + "NThu/MST"),
        collector_name=_text(data, content + "NThu/Ten"),
        collector_address=_text(data, content + "NThu/DChi"),
        payer_name=_text(data, content + "NNop/Ten"),
        total=int(_text(data, content + "TToan/TgTTTBSo")),
        total_in_words=_text(data, content + "TToan/TgTTTBChu"),
        lines=lines,
        payment_method=_text(data, general + "HTTToan"),
        payment_reference=_text(data, content + "TTKhac/MTChieu"),
        verify_code=_opt(data, general + "MTCuu"),
        verify_url=_opt(data, general + "DCTCuu"),
        replaces=_opt(data, general + "TTBLLQuan/MBLGoc"),
        procedure_code=_opt(data, content + "TTKhac/MTTHC"),
        procedure_name=_opt(data, content + "TTKhac/TTTHC"),
        dossier_code=_opt(data, content + "TTKhac/MHSo"),
        payer_address=_opt(data, content + "NNop/DChi"),
        payer_id_number=_opt(data, content + "NNop/SDDanh"),
        notes=tuple(e.text or "" for e in data.iterfind(content + "TTKhac/GChu")),
        replaces_reference=_replaces_reference(data),
    )
