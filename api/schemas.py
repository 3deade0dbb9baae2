"""Request bodies of the public API (contract.md); responses are built in ``presenters``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    model_serializer,
)

from payments.order_draft import FeeRequest


class Exemption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str = Field(min_length=1, max_length=255)
    legal_basis: str = Field(min_length=1, max_length=500)


class FeeLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fee_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")
    quantity: StrictInt = Field(default=1, ge=1, le=100_000)
    """Units; for a per-copy tariff the pages of one original (README, "How fees are priced")."""
    exemption: Exemption | None = None
    copies: StrictInt = Field(default=1, ge=1, le=1000)
    """Copies (bản) of the original, for a per-copy tariff."""
    originals: list[Annotated[StrictInt, Field(ge=1, le=100_000)]] = Field(
        default_factory=list, max_length=100
    )
    """Page counts of several different originals in one line, each priced separately;
    ``quantity`` may then be left out (it becomes their total)."""
    declared_value: StrictInt | None = Field(default=None, ge=0, lt=10**13)
    """The value (đồng) a value-banded tariff prices by."""
    reduction: str | None = Field(
        default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$"
    )
    """The code of one of the tariff's reductions (e.g. ``TRUCTUYEN``)."""

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fields added by issue 14 are left out at their defaults, so the idempotency digest
        of a body written before them is unchanged (``api.idempotent.request_digest``)."""
        data: dict[str, Any] = handler(self)
        for key, empty in (("copies", 1), ("originals", []), ("declared_value", None)):
            if data.get(key) == empty:
                data.pop(key, None)
        if data.get("reduction") is None:
            data.pop("reduction", None)
        return data

    def fee_request(self) -> FeeRequest:
        """The line for :func:`payments.order_draft.draft_order`."""
        quantity = self.quantity
        if self.originals and "quantity" not in self.model_fields_set:
            quantity = sum(self.originals)
        return FeeRequest(
            fee_code=self.fee_code,
            quantity=quantity,
            exemption=(
                (self.exemption.category, self.exemption.legal_basis) if self.exemption else None
            ),
            copies=self.copies,
            originals=tuple(self.originals),
            declared_value=self.declared_value,
            reduction=self.reduction,
        )


class PayerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    id_number: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{6,20}$")
    address: str | None = Field(default=None, max_length=500)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 .\-]{8,20}$")


class PaymentOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dossier_code: str = Field(min_length=1, max_length=64)
    procedure_code: str = Field(min_length=1, max_length=32)
    payer: PayerIn
    fees: list[FeeLineIn] = Field(min_length=1, max_length=50)
    callback_url: str | None = Field(default=None, max_length=1000)


class SandboxTransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agency: str = Field(min_length=1, max_length=32)
    amount: StrictInt = Field(gt=0, lt=10**13)
    content: str = Field(max_length=500)
    reference_code: str | None = Field(default=None, max_length=64)


class CashIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: StrictInt = Field(gt=0, lt=10**13)
    clerk: str = Field(min_length=1, max_length=255, description="Who took the cash")
