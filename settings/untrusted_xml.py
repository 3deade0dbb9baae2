"""The one way the service reads XML it did not write itself.

Receipts to verify, tax-authority answers, bank statements (camt.053), signed documents and
remote-signing states all arrive as bytes from outside. Each package used to build its own lxml
parser and its own DOCTYPE check, and the checks had drifted apart (one accepted a bare
DOCTYPE, one scanned only for ``<!DOCTYPE``). The rules now live here, once:

* a size limit, checked before a single byte is parsed;
* **no DOCTYPE at all**: none of our formats needs a DTD, so refusing any DOCTYPE outright
  (rather than defusing it) closes entity expansion ("billion laughs"), external entities (XXE:
  file and network reads) and external DTDs at once. The bytes are scanned before parsing (cheap,
  for the usual UTF-8) and the parsed tree is checked again (UTF-16 hides the scan's target);
* no entity is resolved, no network is used, no DTD is loaded, ``huge_tree`` is off;
* whitespace is kept: signed documents are verified over the bytes as signed.

Each package keeps its own public error and problem code: it catches :class:`UntrustedXmlError`
at its boundary and raises its own, passing the :class:`UntrustedXmlReason` on where its callers
care. ``settings`` is the ground floor, so this module imports nothing from the packages above.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Final

from lxml import etree

__all__ = [
    "DEFAULT_MAX_BYTES",
    "UntrustedXmlError",
    "UntrustedXmlReason",
    "hardened_parser",
    "load_schema",
    "parse_untrusted",
]

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
"""Receipts are a few KB, daily summaries a few MB; callers with smaller documents pass less."""

_SCHEMA_MAX_BYTES: Final = 4 * 1024 * 1024

# Entity and DTD declarations can only appear inside a DOCTYPE; "<! DOCTYPE" and lower case are
# not XML either, but refusing them here costs nothing and leaves no spelling to argue about.
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class UntrustedXmlReason(StrEnum):
    """Why bytes were refused; stable values, so that packages can map them to their own codes."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    MALFORMED = "malformed"
    """Not well-formed XML, or not bytes at all."""
    DOCTYPE = "doctype"
    """A DOCTYPE (internal subset, external DTD or bare), however it is encoded."""
    ENTITY = "entity"
    """An entity declaration outside a DOCTYPE, or an entity reference left in the tree."""


class UntrustedXmlError(ValueError):
    """Bytes refused before or while being read; ``reason`` says which rule refused them.

    ``str()`` is the English message (logs, problem details); ``message_vi`` the Vietnamese one
    for people. For :attr:`UntrustedXmlReason.MALFORMED` and :attr:`UntrustedXmlReason.EMPTY`
    from the parser, ``__cause__`` is lxml's ``XMLSyntaxError`` (line and column).
    """

    def __init__(self, reason: UntrustedXmlReason, message_en: str, message_vi: str) -> None:
        self.reason = reason
        self.message_en = message_en
        self.message_vi = message_vi
        super().__init__(message_en)


def hardened_parser(*, strip_comments: bool = False) -> etree.XMLParser:
    """The parser :func:`parse_untrusted` uses, for libraries that want one (signxml) and for
    re-reading trees we serialised ourselves.

    A new one per call: lxml parsers keep state and must not be shared between threads.
    ``strip_comments`` also drops processing instructions; never use it on signed documents.
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=strip_comments,
        remove_pis=strip_comments,
    )


def _doctype_refused(what: str) -> UntrustedXmlError:
    return UntrustedXmlError(
        UntrustedXmlReason.DOCTYPE,
        f"{what} must not contain a DOCTYPE (DTD) or entity declarations",
        f"{what} chứa khai báo DOCTYPE (DTD) hoặc ENTITY, không được phép",
    )


def parse_untrusted(
    data: bytes,
    *,
    what: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    strip_comments: bool = False,
) -> etree._Element:
    """Parse bytes from outside into a tree, or refuse them with :class:`UntrustedXmlError`.

    ``what`` names the document in messages ("receipt XML", "camt.053"). Validation against a
    schema is the caller's business: this only guarantees that reading cannot hurt us.
    """
    if not isinstance(data, bytes):
        raise UntrustedXmlError(
            UntrustedXmlReason.MALFORMED,
            f"{what} must be given as bytes",
            f"{what} phải được truyền dưới dạng byte",
        )
    if len(data) > max_bytes:
        raise UntrustedXmlError(
            UntrustedXmlReason.TOO_LARGE,
            f"{what} larger than {max_bytes} bytes refused ({len(data)} bytes)",
            f"{what} lớn hơn {max_bytes} byte ({len(data)} byte), bị từ chối",
        )
    declaration = _DECLARATION.search(data)
    if declaration is not None:
        if declaration.group(1).upper() == b"ENTITY":  # a DOCTYPE would have come first
            raise UntrustedXmlError(
                UntrustedXmlReason.ENTITY,
                f"{what} must not contain entity declarations",
                f"{what} chứa khai báo ENTITY, không được phép",
            )
        raise _doctype_refused(what)
    try:
        root = etree.fromstring(data, hardened_parser(strip_comments=strip_comments))
    except etree.XMLSyntaxError as exc:
        if not data.strip():
            raise UntrustedXmlError(
                UntrustedXmlReason.EMPTY,
                f"{what} is not well-formed: the document is empty",
                f"{what} không phải XML hợp lệ: tài liệu rỗng",
            ) from exc
        raise UntrustedXmlError(
            UntrustedXmlReason.MALFORMED,
            f"{what} is not well-formed (line {exc.lineno}): {exc.msg}",
            f"{what} không phải XML hợp lệ (dòng {exc.lineno}): {exc.msg}",
        ) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise _doctype_refused(what)
    for _entity in root.iter(etree.Entity):
        raise UntrustedXmlError(
            UntrustedXmlReason.ENTITY,
            f"{what} must not use entity references",
            f"{what} dùng tham chiếu thực thể (entity), không được phép",
        )
    return root


def load_schema(path: Path) -> etree.XMLSchema:
    """An XSD of ours, compiled: our own file, but read by the same rules (a schema has no
    business with a DTD either).

    Not cached here: lxml keeps a validator's error log on the XMLSchema object, so each module
    caches its own schemas and validates them under its own lock.
    """
    root = parse_untrusted(path.read_bytes(), what=path.name, max_bytes=_SCHEMA_MAX_BYTES)
    return etree.XMLSchema(root)
