"""What is confirmed of the tax authority's formats, what is still our guess, and the settings.

Why one module: the official element lists for an organisation's fee receipt and for 01/TH-BLĐT
are still not public, so some values we write are confirmed and some are guesses. The guesses
must be changeable in one place when the tax authority publishes more, and a reader must be able
to tell which is which. Element *names* live in each document's mapping module; the *values*
that are not names (document versions, message type codes, code lists) live here.

Confirmed (domain.md, "What is now confirmed of the official formats"): the technical decision
for e-documents is **Decision 1271/QĐ-CT of 2025-05-30**, document versions ``PBan`` **2.1.0**
(some 2026 clients send 2.1.1); the message type codes of the e-document family (109, 110, 111,
304, 301, 999) from an independent implementation; the flags of 01/ĐKTĐ-CTĐT ``LHSDung``
(``BLTPLPKIn`` = fee receipt without printed face value, ``BLTPLPIn`` = with face value) from
the tax authority's viewer iTaxViewer 2.8.1.

**Unconfirmed, configurable** (``settings.config.Settings``): the message type of 01/TH-BLĐT and
of its result (nothing public gives them; ``400``/``204`` by analogy with the invoice summary),
and which ``PBan`` we write (2.1.0 by default, 2.1.1 selectable).

**Unconfirmed, here**: which of the viewer's two fee-receipt kinds (``LCTDT`` 3 and 4) is the
template without printed face value (EBL01) and which the one with it (EBL02). We read them in
the order of the ``LHSDung`` flags (``BLTPLPKIn`` before ``BLTPLPIn``): EBL01 → 3, EBL02 → 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from settings.config import Settings

__all__ = [
    "CONFIRMED_MESSAGE_CODES",
    "DECISION",
    "DEFAULT_DOCUMENT_VERSION",
    "DEFAULT_SUMMARY_CODE",
    "DEFAULT_SUMMARY_RESULT_CODE",
    "DOCUMENT_KIND_FOR_TEMPLATE",
    "DOCUMENT_VERSIONS",
    "LEGACY_VERSION",
    "REGISTRATION_FLAGS",
    "REGISTRATION_FLAG_FOR_TEMPLATE",
    "FormatChoices",
    "configured",
]

DECISION: Final = "Decision 1271/QĐ-CT of 2025-05-30"
"""The technical decision in force for e-documents (not 1306, as first believed)."""

DOCUMENT_VERSIONS: Final = ("2.1.0", "2.1.1")
"""``PBan`` values of the confirmed formats that we write and read. Confirmed: 2.1.0 is the
document version of Decision 1271; some 2026 clients send 2.1.1."""

DEFAULT_DOCUMENT_VERSION: Final = "2.1.0"
"""Must equal the default of ``Settings.tax_document_version`` (a test holds them together)."""

LEGACY_VERSION: Final = "0.1"
"""The ``PBan`` of our own first mapping (receipts, notices and messages before issue 17): not an
official version, written so that nobody took those documents for the official format."""

CONFIRMED_MESSAGE_CODES: Final[dict[str, str]] = {
    "registration": "109",
    "registration_received": "110",
    "registration_result": "111",
    "error_notice": "304",
    "error_notice_result": "301",
    "technical_ack": "999",
}
"""``MLTDiep`` of the e-document family, confirmed by an independent implementation: 109
registration 01/ĐKTĐ-CTĐT, 110 received / not received, 111 accepted / not accepted, 304 error
notice 04/SS-CTĐT, 301 its processing result, 999 technical acknowledgement. (212, the report on
the use of receipts, is not sent by this service.)"""

DEFAULT_SUMMARY_CODE: Final = "400"
"""**Unconfirmed** ``MLTDiep`` of 01/TH-BLĐT: the invoice summary's code, by analogy. Must equal
the default of ``Settings.tax_summary_message_type``."""

DEFAULT_SUMMARY_RESULT_CODE: Final = "204"
"""**Unconfirmed** ``MLTDiep`` of the authority's result for 01/TH-BLĐT (the invoice family's
"result of the data check"). Must equal the default of ``Settings.tax_summary_result_type``."""

REGISTRATION_FLAGS: Final = ("CTTNCNhan", "CTKTTTMDTu", "BLTPLPKIn", "BLTPLPIn", "BLTTPLPhi")
"""``LHSDung`` of 01/ĐKTĐ-CTĐT, in the viewer's order (confirmed names): personal income tax
withholding certificate, e-commerce tax withholding certificate, fee/charge receipt without
printed face value, fee/charge receipt with printed face value, tax/fee/charge receipt."""

REGISTRATION_FLAG_FOR_TEMPLATE: Final[dict[str, str]] = {"EBL01": "BLTPLPKIn", "EBL02": "BLTPLPIn"}
"""Which ``LHSDung`` flag a receipt template raises. Confirmed by the flags' meaning: EBL01 is the
receipt without printed face value, EBL02 the one with it (Circular 91/2026 annex II)."""

DOCUMENT_KIND_FOR_TEMPLATE: Final[dict[str, str]] = {"EBL01": "3", "EBL02": "4"}
"""``LCTDT`` (kind of e-document) of 04/SS-CTĐT for a receipt template. **Unconfirmed**: the
viewer labels 3 and 4 as fee receipts under the 2025 rules; which is which is our reading (the
order of the ``LHSDung`` flags)."""


@dataclass(frozen=True, slots=True)
class FormatChoices:
    """The configurable part of the formats, as one value (read from the settings)."""

    document_version: str = DEFAULT_DOCUMENT_VERSION
    """``PBan`` written in confirmed-format documents and messages."""
    summary_code: str = DEFAULT_SUMMARY_CODE
    summary_result_code: str = DEFAULT_SUMMARY_RESULT_CODE
    receipt_switch_on: date | None = date(2027, 1, 1)
    """Agency-local date from which agencies still issuing receipt mapping 0.1 issue 0.2."""

    def __post_init__(self) -> None:
        if self.document_version not in DOCUMENT_VERSIONS:
            raise ValueError(
                f"PBan {self.document_version!r} is not one of {', '.join(DOCUMENT_VERSIONS)}"
            )
        taken = set(CONFIRMED_MESSAGE_CODES.values())
        codes = (self.summary_code, self.summary_result_code)
        if len(set(codes)) != 2 or taken & set(codes):
            raise ValueError(
                f"the 01/TH-BLĐT codes {codes} must differ from each other and from the "
                f"confirmed codes {sorted(taken)}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> FormatChoices:
        return cls(
            document_version=settings.tax_document_version,
            summary_code=settings.tax_summary_message_type,
            summary_result_code=settings.tax_summary_result_type,
            receipt_switch_on=settings.receipt_mapping_switch_date,
        )


def configured() -> FormatChoices:
    """The process's choices (``get_settings()``); callers that hold settings pass them instead."""
    from settings.config import get_settings

    return FormatChoices.from_settings(get_settings())
