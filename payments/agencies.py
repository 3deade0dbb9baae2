"""Registering and finding collecting organisations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.exceptions import ValidationError
from stdnum.vn import mst

from payments.errors import InvalidInput, UnknownAgency
from payments.models import Agency

__all__ = ["SERIES_RE", "TEMPLATES", "AgencyInput", "add_agency", "agency_by_code"]

SERIES_RE = re.compile(r"^\d{2}T[ABCDEGHKLMNPQRSTUVXY]{2}$")
"""Circular 91/2026 annex II: 2-digit year, ``T``, two letters from the permitted set."""
TEMPLATES = ("EBL01", "EBL02")
_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass(frozen=True)
class AgencyInput:
    code: str
    name: str
    tax_code: str
    address: str
    bank_bin: str
    bank_account: str
    bank_account_name: str
    series: str
    template: str = "EBL01"
    time_zone: str = "Asia/Ho_Chi_Minh"


def _validate(data: AgencyInput) -> list[str]:
    problems: list[str] = []
    if not _CODE_RE.match(data.code):
        problems.append("code: 1-32 of A-Z a-z 0-9 _ . -")
    if not data.name.strip():
        problems.append("name: required")
    try:
        mst.validate(data.tax_code)
    except ValidationError as exc:
        problems.append(f"tax_code: not a valid MST ({exc})")
    if not re.fullmatch(r"\d{6}", data.bank_bin):
        problems.append("bank_bin: 6 digits (NAPAS BIN)")
    if not re.fullmatch(r"[0-9A-Za-z]{1,19}", data.bank_account):
        problems.append("bank_account: 1-19 letters or digits")
    if not data.bank_account_name.strip():
        problems.append("bank_account_name: required")
    if not SERIES_RE.match(data.series):
        problems.append("series: must match ^\\d{2}T[ABCDEGHKLMNPQRSTUVXY]{2}$ (e.g. 26TAB)")
    if data.template not in TEMPLATES:
        problems.append("template: EBL01 or EBL02")
    try:
        ZoneInfo(data.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append("time_zone: unknown IANA zone")
    return problems


def add_agency(session: Session, data: AgencyInput) -> Agency:
    """Creates the agency, or updates it when the code exists (so ``demo`` can be re-run)."""
    problems = _validate(data)
    if problems:
        raise InvalidInput("; ".join(problems), extra={"errors": problems})
    agency = session.scalar(select(Agency).where(Agency.code == data.code))
    if agency is None:
        agency = Agency(code=data.code)
        session.add(agency)
    agency.name = data.name.strip()
    agency.tax_code = mst.format(data.tax_code)
    agency.address = data.address.strip()
    agency.bank_bin = data.bank_bin
    agency.bank_account = data.bank_account
    agency.bank_account_name = data.bank_account_name.strip()
    agency.receipt_series = data.series
    agency.receipt_template = data.template
    agency.time_zone = data.time_zone
    session.flush()
    return agency


def agency_by_code(session: Session, code: str) -> Agency:
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise UnknownAgency(f"no agency with code {code!r}")
    return agency
