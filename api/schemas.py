"""Request bodies of the public API (contract.md); responses are built in ``presenters``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictInt


class Exemption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str = Field(min_length=1, max_length=255)
    legal_basis: str = Field(min_length=1, max_length=500)


class FeeLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fee_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")
    quantity: StrictInt = Field(default=1, ge=1, le=100_000)
    exemption: Exemption | None = None


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
