"""The XML legal original of a receipt: build it, validate it, read it back safely, in any mapping.

Two mappings exist, each in its own module with its own schema:

* **0.1** (:mod:`einvoice.receipt_v01`, ``bien-lai-0.1.xsd``): our own names, written before the
  official ones were known; ``PBan`` ``0.1``. Agencies that already issue it keep doing so until
  their switch date (:mod:`einvoice.mapping_policy`).
* **0.2** (:mod:`einvoice.receipt_v02`, ``bien-lai-0.2.xsd``): the tax authority's confirmed
  names (Decision 1271/QĐ-CT: ``TTChung/Ten``, ``TTNNT``, ``TToan/STBChu``), ours where none is
  known; ``PBan`` the official document version (2.1.0, or 2.1.1).

A document says which mapping it is in by its ``PBan``: ``0.1`` is ours, the official versions
are 0.2's. Validation and reading choose the mapping from it, so a receipt signed in 0.1 keeps
validating, reading and verifying exactly as it was signed, whatever an agency issues today.
Every element name lives in the mapping modules and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from lxml import etree

from einvoice import receipt_v01, receipt_v02
from einvoice.document import ReceiptDocument
from einvoice.receipt_common import (
    MAX_XML_BYTES,
    RECEIPT_NAME,
    SIGNATURE_PLACEHOLDER_ID,
    XMLDSIG_NS,
    ParsedLine,
    ParsedReceipt,
    ReceiptMapping,
    ReceiptSchemaError,
    UnsafeXmlError,
    signed_id_for,
    validate_with,
)
from settings.untrusted_xml import UntrustedXmlError, parse_untrusted

__all__ = [
    "LATEST_MAPPING",
    "MAPPINGS",
    "MAX_XML_BYTES",
    "RECEIPT_NAME",
    "SCHEMA_PATH",
    "SCHEMA_PATHS",
    "SCHEMA_VERSION",
    "SIGNATURE_PLACEHOLDER_ID",
    "XMLDSIG_NS",
    "ParsedLine",
    "ParsedReceipt",
    "ReceiptSchemaError",
    "UnsafeXmlError",
    "build_receipt_xml",
    "load_receipt_xml",
    "mapping_of",
    "parse_receipt_xml",
    "receipt_from_element",
    "receipt_xml_bytes",
    "signed_id_for",
    "validate_receipt_xml",
]

MAPPINGS: Final[dict[str, ReceiptMapping]] = {
    receipt_v01.VERSION: receipt_v01.MAPPING,
    receipt_v02.VERSION: receipt_v02.MAPPING,
}
"""Every receipt mapping we read, by version; the last one is what new agencies issue."""

LATEST_MAPPING: Final = receipt_v02.VERSION

SCHEMA_VERSION: Final = LATEST_MAPPING
"""The newest mapping (kept under its old name: "our receipt data format version")."""

SCHEMA_PATHS: Final[dict[str, Path]] = {v: m.schema_path for v, m in MAPPINGS.items()}
SCHEMA_PATH: Final = SCHEMA_PATHS[SCHEMA_VERSION]


def build_receipt_xml(doc: ReceiptDocument) -> etree._Element:
    """The unsigned receipt in ``doc.mapping_version``, with an empty ``ds:Signature`` placeholder
    in ``DSCKS/NBan``.

    The signer replaces the placeholder with an enveloped signature over ``#``
    :func:`signed_id_for` ``(doc)``. The result is not validated here (call
    :func:`validate_receipt_xml` before signing) so that a caller can see what it built.

    :raises ValueError: ``issued_at`` is naive, the collector's time zone is unknown, or the
        mapping does not exist.
    """
    mapping = MAPPINGS.get(doc.mapping_version)
    if mapping is None:
        known = ", ".join(MAPPINGS)
        raise ValueError(f"no receipt mapping {doc.mapping_version!r}; known: {known}")
    return mapping.build(doc)


def receipt_xml_bytes(root: etree._Element) -> bytes:
    """Serialise as stored and signed: UTF-8 with a declaration, no added whitespace.

    Never pretty-print a signed receipt: whitespace is inside the signed data.
    """
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _data_of(element: etree._Element) -> etree._Element:
    data = element if element.tag == "DLBLai" else element.find("DLBLai")
    if data is None:
        raise ReceiptSchemaError([f"no DLBLai element under {element.tag!r}"])
    return data


def mapping_of(element: etree._Element) -> ReceiptMapping:
    """The mapping a receipt (``BLai``, or its ``DLBLai``) is written in, from its ``PBan``.

    :raises ReceiptSchemaError: no ``DLBLai``, or a ``PBan`` no mapping of ours writes.
    """
    version = _data_of(element).findtext("TTChung/PBan")
    for mapping in MAPPINGS.values():
        if version in mapping.document_versions:
            return mapping
    known = sorted(v for m in MAPPINGS.values() for v in m.document_versions)
    raise ReceiptSchemaError([f"PBan {version!r} is not a receipt version we know ({known})"])


def validate_receipt_xml(root: etree._Element) -> None:
    """Check a receipt (unsigned with the placeholder, or signed) against the schema of the
    mapping its ``PBan`` names, and what XSD 1.0 cannot say: the signature slot holds a
    ``ds:Signature`` and the total equals the sum of the items.

    A document whose ``PBan`` no mapping writes is checked against the newest schema, so that
    the answer lists everything wrong with it (the ``PBan`` among it), not only the version.

    :raises ReceiptSchemaError: with the validator's messages (line: message).
    """
    try:
        mapping = mapping_of(root)
    except ReceiptSchemaError:
        mapping = MAPPINGS[LATEST_MAPPING]
    validate_with(root, mapping)


def load_receipt_xml(xml_bytes: bytes) -> etree._Element:
    """Parse untrusted receipt bytes into a tree by the service's one set of rules
    (:func:`settings.untrusted_xml.parse_untrusted`: size, no DOCTYPE, no entities). Does not
    validate.

    The refusal stays :class:`UnsafeXmlError`, this package's error. When the bytes are simply
    not XML its ``__cause__`` is lxml's syntax error, which is how the verifier tells "not
    readable" (an answer) from "hostile" (a refusal).

    :raises UnsafeXmlError: DOCTYPE or entities, input too large, not bytes, or not well-formed.
    """
    try:
        return parse_untrusted(xml_bytes, what="receipt XML", max_bytes=MAX_XML_BYTES)
    except UntrustedXmlError as exc:
        raise UnsafeXmlError(str(exc)) from exc.__cause__ or exc


def parse_receipt_xml(xml_bytes: bytes) -> ParsedReceipt:
    """Read untrusted receipt bytes: hardened parse, schema validation, then the fields.

    :raises UnsafeXmlError: see :func:`load_receipt_xml`.
    :raises ReceiptSchemaError: the document is not a valid receipt of a mapping we know.
    """
    root = load_receipt_xml(xml_bytes)
    validate_receipt_xml(root)
    return receipt_from_element(root)


def receipt_from_element(element: etree._Element) -> ParsedReceipt:
    """The fields of a receipt tree that has already been validated, in whichever mapping.

    Accepts the ``BLai`` root or the signed ``DLBLai`` element alone, so that a verifier can
    read exactly what the signature covers (signxml's ``signed_xml``) and nothing else.

    :raises ReceiptSchemaError: a required element is missing (the tree was not validated), or
        the ``PBan`` is unknown.
    """
    data = _data_of(element)
    return mapping_of(data).read(data)
