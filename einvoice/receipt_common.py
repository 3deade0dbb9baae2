"""What every receipt mapping shares: the parsed shape, the errors, hardened reading, XML helpers.

Why a module of its own: a receipt is written in one mapping (0.1, or 0.2 with the tax
authority's confirmed names) and read in any of them, for ever, because a signed receipt never
changes. Each mapping module (:mod:`einvoice.receipt_v01`, :mod:`einvoice.receipt_v02`) holds
its element names and nothing else; what they have in common lives here, and
:mod:`einvoice.receipt_xml` chooses between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from lxml import etree

from einvoice.document import FeeKind, ReceiptDocument, ReceiptReference
from settings.untrusted_xml import load_schema

__all__ = [
    "ID_PREFIX",
    "KIND_CODE",
    "MAX_XML_BYTES",
    "RECEIPT_NAME",
    "REPLACEMENT",
    "SCHEMAS",
    "SIGNATURE_PLACEHOLDER_ID",
    "SIGNATURE_TAG",
    "XMLDSIG_NS",
    "ParsedLine",
    "ParsedReceipt",
    "ReceiptMapping",
    "ReceiptSchemaError",
    "UnsafeXmlError",
    "clean",
    "fee_kind",
    "local_issue_time",
    "optional",
    "required",
    "signature_placeholder",
    "signed_id_for",
    "sub",
    "sub_opt",
    "validate_with",
]

XMLDSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
SIGNATURE_TAG: Final = f"{{{XMLDSIG_NS}}}Signature"
SIGNATURE_PLACEHOLDER_ID: Final = "placeholder"
"""``Id`` of the empty ``ds:Signature`` that the signer replaces with the enveloped signature."""

MAX_XML_BYTES: Final = 1_000_000
"""Largest receipt XML we agree to parse; a real one is a few KB, so more is an attack or junk."""

RECEIPT_NAME: Final = "Biên lai thu phí, lệ phí"
"""Receipt name (Decree 254/2026 art. 23 item 1): ``TTChung/TCTu`` (0.1), ``TTChung/Ten`` (0.2)."""

SCHEMAS: Final = Path(__file__).with_name("schemas")
"""Found next to this module rather than through ``importlib.resources``: under pytest's default
import mode the ``tests/einvoice`` folder can make ``einvoice`` a namespace package, whose
resources are not this folder."""

ID_PREFIX: Final = "data-"

KIND_CODE: Final[dict[FeeKind, str]] = {FeeKind.PHI: "1", FeeKind.LE_PHI: "2"}
"""LKhoan: the national payment platform's LoaiPhiLePhi (1 = phí, 2 = lệ phí)."""
_CODE_KIND: Final[dict[str, FeeKind]] = {code: kind for kind, code in KIND_CODE.items()}

REPLACEMENT: Final = "1"
"""TCBLai of a replacement receipt (the only correction path, Circular 91/2026 art. 20)."""


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
    breakdown: str | None = None
    """How the amount was reached (0.2 ``CTTinh``), when the receipt states it."""


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    """What a receipt XML states, as read back for verification and display.

    Only what the document says: whether the signature is valid and whose it is, is the
    verifier's business. The same shape for every mapping, so that nothing downstream (the PDF,
    the verification page, a replacement) needs to know which one a receipt was issued in.
    """

    schema_version: str
    """Our mapping version: ``0.1`` or ``0.2`` (see :attr:`document_version` for ``PBan``)."""
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
    document_version: str | None = None
    """``PBan`` as written: ``0.1`` (our own) or the official ``2.1.0`` / ``2.1.1``."""


@dataclass(frozen=True, slots=True)
class ReceiptMapping:
    """One mapping from our data to element names: how to write, read and check a receipt."""

    version: str
    schema_path: Path
    document_versions: frozenset[str]
    """The ``PBan`` values that identify a document of this mapping."""
    build: Callable[[ReceiptDocument], etree._Element]
    read: Callable[[etree._Element], ParsedReceipt]
    """From the signed ``DLBLai`` element, already validated."""
    amount_paths: tuple[str, str]
    """Paths (under ``DLBLai``) of the items' amounts and of the total in figures."""


