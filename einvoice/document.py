"""The plain data a receipt is issued from and rendered to XML from.

Kept free of ORM and payment types so that ``einvoice`` can be driven by any caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from einvoice.official import DEFAULT_DOCUMENT_VERSION


class FeeKind(StrEnum):
    """Law on Fees and Charges 97/2015/QH13: a fee may be partly retained, a charge may not."""

    PHI = "phi"
    """Phí: may be partly retained by the collecting unit."""
    LE_PHI = "le_phi"
    """Lệ phí: goes in full to the state budget."""


@dataclass(frozen=True, slots=True)
class Collector:
    """The collecting organisation printed on the receipt (Decree 254/2026 art. 23 item 4)."""

    name: str
    tax_code: str
    address: str
    time_zone: str = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True, slots=True)
class Payer:
    name: str
    address: str | None = None
    id_number: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """One fee or charge collected; ``amount`` is integer VND after quantity, cap and exemption."""

    fee_code: str
    name: str
    kind: FeeKind
    quantity: int
    unit_price: int
    amount: int
    unit: str | None = None
    exemption: str | None = None
    breakdown: str | None = None
    """How ``amount`` was reached, in words ("2 trang × 2.000 đ + 1 trang × 1.000 đ = 5.000 đ"):
    a tiered or capped fee is not quantity × unit price, and the receipt must show the
    computation (issue 14). A plain string so that ``einvoice`` never learns about tariffs;
    written by mapping 0.2 only (0.1 is frozen), and ``None`` writes exactly what it did before."""


@dataclass(frozen=True, slots=True)
class ReceiptReference:
    """Template, series, number and local date of another receipt, as printed on it.

    A replacement receipt states these of the receipt it replaces (Circular 91/2026 art. 20), so
    that the payer and the tax authority can tell which receipt it supersedes without our ids.
    """

    template: str
    series: str
    number: int
    issued_on: date
    """The original's date of issue (``NLap``): the collector's local calendar day."""


@dataclass(frozen=True, slots=True)
class ReceiptDocument:
    """Everything the legal XML states, after numbering and before signing."""

    receipt_id: str
    template: str
    series: str
    number: int
    issued_at: datetime
    collector: Collector
    payer: Payer
    lines: tuple[ReceiptLine, ...]
    payment_method: str
    payment_reference: str
    procedure_code: str | None = None
    procedure_name: str | None = None
    dossier_code: str | None = None
    verify_code: str | None = None
    verify_url: str | None = None
    replaces: str | None = None
    """The replaced receipt's id (``MBLGoc``); set together with :attr:`replaces_reference`."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    replaces_reference: ReceiptReference | None = None
    """What the replaced receipt printed (template, series, number, date); optional so that
    documents built before replacement existed keep their exact XML."""
    mapping_version: str = "0.2"
    """Which receipt mapping writes the XML (:data:`einvoice.receipt_xml.MAPPINGS`): ``0.1``
    (ours) or ``0.2`` (the confirmed names, the default). Issuing chooses it per agency and day
    (:mod:`einvoice.mapping_policy`)."""
    document_version: str = DEFAULT_DOCUMENT_VERSION
    """``PBan`` of a 0.2 receipt: the official document version (2.1.0 or 2.1.1). 0.1 writes its
    own ``0.1`` whatever this says."""

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass(frozen=True, slots=True)
class ReceiptRequest:
    """What a caller (``payments``) asks ``einvoice`` to issue.

    ``source_key`` names what is being paid (e.g. ``order:<id>``); asking twice returns the first
    receipt, so retries after a crash never burn a second number.
    """

    agency_id: str
    source_key: str
    collector: Collector
    template: str
    series: str
    payer: Payer
    lines: tuple[ReceiptLine, ...]
    payment_method: str
    payment_reference: str
    procedure_code: str | None = None
    procedure_name: str | None = None
    dossier_code: str | None = None
    notes: tuple[str, ...] = ()
    replaces: str | None = None
    """Id of the receipt this one replaces; set only by ``einvoice.lifecycle.replace_receipt``."""
    replaces_reference: ReceiptReference | None = None
    """Template/series/number/date of the replaced receipt, written into the replacement's XML."""
