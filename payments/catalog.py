"""The published fee catalogue: importing it from CSV and pricing a fee line from it.

A catalogue file is validated completely before anything is written, so a file with one bad
row changes nothing and the error names every bad line. Prices are effective-dated: importing
a changed amount with a later ``effective_from`` closes the previous price the day before.

Two optional columns carry a fee as the law writes it (:mod:`payments.tariffs`): ``tariff``, in
the text form an accountant can type (``2000/trang; từ trang 3: 1000/trang; tối đa
200000/bản``), and ``reductions`` (``TRUCTUYEN: giảm 50% (nộp trực tuyến) theo <căn cứ>``). A
row without them keeps the legacy tariff (``amount`` per unit, ``max_amount`` per line). With a
tariff, ``amount`` and ``max_amount`` stay what the tariff states first (its first price, its
cap), so every reader of those two columns still sees the published headline figures.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.errors import (
    CatalogImportError,
    InvalidInput,
    TariffInvalid,
    UnknownFee,
    UnknownProcedure,
)
from payments.models import Agency, FeeItem, Procedure
from payments.tariffs import (
    LineInput,
    Tariff,
    headline_cap,
    headline_price,
    legacy_tariff,
    parse_reductions,
    parse_tariff,
    price,
    tariff_of,
    tariff_to_json,
)

__all__ = [
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "CatalogRow",
    "ImportResult",
    "PricedLine",
    "fee_item_on",
    "import_catalog",
    "line_amount",
    "parse_catalog",
    "price_line",
    "procedure_by_code",
    "reprice_fee",
    "validate_quantity",
]

COLUMNS = (
    "procedure_code",
    "procedure_name",
    "field",
    "fee_code",
    "fee_kind",
    "fee_name",
    "amount",
    "unit",
    "max_amount",
    "retention_percent",
    "legal_basis",
)
OPTIONAL = {"unit", "max_amount", "retention_percent"}
OPTIONAL_COLUMNS = ("tariff", "reductions")
"""Columns a file may add after :data:`COLUMNS` (issue 14); absent means empty."""
_CODE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
MAX_VND = 10**12


@dataclass(frozen=True)
class CatalogRow:
    line: int
    procedure_code: str
    procedure_name: str
    field: str
    fee_code: str
    fee_kind: str
    fee_name: str
    amount: int
    unit: str | None
    max_amount: int | None
    retention_percent: int
    legal_basis: str
    tariff: Tariff | None = None
    """From the ``tariff``/``reductions`` columns; ``None``: the legacy tariff."""


@dataclass(frozen=True)
class ImportResult:
    procedures_created: int
    procedures_updated: int
    fees_created: int
    fees_unchanged: int
    fees_repriced: int


def _int(value: str, name: str, *, minimum: int, maximum: int) -> int:
    text = value.strip().replace("_", "")
    if not re.fullmatch(r"\d+", text):
        raise ValueError(f"{name} must be a whole number of VND, got {value!r}")
    number = int(text)
    if not minimum <= number <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {number}")
    return number


def _tariff(get: dict[str, str], amount: int, unit: str | None, cap: int | None) -> Tariff | None:
    """The row's tariff, checked against its ``amount``/``unit``/``max_amount`` columns.

    Those columns stay the tariff's headline figures (first price, cap) because the public
    fee page, older readers and the legacy order path read them; a row where they disagree with
    the tariff would publish one price and charge another, which is what issue 14 is about.
    """
    text, reductions = get["tariff"], get["reductions"]
    if not text and not reductions:
        return None
    try:
        if text:
            tariff = parse_tariff(text, reductions)
        else:
            tariff = replace(
                legacy_tariff(amount, unit, cap), reductions=parse_reductions(reductions)
            )
        if tariff.unit is None and unit is not None and tariff.tiers:
            tariff = replace(tariff, unit=unit)
    except TariffInvalid as exc:
        raise ValueError(f"tariff: {exc.detail}") from exc
    if tariff.unit is not None and unit is not None and tariff.unit != unit:
        raise ValueError(f"tariff: its unit {tariff.unit!r} differs from the unit column {unit!r}")
    if headline_price(tariff) != amount:
        raise ValueError(
            f"amount {amount} differs from the tariff's first price {headline_price(tariff)}"
        )
    if cap is not None and headline_cap(tariff) != cap:
        raise ValueError(f"max_amount {cap} differs from the tariff's cap {headline_cap(tariff)}")
    return tariff


def _row(line: int, raw: dict[str, str | None]) -> CatalogRow:
    get = {k: (raw.get(k) or "").strip() for k in (*COLUMNS, *OPTIONAL_COLUMNS)}
    for name in COLUMNS:
        if name not in OPTIONAL and not get[name]:
            raise ValueError(f"{name} is required")
    for name in ("procedure_code", "fee_code"):
        if not _CODE_RE.match(get[name]):
            raise ValueError(f"{name} must be 1-32 of A-Z a-z 0-9 _ . -, got {get[name]!r}")
    kind = get["fee_kind"]
    if kind not in ("phi", "le_phi"):
        raise ValueError(f"fee_kind must be 'phi' or 'le_phi', got {kind!r}")
    amount = _int(get["amount"], "amount", minimum=0, maximum=MAX_VND)
    cap = (
        _int(get["max_amount"], "max_amount", minimum=1, maximum=MAX_VND)
        if get["max_amount"]
        else None
    )
    if cap is not None and cap < amount:
        raise ValueError("max_amount is below the unit amount")
    retention = 0
    if get["retention_percent"]:
        retention = _int(get["retention_percent"], "retention_percent", minimum=0, maximum=100)
        if kind == "le_phi" and retention:
            raise ValueError(
                "retention_percent applies to phi only: le_phi goes in full to the budget"
            )
    return CatalogRow(
        line=line,
        procedure_code=get["procedure_code"],
        procedure_name=get["procedure_name"],
        field=get["field"],
        fee_code=get["fee_code"],
        fee_kind=kind,
        fee_name=get["fee_name"],
        amount=amount,
        unit=get["unit"] or None,
        max_amount=cap,
        retention_percent=retention,
        legal_basis=get["legal_basis"],
        tariff=_tariff(get, amount, get["unit"] or None, cap),
    )


def parse_catalog(data: bytes) -> list[CatalogRow]:
    """Parses and checks a whole file; raises :class:`CatalogImportError` listing every bad line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogImportError([f"file: not UTF-8 ({exc.reason} at byte {exc.start})"]) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CatalogImportError([f"line 1: missing columns {', '.join(missing)}"])
    reader.fieldnames = header
    rows: list[CatalogRow] = []
    errors: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    names: dict[str, str] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw:
            errors.append(f"line {line}: more cells than columns")
            continue
        try:
            row = _row(line, raw)
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        key = (row.procedure_code, row.fee_code)
        if key in seen:
            errors.append(
                f"line {line}: fee {row.fee_code} of {row.procedure_code} repeats line {seen[key]}"
            )
            continue
        seen[key] = line
        if names.setdefault(row.procedure_code, row.procedure_name) != row.procedure_name:
            errors.append(f"line {line}: procedure {row.procedure_code} has two different names")
            continue
        rows.append(row)
    if errors:
        raise CatalogImportError(errors)
    if not rows:
        raise CatalogImportError(["file: no rows"])
    return rows


