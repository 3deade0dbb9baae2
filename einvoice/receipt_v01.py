"""Receipt mapping 0.1: our own names, written before the official ones were known. Frozen.

**Not the official format.** Written by agencies that issued it before issue 17, until their
switch date to mapping 0.2 (:mod:`einvoice.receipt_v02`, :mod:`einvoice.mapping_policy`), and
read for ever: every 0.1 receipt already signed must keep validating and verifying exactly as
signed, so nothing here may change. Schema ``einvoice/schemas/bien-lai-0.1.xsd``; ``PBan`` is
``0.1``, not an official version, so that nobody took these documents for the official format.

Modelled on the tax authority's e-invoice family: no XML namespace; a signed data element with
an ``Id`` (``DLBLai`` like ``DLHDon``); ``TTChung`` general information; the content in
``NDBLai`` (``NThu`` collector, ``NNop`` payer, ``DSKhoan/Khoan`` items like ``DSHHDVu/HHDVu``,
``TToan`` totals with ``TgTTTBSo``/``TgTTTBChu``); signatures in ``DSCKS/NBan``. The template,
series, number and date use the e-document names (``KHMCTu``, ``KHCTu``, ``SCTu``, ``NLap``,
``MST``); the receipt name is ``TCTu`` ("tên chứng từ").

Decisions that are ours, not the tax authority's (0.2 keeps them):

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

from datetime import date, time
from typing import Final

from lxml import etree

from einvoice.amount_words import amount_in_words
from einvoice.document import ReceiptDocument, ReceiptReference
from einvoice.official import LEGACY_VERSION
from einvoice.receipt_common import (
    ID_PREFIX,
    KIND_CODE,
    RECEIPT_NAME,
    REPLACEMENT,
    SCHEMAS,
    ParsedLine,
    ParsedReceipt,
    ReceiptMapping,
    ReceiptSchemaError,
    fee_kind,
    local_issue_time,
    optional,
    required,
    signature_placeholder,
    signed_id_for,
    sub,
    sub_opt,
)

__all__ = ["MAPPING", "VERSION", "build", "read"]

VERSION: Final = "0.1"
"""Also the ``PBan`` written (and the XSD's): our own version, not an official one."""


def build(doc: ReceiptDocument) -> etree._Element:
    """The unsigned 0.1 receipt: ``BLai`` with an empty signature placeholder in ``DSCKS/NBan``."""
    issued_local = local_issue_time(doc)

    root = etree.Element("BLai")
    data = etree.SubElement(root, "DLBLai", Id=signed_id_for(doc))

    general = etree.SubElement(data, "TTChung")
    sub(general, "PBan", LEGACY_VERSION)
    sub(general, "TCTu", RECEIPT_NAME)
    sub(general, "KHMCTu", doc.template)
    sub(general, "KHCTu", doc.series)
    sub(general, "SCTu", doc.number)
    sub(general, "NLap", issued_local.date().isoformat())
    sub(general, "GLap", issued_local.time().replace(microsecond=0).isoformat())
    sub(general, "DVTTe", "VND")
    sub(general, "HTTToan", doc.payment_method)
    sub_opt(general, "MTCuu", doc.verify_code)
    sub_opt(general, "DCTCuu", doc.verify_url)
    if doc.replaces is not None:
        related = etree.SubElement(general, "TTBLLQuan")
        sub(related, "TCBLai", REPLACEMENT)
        sub(related, "MBLGoc", doc.replaces)
        if doc.replaces_reference is not None:
            original = doc.replaces_reference
            sub(related, "KHMCTuCLQuan", original.template)
            sub(related, "KHCTuCLQuan", original.series)
            sub(related, "SCTuCLQuan", original.number)
            sub(related, "NLCTuCLQuan", original.issued_on.isoformat())

    content = etree.SubElement(data, "NDBLai")

    collector = etree.SubElement(content, "NThu")
    sub(collector, "Ten", doc.collector.name)
    sub(collector, "MST", doc.collector.tax_code)
    sub(collector, "DChi", doc.collector.address)

    payer = etree.SubElement(content, "NNop")
    sub(payer, "Ten", doc.payer.name)
    sub_opt(payer, "DChi", doc.payer.address)
    sub_opt(payer, "SDDanh", doc.payer.id_number)

    items = etree.SubElement(content, "DSKhoan")
    for index, line in enumerate(doc.lines, start=1):
        item = etree.SubElement(items, "Khoan")
        sub(item, "STT", index)
        sub(item, "MKhoan", line.fee_code)
        sub(item, "TKhoan", line.name)
        sub(item, "LKhoan", KIND_CODE[line.kind])
        sub_opt(item, "DVTinh", line.unit)
        sub(item, "SLuong", line.quantity)
        sub(item, "DGia", line.unit_price)
        sub(item, "ThTien", line.amount)
        sub(item, "ThTienBChu", amount_in_words(line.amount))
        sub_opt(item, "MGiam", line.exemption)

    totals = etree.SubElement(content, "TToan")
    sub(totals, "TgTTTBSo", doc.total)
    sub(totals, "TgTTTBChu", amount_in_words(doc.total))

    other = etree.SubElement(content, "TTKhac")
    sub_opt(other, "MHSo", doc.dossier_code)
    sub_opt(other, "MTTHC", doc.procedure_code)
    sub_opt(other, "TTTHC", doc.procedure_name)
    sub(other, "MTChieu", doc.payment_reference)
    for note in doc.notes:
        sub_opt(other, "GChu", note)

    signature_placeholder(root)
    return root


def _replaces_reference(data: etree._Element) -> ReceiptReference | None:
    related = data.find("TTChung/TTBLLQuan")
    if related is None or related.find("KHMCTuCLQuan") is None:
        return None
    return ReceiptReference(
        template=required(related, "KHMCTuCLQuan"),
        series=required(related, "KHCTuCLQuan"),
        number=int(required(related, "SCTuCLQuan")),
        issued_on=date.fromisoformat(required(related, "NLCTuCLQuan")),
    )


def read(data: etree._Element) -> ParsedReceipt:
    """The fields of a validated 0.1 ``DLBLai``."""
    signed_id = data.get("Id", "")
    if not signed_id.startswith(ID_PREFIX):
        raise ReceiptSchemaError([f"DLBLai Id {signed_id!r} does not start with {ID_PREFIX!r}"])
    general = "TTChung/"
    content = "NDBLai/"
    lines = tuple(
        ParsedLine(
            fee_code=required(item, "MKhoan"),
            name=required(item, "TKhoan"),
            kind=fee_kind(required(item, "LKhoan")),
            quantity=int(required(item, "SLuong")),
            unit_price=int(required(item, "DGia")),
            amount=int(required(item, "ThTien")),
            amount_in_words=required(item, "ThTienBChu"),
            unit=optional(item, "DVTinh"),
            exemption=optional(item, "MGiam"),
        )
        for item in data.iterfind(content + "DSKhoan/Khoan")
    )
    return ParsedReceipt(
        schema_version=VERSION,
        receipt_id=signed_id.removeprefix(ID_PREFIX),
        template=required(data, general + "KHMCTu"),
        series=required(data, general + "KHCTu"),
        number=int(required(data, general + "SCTu")),
        issued_on=date.fromisoformat(required(data, general + "NLap")),
        issued_time=time.fromisoformat(required(data, general + "GLap")),
        tax_code=required(data, content + "NThu/MST"),
        collector_name=required(data, content + "NThu/Ten"),
        collector_address=required(data, content + "NThu/DChi"),
        payer_name=required(data, content + "NNop/Ten"),
        total=int(required(data, content + "TToan/TgTTTBSo")),
        total_in_words=required(data, content + "TToan/TgTTTBChu"),
        lines=lines,
        payment_method=required(data, general + "HTTToan"),
        payment_reference=required(data, content + "TTKhac/MTChieu"),
        verify_code=optional(data, general + "MTCuu"),
        verify_url=optional(data, general + "DCTCuu"),
        replaces=optional(data, general + "TTBLLQuan/MBLGoc"),
        procedure_code=optional(data, content + "TTKhac/MTTHC"),
        procedure_name=optional(data, content + "TTKhac/TTTHC"),
        dossier_code=optional(data, content + "TTKhac/MHSo"),
        payer_address=optional(data, content + "NNop/DChi"),
        payer_id_number=optional(data, content + "NNop/SDDanh"),
        notes=tuple(e.text or "" for e in data.iterfind(content + "TTKhac/GChu")),
        replaces_reference=_replaces_reference(data),
        document_version=required(data, general + "PBan"),
    )


MAPPING: Final = ReceiptMapping(
    version=VERSION,
    schema_path=SCHEMAS / f"bien-lai-{VERSION}.xsd",
    document_versions=frozenset({LEGACY_VERSION}),
    build=build,
    read=read,
    amount_paths=("NDBLai/DSKhoan/Khoan/ThTien", "NDBLai/TToan/TgTTTBSo"),
)
