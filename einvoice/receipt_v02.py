"""Receipt mapping 0.2: the tax authority's confirmed names where they are known, ours elsewhere.

Since 0.1 was written, the tax authority's viewer (iTaxViewer 2.8.1) and independent
implementations have confirmed part of the receipt document of Decision 1271/QĐ-CT (domain.md,
"What is now confirmed of the official formats"). 0.2 uses every confirmed name, so that a tax
office or an e-document intermediary reading our receipt meets the names it knows:

======================  ==========================  =========================================
0.1 (ours)              0.2                         source
======================  ==========================  =========================================
``TTChung/PBan`` 0.1    ``TTChung/PBan`` 2.1.0      confirmed (2.1.1 selectable, settings)
``TTChung/TCTu``        ``TTChung/Ten``             confirmed
``NNop/{Ten, DChi}``    ``TTNNT/{Ten, DChi}``       confirmed
``NNop/SDDanh``         ``TTNNT/MST`` or ``SDDanh``  ``MST`` confirmed; see below
``TToan/TgTTTBChu``     ``TToan/STBChu``            confirmed: the amount in words
======================  ==========================  =========================================

Kept from 0.1 because no official name is known, each marked "not confirmed" in the schema's
annotations (``einvoice/schemas/bien-lai-0.2.xsd``): ``GLap``, ``DVTTe``, ``HTTToan``,
``MTCuu``, ``DCTCuu`` and the related-receipt block ``TTBLLQuan``; the collector block ``NThu``;
the fee lines ``DSKhoan/Khoan`` and, in each, ``CTTinh`` (how its amount was reached, issue 14:
written only when the caller gives a breakdown, so receipts without one are byte-for-byte as
before); the total in figures ``TToan/TgTTTBSo`` (the invoice family's
name); the one-stop context ``TTKhac``; the signer's slot ``DSCKS/NBan``. Root ``BLai``, signed
``DLBLai`` with ``Id``, ``TTChung``, ``NDBLai``, ``KHMCTu``, ``KHCTu``, ``SCTu``, ``NLap`` and
``DSCKS`` are confirmed and unchanged.

**The payer's identity number.** The confirmed payer block is ``TTNNT/{Ten, MST, DChi}``. Since
2025-07-01 an individual's 12-digit personal identification number is their tax code (Circular
86/2024/TT-BTC), and organisations have a 10-digit (or 10-3) MST, so a number of one of those
shapes is written in ``MST``. Any other identity document (a passport, an old 9-digit ID card)
is not a tax code: it goes in ``SDDanh``, ours, as in 0.1, rather than a wrong value in an
official element.

Every mandatory item of Decree 254/2026 art. 23 is present as in 0.1: name (``Ten``), template
and series (``KHMCTu``, ``KHCTu``), number (``SCTu``), collector's name and MST (``NThu``), each
fee with its amount in figures and words (``Khoan/ThTien``, ``ThTienBChu``) and the total
(``TgTTTBSo``, ``STBChu``), date (``NLap``), the collector's signature (``DSCKS/NBan``), in
Vietnamese, in VND. Decisions that are ours (unpadded ``SCTu``, local date and time, normalised
text, no e-mail or phone) are those of :mod:`einvoice.receipt_v01`.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Final

from lxml import etree

from einvoice.amount_words import amount_in_words
from einvoice.document import ReceiptDocument, ReceiptReference
from einvoice.official import DOCUMENT_VERSIONS
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
    clean,
    fee_kind,
    local_issue_time,
    optional,
    required,
    signature_placeholder,
    signed_id_for,
    sub,
    sub_opt,
)

__all__ = ["MAPPING", "VERSION", "build", "payer_tax_code", "read"]

VERSION: Final = "0.2"

_TAX_IDENTIFIER: Final = re.compile(r"^(\d{10}(-\d{3})?|\d{12})$")
"""An organisation's MST (10 or 10-3 digits) or an individual's 12-digit personal identification
number, which is their tax code since 2025-07-01 (Circular 86/2024/TT-BTC)."""


def payer_tax_code(id_number: str | None) -> str | None:
    """``id_number`` if it is a tax identifier (goes in ``TTNNT/MST``), else ``None``."""
    if id_number is None:
        return None
    compact = clean(id_number)
    return compact if _TAX_IDENTIFIER.match(compact) else None


def build(doc: ReceiptDocument) -> etree._Element:
    """The unsigned 0.2 receipt: ``BLai`` with an empty signature placeholder in ``DSCKS/NBan``.

    ``PBan`` is ``doc.document_version`` (2.1.0 or 2.1.1; the schema refuses anything else).
    """
    issued_local = local_issue_time(doc)

    root = etree.Element("BLai")
    data = etree.SubElement(root, "DLBLai", Id=signed_id_for(doc))

    general = etree.SubElement(data, "TTChung")
    sub(general, "PBan", doc.document_version)
    sub(general, "Ten", RECEIPT_NAME)
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

    payer = etree.SubElement(content, "TTNNT")
    sub(payer, "Ten", doc.payer.name)
    tax_code = payer_tax_code(doc.payer.id_number)
    sub_opt(payer, "MST", tax_code)
    sub_opt(payer, "DChi", doc.payer.address)
    if tax_code is None:
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
        sub_opt(item, "CTTinh", line.breakdown)

    totals = etree.SubElement(content, "TToan")
    sub(totals, "TgTTTBSo", doc.total)
    sub(totals, "STBChu", amount_in_words(doc.total))

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
    """The fields of a validated 0.2 ``DLBLai``."""
    signed_id = data.get("Id", "")
    if not signed_id.startswith(ID_PREFIX):
        raise ReceiptSchemaError([f"DLBLai Id {signed_id!r} does not start with {ID_PREFIX!r}"])
    general = "TTChung/"
    content = "NDBLai/"
    payer = content + "TTNNT/"
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
            breakdown=optional(item, "CTTinh"),
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
        payer_name=required(data, payer + "Ten"),
        total=int(required(data, content + "TToan/TgTTTBSo")),
        total_in_words=required(data, content + "TToan/STBChu"),
        lines=lines,
        payment_method=required(data, general + "HTTToan"),
        payment_reference=required(data, content + "TTKhac/MTChieu"),
        verify_code=optional(data, general + "MTCuu"),
        verify_url=optional(data, general + "DCTCuu"),
        replaces=optional(data, general + "TTBLLQuan/MBLGoc"),
        procedure_code=optional(data, content + "TTKhac/MTTHC"),
        procedure_name=optional(data, content + "TTKhac/TTTHC"),
        dossier_code=optional(data, content + "TTKhac/MHSo"),
        payer_address=optional(data, payer + "DChi"),
        payer_id_number=optional(data, payer + "MST") or optional(data, payer + "SDDanh"),
        notes=tuple(e.text or "" for e in data.iterfind(content + "TTKhac/GChu")),
        replaces_reference=_replaces_reference(data),
        document_version=required(data, general + "PBan"),
    )


MAPPING: Final = ReceiptMapping(
    version=VERSION,
    schema_path=SCHEMAS / f"bien-lai-{VERSION}.xsd",
    document_versions=frozenset(DOCUMENT_VERSIONS),
    build=build,
    read=read,
    amount_paths=("NDBLai/DSKhoan/Khoan/ThTien", "NDBLai/TToan/TgTTTBSo"),
)