def import_catalog(
    session: Session, agency: Agency, data: bytes, *, effective_from: date
) -> ImportResult:
    """Upserts the file's procedures and prices; re-importing the same file changes nothing."""
    rows = parse_catalog(data)
    procedures = {
        p.code: p
        for p in session.scalars(select(Procedure).where(Procedure.agency_id == agency.id))
    }
    created = updated = fees_created = unchanged = repriced = 0
    for row in rows:
        proc = procedures.get(row.procedure_code)
        if proc is None:
            proc = Procedure(
                agency_id=agency.id,
                code=row.procedure_code,
                name=row.procedure_name,
                field=row.field,
            )
            session.add(proc)
            session.flush()
            procedures[row.procedure_code] = proc
            created += 1
        elif (proc.name, proc.field) != (row.procedure_name, row.field):
            proc.name, proc.field = row.procedure_name, row.field
            updated += 1
        current = fee_item_on(session, proc, row.fee_code, effective_from, required=False)
        tariff_json = tariff_to_json(row.tariff) if row.tariff is not None else None
        same = current is not None and (
            current.kind,
            current.name,
            current.amount,
            current.unit,
            current.max_amount,
            current.retention_percent,
            current.legal_basis,
            current.tariff,
        ) == (
            row.fee_kind,
            row.fee_name,
            row.amount,
            row.unit,
            row.max_amount,
            row.retention_percent,
            row.legal_basis,
            tariff_json,
        )
        if same:
            unchanged += 1
            continue
        if current is not None:
            if current.effective_from >= effective_from:
                raise CatalogImportError(
                    [
                        f"line {row.line}: fee {row.fee_code} already has a price from "
                        f"{current.effective_from}; choose a later effective date"
                    ]
                )
            current.effective_to = effective_from - timedelta(days=1)
            repriced += 1
        else:
            fees_created += 1
        session.add(
            FeeItem(
                procedure_id=proc.id,
                code=row.fee_code,
                kind=row.fee_kind,
                name=row.fee_name,
                amount=row.amount,
                unit=row.unit,
                max_amount=row.max_amount,
                retention_percent=row.retention_percent,
                legal_basis=row.legal_basis,
                effective_from=effective_from,
                tariff=tariff_json,
            )
        )
    session.flush()
    return ImportResult(created, updated, fees_created, unchanged, repriced)