# --------------------------------------------------------------------------- writing


def signed_id_for(doc: ReceiptDocument) -> str:
    """``Id`` of the element the collector signs: the signature's reference is ``#<this>``."""
    return f"{ID_PREFIX}{doc.receipt_id}"


def clean(text: str) -> str:
    """Whitespace-normalised: the legal original must not differ from what is displayed."""
    return " ".join(text.split())


def sub(parent: etree._Element, tag: str, text: str | int) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = str(text) if isinstance(text, int) else clean(text)
    return element


def sub_opt(parent: etree._Element, tag: str, text: str | None) -> None:
    if text is not None and clean(text):
        sub(parent, tag, text)


def signature_placeholder(root: etree._Element) -> None:
    """``DSCKS/NBan`` with the empty ``ds:Signature`` the signer fills."""
    signatures = etree.SubElement(root, "DSCKS")
    issuer = etree.SubElement(signatures, "NBan")
    etree.SubElement(issuer, SIGNATURE_TAG, Id=SIGNATURE_PLACEHOLDER_ID, nsmap={"ds": XMLDSIG_NS})


def local_issue_time(doc: ReceiptDocument) -> datetime:
    """``issued_at`` in the collector's zone: ``NLap``/``GLap`` are the local day and time.

    :raises ValueError: ``issued_at`` is naive, or the collector's time zone is unknown.
    """
    if doc.issued_at.tzinfo is None or doc.issued_at.utcoffset() is None:
        raise ValueError("ReceiptDocument.issued_at must be timezone-aware (UTC)")
    return doc.issued_at.astimezone(ZoneInfo(doc.collector.time_zone))


# --------------------------------------------------------------------------- reading


def required(parent: etree._Element, path: str) -> str:
    value = parent.findtext(path)
    if value is None:
        raise ReceiptSchemaError([f"missing {path}"])
    return value


def optional(parent: etree._Element, path: str) -> str | None:
    return parent.findtext(path)


def fee_kind(code: str) -> FeeKind:
    try:
        return _CODE_KIND[code]
    except KeyError:
        raise ReceiptSchemaError([f"unknown LKhoan {code!r}"]) from None


# --------------------------------------------------------------------------- validating


@cache
def _schema(path: Path) -> etree.XMLSchema:
    """Compiled once per process and file: compiling costs milliseconds, validating microseconds."""
    return load_schema(path)


_schema_lock = threading.Lock()
"""lxml keeps a validator's error log on the shared XMLSchema object: validate one at a time."""


def validate_with(root: etree._Element, mapping: ReceiptMapping) -> None:
    """Check a receipt against ``mapping``'s XSD, then what XSD 1.0 cannot say: the signature slot
    holds a ``ds:Signature`` and the total equals the sum of the items.

    :raises ReceiptSchemaError: with the validator's messages (line: message).
    """
    schema = _schema(mapping.schema_path)
    with _schema_lock:
        valid = schema.validate(root)
        # lxml-stubs declares _ErrorLog empty; at run time it iterates over _LogEntry objects.
        log = cast("Iterable[Any]", schema.error_log)
        errors = [f"line {entry.line}: {entry.message}" for entry in log]
    if not valid:
        raise ReceiptSchemaError(errors or ["document does not match the receipt schema"])

    problems: list[str] = []
    slot = root.find("DSCKS/NBan")
    if slot is None or len(slot) != 1 or slot[0].tag != SIGNATURE_TAG:
        problems.append("DSCKS/NBan must hold exactly one ds:Signature")
    items, total_path = mapping.amount_paths
    amounts = [int(e.text or "0") for e in root.iterfind(f"DLBLai/{items}")]
    total = int(root.findtext(f"DLBLai/{total_path}", default="-1"))
    if total != sum(amounts):
        item_tag = items.rsplit("/", 1)[-1]
        total_tag = total_path.rsplit("/", 1)[-1]
        problems.append(
            f"{total_tag} {total} is not the sum of the items' {item_tag} {sum(amounts)}"
        )
    if problems:
        raise ReceiptSchemaError(problems)
