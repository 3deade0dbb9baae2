"""An order before it is written: the one place where an order is validated and priced.

Two writers persist orders: the ORM (:func:`payments.orders.create_order`, every database,
orders with nothing to collect) and one SQL statement on PostgreSQL
(:mod:`payments.order_intake`, the API's hot path). Both take the same :class:`OrderDraft`
from :func:`draft_order`, so a rule about fee lines, totals, the reference or the VietQR
payload is written once and cannot drift between them. The draft has the shape
:func:`payments.presenters.order_json` reads, so the fast path answers from the draft itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from payments import vietqr
from payments.catalog import validate_quantity
from payments.errors import AmountTooLarge, InvalidInput, TariffInvalid, UnknownFee
from payments.models import new_id
from payments.states import OrderStatus
from payments.tariffs import (
    LineInput,
    Priced,
    Tariff,
    headline_price,
    legacy_tariff,
    price,
    pricing_record,
    tariff_from_json,
)

__all__ = [
    "AgencyTerms",
    "FeeRequest",
    "FeeSpec",
    "LineDraft",
    "OrderDraft",
    "OrderRequest",
    "ProcedureSpec",
    "check_fee_requests",
    "draft_order",
    "line_breakdown",
    "local_day",
    "price_fee",
]


@dataclass(frozen=True)
class FeeRequest:
    """One line as asked. ``quantity`` keeps its meaning (units; for a per-copy tariff the pages
    of **one** original; with ``originals``, their total pages). ``copies``, ``originals``,
    ``declared_value`` and ``reduction`` are what a richer tariff prices by
    (:class:`payments.tariffs.LineInput`); a line that gives what its tariff does not use, or
    lacks what it needs, is refused with :class:`payments.errors.TariffInputInvalid`."""

    fee_code: str
    quantity: int = 1
    exemption: tuple[str, str] | None = None
    copies: int = 1
    originals: tuple[int, ...] = ()
    declared_value: int | None = None
    reduction: str | None = None

    def line_input(self) -> LineInput:
        return LineInput(
            quantity=self.quantity,
            copies=self.copies,
            originals=self.originals,
            declared_value=self.declared_value,
            reduction=self.reduction,
        )


@dataclass(frozen=True)
class OrderRequest:
    dossier_code: str
    procedure_code: str
    payer: dict[str, Any]
    fees: tuple[FeeRequest, ...]
    callback_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _AgencyLike(Protocol):
    id: str
    code: str
    name: str
    bank_bin: str
    bank_account: str
    bank_account_name: str
    time_zone: str


@dataclass(frozen=True)
class AgencyTerms:
    """What an order needs of its agency: its identity, account and business-day zone."""

    id: str
    code: str
    name: str
    bank_bin: str
    bank_account: str
    bank_account_name: str
    time_zone: str

    @classmethod
    def of(cls, agency: _AgencyLike) -> AgencyTerms:
        return cls(
            id=agency.id,
            code=agency.code,
            name=agency.name,
            bank_bin=agency.bank_bin,
            bank_account=agency.bank_account,
            bank_account_name=agency.bank_account_name,
            time_zone=agency.time_zone,
        )


class _FeeItemLike(Protocol):
    id: str
    code: str
    kind: str
    name: str
    amount: int
    unit: str | None
    max_amount: int | None
    retention_percent: int
    legal_basis: str
    tariff: dict[str, Any] | None


@dataclass(frozen=True)
class FeeSpec:
    """A fee item as published on the order's day (a catalogue row or the SQL cache's copy)."""

    id: str
    code: str
    kind: str
    name: str
    amount: int
    unit: str | None
    max_amount: int | None
    retention_percent: int
    legal_basis: str
    tariff: dict[str, Any] | None = None
    """``fee_items.tariff`` as stored (``None``: the legacy tariff of ``amount``/``max_amount``)."""

    @classmethod
    def of(cls, item: _FeeItemLike) -> FeeSpec:
        return cls(
            id=item.id,
            code=item.code,
            kind=item.kind,
            name=item.name,
            amount=int(item.amount),
            unit=item.unit,
            max_amount=item.max_amount,
            retention_percent=int(item.retention_percent),
            legal_basis=item.legal_basis,
            tariff=item.tariff,
        )

    def priced_by(self) -> Tariff:
        """The tariff this item prices by, read as :func:`payments.tariffs.tariff_of` reads a
        catalogue row (its JSON, or the legacy unit price and cap when NULL)."""
        if self.tariff is None:
            return legacy_tariff(self.amount, self.unit, self.max_amount)
        return tariff_from_json(self.tariff)


@dataclass(frozen=True)
class ProcedureSpec:
    id: str
    code: str
    name: str


@dataclass
class LineDraft:
    """One priced line, with the columns of :class:`payments.models.OrderLine`."""

    id: str
    position: int
    fee_item_id: str
    fee_code: str
    fee_name: str
    kind: str
    unit: str | None
    quantity: int
    unit_price: int
    amount: int
    retention_percent: int
    legal_basis: str
    exemption_category: str | None
    exemption_legal_basis: str | None
    pricing: dict[str, Any] | None = None
    """:func:`payments.tariffs.pricing_record` of the line, plus ``simple`` (the amount is
    plainly quantity x unit price, so the receipt needs no breakdown); ``order_lines.pricing``."""


@dataclass
class OrderDraft:
    """A priced order, with the columns of :class:`payments.models.PaymentOrder`."""

    id: str
    reference: str
    status: str
    amount: int
    dossier_code: str
    procedure_code: str
    procedure_name: str
    agency: AgencyTerms
    payer: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    lines: list[LineDraft]
    vietqr_payload: str
    callback_url: str | None
    paid_at: datetime | None = None
    payment_method: str | None = None
    receipt_error: str | None = None

    @property
    def nothing_to_collect(self) -> bool:
        """Every line exempt: the order is paid on creation and its receipt issued at once."""
        return self.amount == 0


def line_breakdown(
    pricing: dict[str, Any] | None, *, exempt: bool = False, lang: str = "vi"
) -> str | None:
    """How a line's amount was reached, in words, when it says more than quantity x unit price:
    ``None`` for a line priced before issue 14 (``pricing`` NULL), a simple line, or an exempt
    one (its amount is 0 and its exemption says why). Read from what the line froze, never from
    today's catalogue."""
    if pricing is None or exempt or pricing.get("simple", False):
        return None
    text = pricing.get("text_en" if lang == "en" else "text_vi")
    return text if isinstance(text, str) and text else None