def procedure_by_code(session: Session, agency_id: str, code: str) -> Procedure:
    proc = session.scalar(
        select(Procedure).where(Procedure.agency_id == agency_id, Procedure.code == code)
    )
    if proc is None:
        raise UnknownProcedure(f"procedure {code!r} is not in this agency's catalogue")
    return proc


def fee_item_on(
    session: Session, procedure: Procedure, fee_code: str, day: date, *, required: bool = True
) -> FeeItem | None:
    """The price of ``fee_code`` in force on ``day`` (the agency's local date)."""
    item = session.scalar(
        select(FeeItem)
        .where(
            FeeItem.procedure_id == procedure.id,
            FeeItem.code == fee_code,
            FeeItem.effective_from <= day,
            (FeeItem.effective_to.is_(None)) | (FeeItem.effective_to >= day),
        )
        .order_by(FeeItem.effective_from.desc())
        .limit(1)
    )
    if item is None and required:
        raise UnknownFee(
            f"fee {fee_code!r} is not published for procedure {procedure.code} on {day}"
        )
    return item


@dataclass(frozen=True)
class PricedLine:
    item: FeeItem
    quantity: int
    unit_price: int
    amount: int
    exemption_category: str | None
    exemption_legal_basis: str | None


def validate_quantity(fee_code: str, quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvalidInput(f"quantity of {fee_code} must be a positive whole number")
    if quantity > 100_000:
        raise InvalidInput(f"quantity of {fee_code} is implausibly large")


def line_amount(
    unit_price: int, quantity: int, max_amount: int | None, exemption: tuple[str, str] | None
) -> int:
    """The legacy arithmetic (quantity × unit price, capped per line; an exempt line is 0), which
    :func:`payments.tariffs.legacy_tariff` reproduces. Orders are priced by their tariff
    (:func:`payments.order_draft.price_fee`); this stays for comparison in tests."""
    if exemption is not None:
        return 0
    amount = quantity * unit_price
    return min(amount, max_amount) if max_amount is not None else amount


def price_line(
    item: FeeItem, quantity: int, exemption: tuple[str, str] | None = None
) -> PricedLine:
    """One line of ``quantity`` units priced by the item's tariff (:func:`payments.tariffs.price`,
    the arithmetic of every path); 0 if exempt."""
    validate_quantity(item.code, quantity)
    tariff = tariff_of(item)
    priced = price(tariff, LineInput(quantity=quantity))
    return PricedLine(
        item=item,
        quantity=quantity,
        unit_price=headline_price(tariff),
        amount=0 if exemption is not None else priced.amount,
        exemption_category=exemption[0] if exemption else None,
        exemption_legal_basis=exemption[1] if exemption else None,
    )


def reprice_fee(
    session: Session,
    agency: Agency,
    fee_item_id: str,
    amount: int,
    *,
    effective_from: date,
    tariff: Tariff | None = None,
) -> tuple[FeeItem, FeeItem]:
    """A new price for one fee item from ``effective_from``, as a new row; returns (old, new).

    The price in force is closed the day before, never edited, so orders priced earlier keep
    their lines and the catalogue still says what applied on any past day. Only the latest
    version of an item can be repriced, and only from a day after it started: anything else
    would make two prices overlap. The caller decides how early ``effective_from`` may be.

    ``tariff`` replaces the whole tariff (``amount`` must be its first price). Without it, an
    item that has a tariff keeps it with only its first price (first tier, or first band)
    changed to ``amount``: the admin page's "Đổi mức thu" edits that one figure, and the other
    tiers, caps and bands stay as published until a tariff or a catalogue file says otherwise.
    """
    item = session.get(FeeItem, fee_item_id)
    if item is None or item.procedure.agency_id != agency.id:
        raise UnknownFee(
            "Khoản thu không có trong danh mục của đơn vị / "
            f"fee item {fee_item_id!r} is not in this agency's catalogue"
        )
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_VND:
        raise InvalidInput(
            f"Mức thu phải là số nguyên đồng từ 0 đến {MAX_VND} / "
            f"amount must be a whole number of VND between 0 and {MAX_VND}"
        )
    if tariff is not None and headline_price(tariff) != amount:
        raise InvalidInput(
            f"Mức thu {amount} khác đơn giá đầu tiên {headline_price(tariff)} của biểu / "
            f"amount {amount} differs from the tariff's first price {headline_price(tariff)}"
        )
    if tariff is None and item.max_amount is not None and amount > item.max_amount:
        raise InvalidInput(
            f"Mức thu {amount} vượt mức tối đa {item.max_amount} của khoản thu; muốn đổi mức "
            f"tối đa hãy nhập tệp danh mục / amount {amount} is above the item's cap of "
            f"{item.max_amount} per line; import a catalogue file to change the cap"
        )
    latest = session.scalar(
        select(FeeItem)
        .where(FeeItem.procedure_id == item.procedure_id, FeeItem.code == item.code)
        .order_by(FeeItem.effective_from.desc())
        .limit(1)
    )
    if latest is None or latest.id != item.id or item.effective_to is not None:
        later = latest.effective_from if latest else "?"
        raise InvalidInput(
            f"Khoản thu {item.code} đã có mức thu sau (từ {later}); hãy sửa mức đó / "
            f"fee {item.code} has a later price (from {later}); reprice that one"
        )
    if effective_from <= item.effective_from:
        raise InvalidInput(
            f"Khoản thu {item.code} đã có mức thu từ {item.effective_from}; hãy chọn ngày "
            f"hiệu lực sau đó / fee {item.code} already has a price from "
            f"{item.effective_from}; choose a later effective date"
        )
    new_tariff = tariff
    if new_tariff is None and item.tariff is not None:
        new_tariff = _with_first_price(tariff_of(item), amount)
    new_json = tariff_to_json(new_tariff) if new_tariff is not None else None
    if amount == item.amount and new_json == item.tariff:
        raise InvalidInput(
            f"Khoản thu {item.code} đang có đúng mức {amount} đồng / "
            f"fee {item.code} already costs {amount} VND"
        )
    item.effective_to = effective_from - timedelta(days=1)
    new = FeeItem(
        procedure_id=item.procedure_id,
        code=item.code,
        kind=item.kind,
        name=item.name,
        amount=amount,
        unit=(tariff.unit or item.unit) if tariff is not None else item.unit,
        max_amount=headline_cap(tariff) if tariff is not None else item.max_amount,
        retention_percent=item.retention_percent,
        legal_basis=item.legal_basis,
        effective_from=effective_from,
        tariff=new_json,
    )
    session.add(new)
    session.flush()
    return item, new


def _with_first_price(tariff: Tariff, amount: int) -> Tariff:
    """``tariff`` with its headline figure (first tier's price, or first band's amount) changed."""
    if tariff.tiers:
        first = replace(tariff.tiers[0], price=amount)
        return replace(tariff, tiers=(first, *tariff.tiers[1:]))
    band = replace(tariff.bands[0], amount=amount)
    return replace(tariff, bands=(band, *tariff.bands[1:]))
