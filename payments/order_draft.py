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
from payments.catalog import line_amount, validate_quantity
from payments.errors import AmountTooLarge, InvalidInput, UnknownFee
from payments.models import new_id
from payments.states import OrderStatus

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
    "local_day",
]


@dataclass(frozen=True)
class FeeRequest:
    fee_code: str
    quantity: int = 1
    exemption: tuple[str, str] | None = None


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
        )


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
        lines.append(
            LineDraft(
                id=new_id(),
                position=position,
                fee_item_id=item.id,
                fee_code=item.code,
                fee_name=item.name,
                kind=item.kind,
                unit=item.unit,
                quantity=fee.quantity,
                unit_price=item.amount,
                amount=line_amount(item.amount, fee.quantity, item.max_amount, fee.exemption),
                retention_percent=item.retention_percent,
                legal_basis=item.legal_basis,
                exemption_category=fee.exemption[0] if fee.exemption else None,
                exemption_legal_basis=fee.exemption[1] if fee.exemption else None,
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
