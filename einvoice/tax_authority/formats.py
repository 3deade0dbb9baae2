"""Message formats as data: which ``PBan`` and which ``MLTDiep`` codes each mapping speaks.

Why: the codes and versions were guesses in our mapping 0.1 and are partly confirmed now
(:mod:`einvoice.official`); a summary or notice signed and queued before an upgrade must still go
out exactly as signed, and the sandbox must judge both. So a message's format is a value chosen
by its ``PBan``, never a constant in code:

* :data:`LEGACY` (mapping 0.1, ``PBan`` 0.1): 100 registration → 103; 300 error notice → 301;
  400 daily summary → 204; 999 acknowledgement. Ours, by analogy with invoices. Frozen.
* :func:`confirmed` (mapping 0.2, ``PBan`` 2.1.0 or 2.1.1): the e-document family's codes (109
  registration → 110 received → 111 accepted; 304 error notice → 301; 999), and for 01/TH-BLĐT
  the configured, **unconfirmed** codes (default 400 → 204).

:class:`MessageType` names what a message *is*; a format says which code it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final

from einvoice.official import (
    CONFIRMED_MESSAGE_CODES,
    DOCUMENT_VERSIONS,
    LEGACY_VERSION,
    FormatChoices,
    configured,
)

__all__ = [
    "LEGACY",
    "RECEIVED_TYPE_FOR",
    "RESULT_TYPE_FOR",
    "MessageFormat",
    "MessageType",
    "confirmed",
    "current",
    "for_version",
]

_SCHEMAS: Final = Path(__file__).resolve().parent.parent / "schemas"


class MessageType(StrEnum):
    """What a ``TDiep`` carries, whatever code its format gives it (:class:`MessageFormat`)."""

    REGISTRATION = "registration"
    """01/ĐKTĐ-CTĐT registration (109; 100 in 0.1)."""
    REGISTRATION_RECEIVED = "registration_received"
    """The authority received (or did not receive) a registration (110; none in 0.1)."""
    REGISTRATION_RESULT = "registration_result"
    """The authority accepts or rejects a registration (111; 103 in 0.1)."""
    ERROR_NOTICE = "error_notice"
    """04/SS-CTĐT notice of receipts with errors (304; 300 in 0.1)."""
    ERROR_NOTICE_RESULT = "error_notice_result"
    """The authority's answer to an error notice (301)."""
    DAILY_SUMMARY = "daily_summary"
    """01/TH-BLĐT daily summary (configured, unconfirmed; 400 in 0.1)."""
    DATA_CHECK_RESULT = "data_check_result"
    """The authority's result of checking a summary's data (configured, unconfirmed; 204)."""
    TECHNICAL_ACK = "technical_ack"
    """Technical acknowledgement: the message was (not) taken in; says nothing of the content."""


RESULT_TYPE_FOR: Final[dict[MessageType, MessageType]] = {
    MessageType.REGISTRATION: MessageType.REGISTRATION_RESULT,
    MessageType.ERROR_NOTICE: MessageType.ERROR_NOTICE_RESULT,
    MessageType.DAILY_SUMMARY: MessageType.DATA_CHECK_RESULT,
}
"""Which result (the verdict) answers which request type."""

RECEIVED_TYPE_FOR: Final[dict[MessageType, MessageType]] = {
    MessageType.REGISTRATION: MessageType.REGISTRATION_RECEIVED,
}
"""Which intermediate "received / not received" notice precedes the verdict, in formats that
have one (mapping 0.2: 110 before 111). Not a verdict: only a "not received" one settles."""


@dataclass(frozen=True, slots=True)
class MessageFormat:
    """One mapping of the envelope and the documents: its ``PBan``, codes and schema files."""

    mapping_version: str
    """Ours: ``0.1`` or ``0.2``; names the schema files."""
    document_version: str
    """``PBan`` written in the envelope and in the documents we build in this format."""
    codes: MappingProxyType[MessageType, str] = field(compare=False)
    """``MLTDiep`` of each message type this format has."""

    @property
    def legacy(self) -> bool:
        return self.mapping_version == LEGACY_VERSION

    def code(self, kind: MessageType) -> str:
        """The ``MLTDiep`` of ``kind``. :raises KeyError: the format has no such message."""
        return self.codes[kind]

    def kind(self, code: str) -> MessageType | None:
        """The message type of ``code`` in this format; ``None`` when it names none."""
        for kind, value in self.codes.items():
            if value == code:
                return kind
        return None

    def received_type(self, request: MessageType) -> MessageType | None:
        """The intermediate "received" notice of ``request`` in this format, if it has one."""
        kind = RECEIVED_TYPE_FOR.get(request)
        return kind if kind is not None and kind in self.codes else None

    def accepts(self, version: str | None) -> bool:
        """Whether a document or envelope with ``PBan`` ``version`` belongs to this mapping."""
        if self.legacy:
            return version == LEGACY_VERSION
        return version in DOCUMENT_VERSIONS

    def schema(self, stem: str) -> Path:
        """``einvoice/schemas/<stem>-<mapping>.xsd`` (``tdiep``, ``01-th-bldt``, ...)."""
        return _SCHEMAS / f"{stem}-{self.mapping_version}.xsd"


LEGACY: Final = MessageFormat(
    mapping_version=LEGACY_VERSION,
    document_version=LEGACY_VERSION,
    codes=MappingProxyType(
        {
            MessageType.REGISTRATION: "100",
            MessageType.REGISTRATION_RESULT: "103",
            MessageType.ERROR_NOTICE: "300",
            MessageType.ERROR_NOTICE_RESULT: "301",
            MessageType.DAILY_SUMMARY: "400",
            MessageType.DATA_CHECK_RESULT: "204",
            MessageType.TECHNICAL_ACK: "999",
        }
    ),
)
"""Mapping 0.1: our guesses of 2026-11 (the invoice family's codes). Frozen: messages queued
before the upgrade are sent, and judged, in it."""


def confirmed(choices: FormatChoices | None = None, *, version: str | None = None) -> MessageFormat:
    """Mapping 0.2 with ``choices`` (default: the settings'); ``version`` overrides the ``PBan``
    (to read a document written under another setting)."""
    chosen = choices or configured()
    pban = version or chosen.document_version
    if pban not in DOCUMENT_VERSIONS:
        raise ValueError(f"PBan {pban!r} is not one of {', '.join(DOCUMENT_VERSIONS)}")
    codes = {MessageType(kind): code for kind, code in CONFIRMED_MESSAGE_CODES.items()}
    codes[MessageType.DAILY_SUMMARY] = chosen.summary_code
    codes[MessageType.DATA_CHECK_RESULT] = chosen.summary_result_code
    return MessageFormat(
        mapping_version="0.2", document_version=pban, codes=MappingProxyType(codes)
    )


def current(choices: FormatChoices | None = None) -> MessageFormat:
    """The format new messages are built in: mapping 0.2 with the configured ``PBan`` and codes."""
    return confirmed(choices)


def for_version(version: str | None, choices: FormatChoices | None = None) -> MessageFormat | None:
    """The format a ``PBan`` belongs to (``None``: no mapping of ours writes it)."""
    if version == LEGACY_VERSION:
        return LEGACY
    if version in DOCUMENT_VERSIONS:
        return confirmed(choices, version=version)
    return None