def local_day(time_zone: str, moment: datetime) -> date:
    """The agency-local calendar day whose catalogue prices an order created at ``moment``."""
    return moment.astimezone(ZoneInfo(time_zone)).date()


def check_fee_requests(fees: Sequence[FeeRequest]) -> None:
    """The rules on the list of lines itself, before anything is looked up."""
    if not fees:
        raise InvalidInput("at least one fee line is required")
    codes = [f.fee_code for f in fees]
    if len(set(codes)) != len(codes):
        raise InvalidInput("each fee_code may appear once per order; use quantity")


def price_fee(item: FeeSpec, fee: FeeRequest) -> tuple[Tariff, Priced, dict[str, Any]]:
    """The line priced by its item's tariff: the one arithmetic of every path (the API's two
    writers, the counter's totals as you type). A full exemption is applied by the caller (the
    line is recorded at 0); the input is still checked against the tariff.

    :raises TariffInputInvalid: the line does not give what the tariff prices by.
    :raises TariffInvalid: the catalogue row's stored tariff is unreadable (never written so).
    """
    try:
        tariff = item.priced_by()
    except TariffInvalid as exc:  # a stored tariff is checked on import: a server fault
        raise RuntimeError(f"fee item {item.id} has an unreadable tariff: {exc.detail}") from exc
    line = fee.line_input()
    priced = price(tariff, line)
    record = pricing_record(tariff, line, priced)
    record["simple"] = priced.simple
    return tariff, priced, record


def draft_order(
    agency: AgencyTerms,
    procedure: ProcedureSpec,
    fee_on_day: Callable[[str], FeeSpec | None],
    request: OrderRequest,
    *,
    reference: str,
    now: datetime,
    ttl: timedelta,
    max_amount: int,
) -> OrderDraft:
    """Prices ``request`` against the fee items ``fee_on_day`` finds (``None``: not published
    for the procedure on the agency's local day → :class:`UnknownFee`)."""
    check_fee_requests(request.fees)
    lines: list[LineDraft] = []
    for position, fee in enumerate(request.fees, start=1):
        item = fee_on_day(fee.fee_code)
        if item is None:
            raise UnknownFee(
                f"fee {fee.fee_code!r} is not published for procedure {procedure.code} on "
                f"{local_day(agency.time_zone, now)}"
            )
        validate_quantity(item.code, fee.quantity)
        tariff, priced, record = price_fee(item, fee)
        quantity = sum(fee.originals) if fee.originals else fee.quantity
        lines.append(
            LineDraft(
                id=new_id(),
                position=position,
                fee_item_id=item.id,
                fee_code=item.code,
                fee_name=item.name,
                kind=item.kind,
                unit=item.unit,
                quantity=quantity,
                unit_price=headline_price(tariff),
                amount=0 if fee.exemption is not None else priced.amount,
                retention_percent=item.retention_percent,
                legal_basis=item.legal_basis,
                exemption_category=fee.exemption[0] if fee.exemption else None,
                exemption_legal_basis=fee.exemption[1] if fee.exemption else None,
                pricing=record,
            )
        )
    total = sum(line.amount for line in lines)
    if total > max_amount:
        raise AmountTooLarge(f"order total {total} VND exceeds the maximum {max_amount} VND")
    return OrderDraft(
        id=new_id(),
        reference=reference,
        status=OrderStatus.PENDING.value,
        amount=total,
        dossier_code=request.dossier_code,
        procedure_code=procedure.code,
        procedure_name=procedure.name,
        agency=agency,
        payer=request.payer,
        created_at=now,
        expires_at=now + ttl,
        lines=lines,
        vietqr_payload=(
            vietqr.build_payload(
                bank_bin=agency.bank_bin,
                account=agency.bank_account,
                amount=total,
                purpose=reference,
            )
            if total > 0
            else ""
        ),
        callback_url=request.callback_url,
    )
