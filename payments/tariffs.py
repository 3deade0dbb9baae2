"""Fees as the law writes them: tariffs, and the one pure function that prices a line by them.

Why a module of its own, with no database access: a fee's amount is decided in several places
(the one-stop API, the counter's preview, the pay page, the revenue report, the exceptions'
"under/over-paid" check) and must be the same arithmetic everywhere. Callers turn a catalogue row
into a :class:`Tariff` (:func:`tariff_of`), the order line into a :class:`LineInput`, and call
:func:`price`; what comes back says the amount *and* how it was reached, in Vietnamese and in
English, for the pay page, the PDF and the signed receipt.

The shapes (``../shared/docs/domain.md``, "How fees are priced"):

* ``unit``: a price per unit x quantity, optionally **tiered over the unit index** (units 1-2 at
  one price, from unit 3 another). A flat amount per case is a unit tariff whose unit is the case
  (``10000/trường hợp``). The legacy tariff of a catalogue row without one is this shape:
  ``amount`` per unit with ``max_amount`` as the line cap, exactly the arithmetic of before.
* ``copy``: the same tiers over the **pages of one original**, priced **per copy** (bản), with a
  per-copy cap and floor, times the number of copies; several different originals in one line
  are priced separately and added (Circular 226/2016/TT-BTC: 2,000 đ/page for pages 1-2, 1,000 đ
  from page 3, at most 200,000 đ per copy).
* ``value``: **bands over a declared value**; a band applies from its floor (inclusive) to the
  next band's floor (exclusive) and is a fixed amount, or a base plus a percentage of the part of
  the value above the band's floor (the shape of notary fees, Circular 257/2016/TT-BTC).

Every shape may have a cap and a floor per line and **reductions**: a percentage off, each with
its code and legal basis, chosen by the line. Order of the steps: per copy (tiers, per-copy cap,
then floor) x copies, summed over originals; then the line cap, then the line floor; then the
reduction, so "giảm 50%" halves what would otherwise be due, cap included (the domain brief: "a
reduction is a percentage of the computed amount"). A full exemption is not a reduction: it stays
where it is today (the order line records it at 0 with its basis).

Money is integer đồng throughout; a percentage is a :class:`~decimal.Decimal` and its result is
**rounded half up to the đồng once**, where the fraction arises (the percentage part of a band;
the amount left after a reduction). No float is ever used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final, Protocol

from payments.errors import TariffInputInvalid, TariffInvalid

__all__ = [
    "JSON_VERSION",
    "MAX_COPIES",
    "MAX_DECLARED_VALUE",
    "MAX_ORIGINALS",
    "MAX_UNITS",
    "MAX_VND",
    "Band",
    "LineInput",
    "Part",
    "PartKind",
    "Priced",
    "Reduction",
    "Tariff",
    "TariffKind",
    "Tier",
    "describe",
    "format_reductions",
    "format_tariff",
    "headline_cap",
    "headline_price",
    "legacy_tariff",
    "line_input_from_json",
    "line_input_to_json",
    "parse_reductions",
    "parse_tariff",
    "price",
    "pricing_record",
    "round_half_up",
    "tariff_from_json",
    "tariff_of",
    "tariff_to_json",
]

MAX_VND: Final = 10**12
"""Largest price, cap or floor a tariff may state (as the catalogue's amounts)."""
MAX_DECLARED_VALUE: Final = 10**15
MAX_UNITS: Final = 100_000
"""Largest quantity or page count of a line (as :func:`payments.catalog.validate_quantity`)."""
MAX_COPIES: Final = 1_000
MAX_ORIGINALS: Final = 100
JSON_VERSION: Final = 1
"""``v`` of the JSON stored in ``fee_items.tariff`` and ``order_lines.pricing``."""

_CODE_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_UNIT_BAD: Final = re.compile(r"[\d;:/|()]")

UNIT_WORDS_EN: Final[dict[str, tuple[str, str]]] = {
    "trang": ("page", "pages"),
    "bản": ("copy", "copies"),
    "trường hợp": ("case", "cases"),
    "hợp đồng": ("contract", "contracts"),
    "giấy": ("certificate", "certificates"),
    "giấy phép": ("licence", "licences"),
    "hồ sơ": ("dossier", "dossiers"),
    "lần": ("application", "applications"),
    "phòng": ("room", "rooms"),
    "việc": ("matter", "matters"),
}
"""English for the catalogue's units, for the English text; an unknown unit stays as written."""
_UNIT_FROM_EN: Final = {
    en: vi for vi, forms in UNIT_WORDS_EN.items() for en in forms if vi != "lần"
}


class TariffKind(StrEnum):
    UNIT = "unit"
    """Price per unit x quantity (tiers over the unit index within the line)."""
    COPY = "copy"
    """Tiers over the pages of one original, priced per copy, x copies, per original."""
    VALUE = "value"
    """Bands over a declared value."""


@dataclass(frozen=True, slots=True)
class Tier:
    """From unit ``from_unit`` (1-based, inclusive) on, each unit costs ``price`` đồng."""

    from_unit: int
    price: int


@dataclass(frozen=True, slots=True)
class Band:
    """From ``from_value`` đồng of declared value (inclusive) up to the next band's floor.

    The fee is ``amount``, plus ``percent`` % of the part of the value above ``from_value`` when
    ``percent`` is set (``amount`` is then the band's base).
    """

    from_value: int
    amount: int
    percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Reduction:
    """A percentage off for a category of payer, with the text that grants it."""

    code: str
    percent: Decimal
    legal_basis: str
    label: str | None = None
    """Who it is for, in Vietnamese (e.g. "nộp hồ sơ trực tuyến"); printed with the basis."""


def _bad(vi: str, en: str) -> TariffInvalid:
    return TariffInvalid(f"{vi} / {en}")


def _check_vnd(value: object, what_vi: str, what_en: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{what_vi} phải là số nguyên đồng", f"{what_en} must be whole đồng")
    if not minimum <= value <= MAX_VND:
        raise _bad(
            f"{what_vi} phải từ {minimum} đến {MAX_VND} đồng",
            f"{what_en} must be between {minimum} and {MAX_VND} VND",
        )
    return value


def _check_percent(value: object, what_vi: str, what_en: str, *, below_100: bool) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise _bad(f"{what_vi} phải là một số phần trăm", f"{what_en} must be a percentage")
    top = Decimal(100)
    if value <= 0 or value > top or (below_100 and value == top):
        limit = "dưới 100" if below_100 else "tối đa 100"
        limit_en = "below 100" if below_100 else "at most 100"
        raise _bad(
            f"{what_vi} phải lớn hơn 0 và {limit}",
            f"{what_en} must be above 0 and {limit_en}",
        )
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise _bad(f"{what_vi} có quá 4 chữ số thập phân", f"{what_en} has more than 4 decimals")
    return value


@dataclass(frozen=True, slots=True)
class Tariff:
    """How one fee item is priced; validated on construction, so a Tariff always prices.

    ``unit`` names what ``quantity`` counts (``trang``, ``trường hợp``); it is ``None`` for a
    value tariff. Caps and floors are optional; a floor never exceeds its cap.
    """

    kind: TariffKind
    unit: str | None = None
    tiers: tuple[Tier, ...] = ()
    bands: tuple[Band, ...] = ()
    copy_cap: int | None = None
    copy_floor: int | None = None
    line_cap: int | None = None
    line_floor: int | None = None
    reductions: tuple[Reduction, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.kind, TariffKind):
            raise _bad("loại biểu mức thu không rõ", f"unknown tariff kind {self.kind!r}")
        if self.unit is not None and (
            not self.unit.strip()
            or self.unit != " ".join(self.unit.split())
            or len(self.unit) > 32
            or _UNIT_BAD.search(self.unit)
        ):
            raise _bad(
                f"đơn vị tính {self.unit!r} không hợp lệ (không chứa số hay ; : / | ( ))",
                f"unit {self.unit!r} is not valid (no digits or ; : / | ( ), at most 32)",
            )
        if self.kind is TariffKind.VALUE:
            self._check_value()
        else:
            self._check_tiers()
        for cap, floor, vi, en in (
            (self.copy_cap, self.copy_floor, "mỗi bản", "per copy"),
            (self.line_cap, self.line_floor, "cả khoản", "per line"),
        ):
            if cap is not None:
                _check_vnd(cap, f"mức tối đa {vi}", f"cap {en}", minimum=1)
            if floor is not None:
                _check_vnd(floor, f"mức tối thiểu {vi}", f"floor {en}", minimum=1)
            if cap is not None and floor is not None and floor > cap:
                raise _bad(
                    f"mức tối thiểu {vi} lớn hơn mức tối đa", f"the floor {en} is above the cap"
                )
        if self.kind is not TariffKind.COPY and (
            self.copy_cap is not None or self.copy_floor is not None
        ):
            raise _bad(
                "mức tối đa/tối thiểu mỗi bản chỉ dùng cho biểu tính theo bản",
                "a cap or floor per copy needs a per-copy tariff",
            )
        codes: set[str] = set()
        for r in self.reductions:
            if not isinstance(r.code, str) or not _CODE_RE.match(r.code):
                raise _bad(
                    f"mã giảm {r.code!r} phải gồm 1-32 ký tự A-Z a-z 0-9 _ . -",
                    f"reduction code {r.code!r} must be 1-32 of A-Z a-z 0-9 _ . -",
                )
            if r.code in codes:
                raise _bad(f"mã giảm {r.code} lặp lại", f"reduction code {r.code} repeats")
            codes.add(r.code)
            _check_percent(r.percent, f"mức giảm {r.code}", f"reduction {r.code}", below_100=True)
            if not r.legal_basis.strip() or "|" in r.legal_basis or len(r.legal_basis) > 500:
                raise _bad(
                    f"mức giảm {r.code} cần căn cứ pháp lý (tối đa 500 ký tự, không có |)",
                    f"reduction {r.code} needs a legal basis (at most 500 characters, no |)",
                )
            if r.label is not None and (not r.label.strip() or re.search(r"[()|]", r.label)):
                raise _bad(
                    f"diễn giải của mức giảm {r.code} không hợp lệ",
                    f"the label of reduction {r.code} is not valid (no ( ) |)",
                )

    def _check_tiers(self) -> None:
        if self.bands:
            raise _bad("biểu theo đơn vị không có khung giá trị", "a unit tariff has no bands")
        if not self.tiers:
            raise _bad("biểu mức thu cần ít nhất một đơn giá", "a tariff needs a price")
        previous = 0
        for tier in self.tiers:
            if isinstance(tier.from_unit, bool) or not isinstance(tier.from_unit, int):
                raise _bad("bậc phải bắt đầu từ một số nguyên", "a tier starts at a whole unit")
            if tier.from_unit <= previous or tier.from_unit > MAX_UNITS:
                raise _bad(
                    "các bậc phải bắt đầu từ đơn vị 1 và tăng dần",
                    "tiers must start at unit 1 and increase",
                )
            previous = tier.from_unit
            _check_vnd(tier.price, "đơn giá", "price")
        if self.tiers[0].from_unit != 1:
            raise _bad("bậc đầu tiên phải bắt đầu từ đơn vị 1", "the first tier starts at unit 1")

    def _check_value(self) -> None:
        if self.tiers or self.unit is not None:
            raise _bad(
                "biểu theo giá trị không có đơn giá hay đơn vị tính",
                "a value tariff has no unit prices and no unit",
            )
        if not self.bands:
            raise _bad("biểu theo giá trị cần ít nhất một khung", "a value tariff needs a band")
        previous = -1
        for band in self.bands:
            if isinstance(band.from_value, bool) or not isinstance(band.from_value, int):
                raise _bad("mức sàn của khung phải là số nguyên", "a band floor is whole đồng")
            if band.from_value <= previous or band.from_value > MAX_DECLARED_VALUE:
                raise _bad(
                    "các khung giá trị phải bắt đầu từ 0 và tăng dần",
                    "bands must start at 0 and increase",
                )
            previous = band.from_value
            _check_vnd(band.amount, "mức thu của khung", "band amount")
            if band.percent is not None:
                _check_percent(band.percent, "tỷ lệ của khung", "band percentage", below_100=False)
        if self.bands[0].from_value != 0:
            raise _bad("khung đầu tiên phải bắt đầu từ 0", "the first band starts at 0")


# --------------------------------------------------------------------------- line input


@dataclass(frozen=True, slots=True)
class LineInput:
    """What an order line says about itself, beyond the fee code.

    ``quantity`` keeps today's meaning: units for a unit tariff, the pages of **one** copy for a
    per-copy tariff. ``originals`` lists the page counts of several different originals in one
    line (each priced as ``copies`` copies); ``quantity`` is then omitted or their total.
    ``declared_value`` is what a value tariff prices by; ``reduction`` a code of the tariff's
    reductions.
    """

    quantity: int | None = None
    copies: int = 1
    originals: tuple[int, ...] = ()
    declared_value: int | None = None
    reduction: str | None = None


class PartKind(StrEnum):
    UNITS = "units"
    """``count`` units at ``price`` (times the copies of the original, if per copy)."""
    FIXED = "fixed"
    """A band's fixed amount or base."""
    PERCENT = "percent"
    """``percent`` % of ``base`` (the declared value above the band's floor), rounded."""
    COPY_CAP = "copy_cap"
    COPY_FLOOR = "copy_floor"
    LINE_CAP = "line_cap"
    LINE_FLOOR = "line_floor"
    REDUCTION = "reduction"


@dataclass(frozen=True, slots=True)
class Part:
    """One step of a line's computation; the parts' ``amount`` add up to the line's amount.

    ``amount`` is the step's signed contribution to the whole line (copies included): a cap is
    negative, a floor positive, a reduction negative.
    """

    kind: PartKind
    amount: int
    count: int = 0
    price: int = 0
    copies: int = 1
    original: int | None = None
    """1-based index of the original this part belongs to (per-copy tariffs with originals)."""
    percent: Decimal | None = None
    base: int = 0
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Priced:
    """The amount of a line and how it was reached."""

    amount: int
    parts: tuple[Part, ...]
    text_vi: str
    text_en: str

    @property
    def simple(self) -> bool:
        """True when the amount is plainly quantity x one price: the receipt's own quantity and
        unit price already say it, so a breakdown would only repeat them."""
        return len(self.parts) == 1 and self.parts[0].kind is PartKind.UNITS


def _need(vi: str, en: str) -> TariffInputInvalid:
    return TariffInputInvalid(f"{vi} / {en}")


def _whole(value: object, lo: int, hi: int, vi: str, en: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _need(
            f"{vi} phải là số nguyên từ {lo} đến {hi}", f"{en} must be a whole number {lo}-{hi}"
        )
    return value


# --------------------------------------------------------------------------- arithmetic


def round_half_up(value: Decimal) -> int:
    """To the đồng, halves away from zero (all our amounts are non-negative)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tier_counts(tiers: Sequence[Tier], units: int) -> list[tuple[int, int]]:
    """(count, price) per tier for units 1..``units``, tiers with no unit left out."""
    out: list[tuple[int, int]] = []
    for i, tier in enumerate(tiers):
        last = tiers[i + 1].from_unit - 1 if i + 1 < len(tiers) else units
        count = min(units, last) - tier.from_unit + 1
        if count > 0:
            out.append((count, tier.price))
    return out


def _reduction_of(tariff: Tariff, code: str | None) -> Reduction | None:
    if code is None:
        return None
    for r in tariff.reductions:
        if r.code == code:
            return r
    known = ", ".join(r.code for r in tariff.reductions)
    if not known:
        raise _need(
            f"khoản thu này không có mức giảm {code!r}",
            f"this fee has no reduction {code!r}",
        )
    raise _need(
        f"khoản thu này không có mức giảm {code!r}; các mức giảm: {known}",
        f"this fee has no reduction {code!r}; its reductions: {known}",
    )


def _check_input(tariff: Tariff, line: LineInput) -> tuple[int, ...]:
    """The page/unit counts to price (one per original), after checking the line fits the tariff."""
    unit = tariff.unit or "đơn vị"
    if line.reduction is not None and not isinstance(line.reduction, str):
        raise _need("mã giảm phải là chuỗi", "reduction must be a code")
    _reduction_of(tariff, line.reduction)
    copies = _whole(line.copies, 1, MAX_COPIES, "số bản", "copies")
    if tariff.kind is TariffKind.VALUE:
        if line.declared_value is None:
            raise _need(
                "khoản thu này tính theo giá trị: cần giá trị khai báo (declared_value, đồng)",
                "this fee is priced by value: give the declared value (declared_value, VND)",
            )
        _whole(line.declared_value, 0, MAX_DECLARED_VALUE, "giá trị khai báo", "declared value")
        if line.quantity not in (None, 1) or copies != 1 or line.originals:
            raise _need(
                "khoản thu tính theo giá trị là một trường hợp: số lượng 1, không có số bản "
                "hay bản chính (mỗi giá trị một dòng)",
                "a fee priced by value is one case: quantity 1, no copies or originals "
                "(one line per declared value)",
            )
        return (1,)
    if line.declared_value is not None:
        raise _need(
            "khoản thu này không tính theo giá trị khai báo: bỏ declared_value",
            "this fee is not priced by a declared value: leave declared_value out",
        )
    if tariff.kind is TariffKind.UNIT:
        if copies != 1 or line.originals:
            raise _need(
                f"khoản thu này tính theo {unit}: chỉ cần số lượng (quantity), "
                "không có số bản hay bản chính",
                f"this fee is priced per {unit}: give quantity only, no copies or originals",
            )
        if line.quantity is None:
            raise _need(
                f"khoản thu này tính theo {unit}: cần số lượng (quantity)",
                f"this fee is priced per {unit}: give the quantity",
            )
        return (_whole(line.quantity, 1, MAX_UNITS, "số lượng", "quantity"),)
    if line.originals:
        if not isinstance(line.originals, tuple) or len(line.originals) > MAX_ORIGINALS:
            raise _need(
                f"danh sách bản chính phải có 1 đến {MAX_ORIGINALS} số trang",
                f"originals must list 1 to {MAX_ORIGINALS} page counts",
            )
        pages = tuple(
            _whole(p, 1, MAX_UNITS, f"số {unit} của bản chính", "pages of an original")
            for p in line.originals
        )
        if line.quantity is not None and line.quantity != sum(pages):
            raise _need(
                f"số lượng ({line.quantity}) khác tổng số {unit} của các bản chính "
                f"({sum(pages)}): bỏ số lượng hoặc sửa cho khớp",
                f"quantity ({line.quantity}) differs from the originals' total pages "
                f"({sum(pages)}): leave it out or make it agree",
            )
        return pages
    if line.quantity is None:
        raise _need(
            f"khoản thu này tính theo {unit} của từng bản: cần số {unit} của bản chính "
            "(quantity) hoặc danh sách bản chính (originals), và số bản (copies)",
            "this fee is priced per page of each copy: give the pages of the original "
            "(quantity) or a list of originals (originals), and the number of copies (copies)",
        )
    return (
        _whole(
            line.quantity,
            1,
            MAX_UNITS,
            f"số {unit} của bản chính (quantity)",
            "quantity (pages of the original)",
        ),
    )


def price(tariff: Tariff, line: LineInput) -> Priced:
    """The line's amount by ``tariff``, with its breakdown and its text in both languages.

    :raises TariffInputInvalid: the line lacks what the tariff prices by, or gives what it
        does not (copies for a unit price, a declared value for pages), or names an unknown
        reduction. The message says what the tariff needs.
    """
    counts = _check_input(tariff, line)
    parts: list[Part] = []
    if tariff.kind is TariffKind.VALUE:
        assert line.declared_value is not None
        parts += _value_parts(tariff, line.declared_value)
    else:
        per_copy = tariff.kind is TariffKind.COPY
        copies = line.copies if per_copy else 1
        several = len(counts) > 1
        for index, units in enumerate(counts, start=1):
            original = index if several else None
            raw = 0
            for count, unit_price in _tier_counts(tariff.tiers, units):
                parts.append(
                    Part(
                        PartKind.UNITS,
                        count * unit_price * copies,
                        count=count,
                        price=unit_price,
                        copies=copies,
                        original=original,
                    )
                )
                raw += count * unit_price
            copy_amount = raw
            if tariff.copy_cap is not None and copy_amount > tariff.copy_cap:
                parts.append(
                    Part(
                        PartKind.COPY_CAP,
                        (tariff.copy_cap - copy_amount) * copies,
                        price=tariff.copy_cap,
                        copies=copies,
                        original=original,
                    )
                )
                copy_amount = tariff.copy_cap
            if tariff.copy_floor is not None and copy_amount < tariff.copy_floor:
                parts.append(
                    Part(
                        PartKind.COPY_FLOOR,
                        (tariff.copy_floor - copy_amount) * copies,
                        price=tariff.copy_floor,
                        copies=copies,
                        original=original,
                    )
                )
    amount = sum(p.amount for p in parts)
    if tariff.line_cap is not None and amount > tariff.line_cap:
        parts.append(Part(PartKind.LINE_CAP, tariff.line_cap - amount, price=tariff.line_cap))
        amount = tariff.line_cap
    if tariff.line_floor is not None and amount < tariff.line_floor:
        parts.append(Part(PartKind.LINE_FLOOR, tariff.line_floor - amount, price=tariff.line_floor))
        amount = tariff.line_floor
    reduction = _reduction_of(tariff, line.reduction)
    if reduction is not None:
        left = round_half_up(Decimal(amount) * (100 - reduction.percent) / 100)
        parts.append(
            Part(
                PartKind.REDUCTION,
                left - amount,
                percent=reduction.percent,
                base=amount,
                code=reduction.code,
            )
        )
        amount = left
    assert amount == sum(p.amount for p in parts) and amount >= 0
    done = tuple(parts)
    return Priced(
        amount=amount,
        parts=done,
        text_vi=_text(tariff, line, done, _VI),
        text_en=_text(tariff, line, done, _EN),
    )


def _value_parts(tariff: Tariff, value: int) -> list[Part]:
    band = next(b for b in reversed(tariff.bands) if b.from_value <= value)
    parts = [Part(PartKind.FIXED, band.amount, price=band.amount, base=band.from_value)]
    if band.percent is not None:
        above = value - band.from_value
        parts.append(
            Part(
                PartKind.PERCENT,
                round_half_up(Decimal(above) * band.percent / 100),
                percent=band.percent,
                base=above,
            )
        )
    return parts


# --------------------------------------------------------------------------- words


def _group(amount: int, sep: str) -> str:
    return f"{amount:,}".replace(",", sep)


def _percent_text(value: Decimal, decimal_sep: str) -> str:
    return format(value.normalize(), "f").replace(".", decimal_sep)


@dataclass(frozen=True, slots=True)
class _Lang:
    vi: bool

    def money(self, amount: int) -> str:
        return f"{_group(amount, '.')} đ" if self.vi else f"{_group(amount, ',')} VND"

    def pct(self, value: Decimal) -> str:
        return _percent_text(value, "," if self.vi else ".") + "%"

    def units(self, count: int, unit: str | None) -> str:
        if self.vi:
            return f"{count} {unit}" if unit else str(count)
        if unit is None:
            return str(count)
        one, many = UNIT_WORDS_EN.get(unit, (unit, unit))
        return f"{count} {one if count == 1 else many}"

    def unit_name(self, unit: str | None) -> str:
        if self.vi:
            return unit or "đơn vị"
        return UNIT_WORDS_EN.get(unit, (unit, unit))[0] if unit else "unit"

    def copies(self, count: int) -> str:
        return f"{count} bản" if self.vi else f"{count} {'copy' if count == 1 else 'copies'}"

    def per_copy(self, amount: int) -> str:
        return f"{self.money(amount)}/bản" if self.vi else f"{self.money(amount)} per copy"

    def at_most(self) -> str:
        return "tối đa" if self.vi else "at most"

    def at_least(self) -> str:
        return "tối thiểu" if self.vi else "at least"

    def reduction(self, r: Reduction) -> str:
        label = f" ({r.label})" if r.label else ""
        if self.vi:
            return f"giảm {self.pct(r.percent)}{label} theo {r.legal_basis}"
        return f"{self.pct(r.percent)} reduction{label} under {r.legal_basis}"


_VI: Final = _Lang(vi=True)
_EN: Final = _Lang(vi=False)


def _text(tariff: Tariff, line: LineInput, parts: tuple[Part, ...], lang: _Lang) -> str:
    """Each step of ``parts`` in words: "2 trang × 2.000 đ + 1 trang × 1.000 đ = 5.000 đ"."""
    steps: list[str] = []
    if tariff.kind is TariffKind.VALUE:
        fixed = next(p for p in parts if p.kind is PartKind.FIXED)
        terms = [lang.money(fixed.amount)] if fixed.amount or len(parts) == 1 else []
        pct = next((p for p in parts if p.kind is PartKind.PERCENT), None)
        if pct is not None and pct.percent is not None:
            terms.append(f"{lang.pct(pct.percent)} × {lang.money(pct.base)}")
        value = line.declared_value or 0
        label = "giá trị khai báo" if lang.vi else "declared value"
        subtotal = fixed.amount + (pct.amount if pct else 0)
        result = f" = {lang.money(subtotal)}" if pct is not None else ""
        steps.append(f"{label} {lang.money(value)}: {' + '.join(terms)}{result}")
    else:
        originals = sorted({p.original for p in parts if p.original is not None})
        groups: list[int | None] = [*originals] if originals else [None]
        subtotals: list[str] = []
        for original in groups:
            own = [p for p in parts if p.original == original and p.kind is not PartKind.LINE_CAP]
            units = [p for p in own if p.kind is PartKind.UNITS]
            copies = units[0].copies if units else line.copies
            body = " + ".join(
                f"{lang.units(p.count, tariff.unit)} × {lang.money(p.price)}" for p in units
            )
            for p in own:
                if p.kind is PartKind.COPY_CAP:
                    body += f", {lang.at_most()} {lang.per_copy(p.price)}"
                elif p.kind is PartKind.COPY_FLOOR:
                    body += f", {lang.at_least()} {lang.per_copy(p.price)}"
            if copies > 1:
                body = f"({body}) × {lang.copies(copies)}"
            total = sum(
                p.amount
                for p in own
                if p.kind in (PartKind.UNITS, PartKind.COPY_CAP, PartKind.COPY_FLOOR)
            )
            if original is None:
                steps.append(f"{body} = {lang.money(total)}")
            else:
                name = "bản chính" if lang.vi else "original"
                subtotals.append(f"{name} {original}: {body} = {lang.money(total)}")
        if subtotals:
            amount = sum(
                p.amount
                for p in parts
                if p.kind in (PartKind.UNITS, PartKind.COPY_CAP, PartKind.COPY_FLOOR)
            )
            steps.append("; ".join(subtotals))
            steps.append(f"{'cộng' if lang.vi else 'in all'} {lang.money(amount)}")
    for p in parts:
        if p.kind is PartKind.LINE_CAP:
            steps.append(f"{lang.at_most()} {lang.money(p.price)}")
        elif p.kind is PartKind.LINE_FLOOR:
            steps.append(f"{lang.at_least()} {lang.money(p.price)}")
        elif p.kind is PartKind.REDUCTION:
            r = _reduction_of(tariff, p.code)
            assert r is not None
            left = p.base + p.amount
            steps.append(f"{lang.reduction(r)}: {lang.money(left)}")
    return "; ".join(steps)


def describe(tariff: Tariff, lang: str = "vi") -> str:
    """The tariff in words, for the public fee page and the pay page.

    e.g. "2.000 đ/trang cho trang 1–2; 1.000 đ/trang từ trang 3; tối đa 200.000 đ/bản".
    """
    w = _VI if lang == "vi" else _EN
    out: list[str] = []
    if tariff.kind is TariffKind.VALUE:
        bands = tariff.bands
        pieces = []
        for i, band in enumerate(bands):
            nxt = bands[i + 1].from_value if i + 1 < len(bands) else None
            if band.from_value == 0 and nxt is not None:
                where = f"dưới {w.money(nxt)}" if w.vi else f"below {w.money(nxt)}"
            elif nxt is not None:
                where = (
                    f"từ {w.money(band.from_value)} đến dưới {w.money(nxt)}"
                    if w.vi
                    else f"from {w.money(band.from_value)} to below {w.money(nxt)}"
                )
            else:
                where = (
                    f"từ {w.money(band.from_value)}" if w.vi else f"from {w.money(band.from_value)}"
                )
            what = w.money(band.amount)
            if band.percent is not None:
                above = w.money(band.from_value)
                share = (
                    f"{w.pct(band.percent)} phần vượt {above}"
                    if w.vi
                    else f"{w.pct(band.percent)} of the part above {above}"
                )
                what = share if band.amount == 0 else f"{what} + {share}"
            pieces.append(f"{where}: {what}")
        head = "Theo giá trị khai báo" if w.vi else "By declared value"
        out.append(f"{head}: " + "; ".join(pieces))
    else:
        unit = tariff.unit
        name = w.unit_name(unit)
        per = f"{'/' if w.vi else ' per '}{name}" if unit else ""
        tiers = tariff.tiers
        if len(tiers) == 1:
            out.append(f"{w.money(tiers[0].price)}{per}")
        for i, tier in enumerate(tiers if len(tiers) > 1 else ()):
            nxt = tiers[i + 1].from_unit - 1 if i + 1 < len(tiers) else None
            plural = UNIT_WORDS_EN.get(unit or "", (name, name + "s"))[1]
            if nxt is None:
                where = f"từ {name} {tier.from_unit}" if w.vi else f"from {name} {tier.from_unit}"
            elif nxt == tier.from_unit:
                where = f"cho {name} {nxt}" if w.vi else f"for {name} {nxt}"
            else:
                where = (
                    f"cho {name} {tier.from_unit}–{nxt}"
                    if w.vi
                    else f"for {plural} {tier.from_unit}–{nxt}"
                )
            out.append(f"{w.money(tier.price)}{per} {where}")
        if tariff.kind is TariffKind.COPY:
            if tariff.copy_cap is not None:
                out.append(f"{w.at_most()} {w.per_copy(tariff.copy_cap)}")
            if tariff.copy_floor is not None:
                out.append(f"{w.at_least()} {w.per_copy(tariff.copy_floor)}")
            out.append(
                f"tính cho từng bản theo số {name} của bản chính"
                if w.vi
                else f"for each copy, by the {plural} of the original"
            )
    if tariff.line_cap is not None:
        out.append(f"{w.at_most()} {w.money(tariff.line_cap)}")
    if tariff.line_floor is not None:
        out.append(f"{w.at_least()} {w.money(tariff.line_floor)}")
    out += [w.reduction(r) for r in tariff.reductions]
    return "; ".join(out)


# --------------------------------------------------------------------------- catalogue rows


class FeeItemLike(Protocol):
    """What :func:`tariff_of` reads of a ``payments.models.FeeItem`` (no session needed)."""

    amount: int
    unit: str | None
    max_amount: int | None
    tariff: dict[str, Any] | None


def legacy_tariff(amount: int, unit: str | None, max_amount: int | None) -> Tariff:
    """Today's arithmetic as a tariff: ``amount`` per unit x quantity, capped per line."""
    return Tariff(kind=TariffKind.UNIT, unit=unit, tiers=(Tier(1, amount),), line_cap=max_amount)


def tariff_of(item: FeeItemLike) -> Tariff:
    """The tariff a catalogue row prices by: its ``tariff`` JSON, or (NULL, every row written
    before issue 14) the legacy unit price ``amount`` with ``max_amount`` as the line cap.

    :raises TariffInvalid: the stored JSON does not describe a tariff.
    """
    if item.tariff is None:
        return legacy_tariff(item.amount, item.unit, item.max_amount)
    return tariff_from_json(item.tariff)


def headline_price(tariff: Tariff) -> int:
    """The first price a tariff states (first tier, or first band): the catalogue's ``amount``."""
    return tariff.tiers[0].price if tariff.tiers else tariff.bands[0].amount


def headline_cap(tariff: Tariff) -> int | None:
    """The cap a tariff states (per copy, else per line): the catalogue's ``max_amount``."""
    return tariff.copy_cap if tariff.copy_cap is not None else tariff.line_cap


# --------------------------------------------------------------------------- JSON


def _dec_json(value: Decimal) -> str:
    return format(value.normalize(), "f")


def tariff_to_json(tariff: Tariff) -> dict[str, Any]:
    """The JSON kept in ``fee_items.tariff`` (and inside ``order_lines.pricing``)."""
    out: dict[str, Any] = {"v": JSON_VERSION, "kind": tariff.kind.value}
    if tariff.unit is not None:
        out["unit"] = tariff.unit
    if tariff.tiers:
        out["tiers"] = [[t.from_unit, t.price] for t in tariff.tiers]
    if tariff.bands:
        out["bands"] = [
            [b.from_value, b.amount] + ([_dec_json(b.percent)] if b.percent is not None else [])
            for b in tariff.bands
        ]
    for key in ("copy_cap", "copy_floor", "line_cap", "line_floor"):
        value = getattr(tariff, key)
        if value is not None:
            out[key] = value
    if tariff.reductions:
        out["reductions"] = [
            {"code": r.code, "percent": _dec_json(r.percent), "legal_basis": r.legal_basis}
            | ({"label": r.label} if r.label is not None else {})
            for r in tariff.reductions
        ]
    return out


def _decimal(value: object, what: str) -> Decimal:
    if not isinstance(value, str):
        raise _bad(f"{what}: phần trăm phải ghi dạng chuỗi", f"{what}: a percentage is a string")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise _bad(
            f"{what}: {value!r} không phải số", f"{what}: {value!r} is not a number"
        ) from None


def tariff_from_json(data: Mapping[str, Any]) -> Tariff:
    """The tariff from its stored JSON (any version this code wrote).

    :raises TariffInvalid: not a tariff this code can read, or one that would not price.
    """
    try:
        if data.get("v") != JSON_VERSION:
            raise _bad(
                f"phiên bản biểu mức thu {data.get('v')!r} không đọc được",
                f"tariff JSON version {data.get('v')!r} is unknown",
            )
        kind = TariffKind(data["kind"])
        bands = tuple(
            Band(b[0], b[1], _decimal(b[2], "band") if len(b) > 2 else None)
            for b in data.get("bands", ())
        )
        return Tariff(
            kind=kind,
            unit=data.get("unit"),
            tiers=tuple(Tier(int(t[0]), t[1]) for t in data.get("tiers", ())),
            bands=bands,
            copy_cap=data.get("copy_cap"),
            copy_floor=data.get("copy_floor"),
            line_cap=data.get("line_cap"),
            line_floor=data.get("line_floor"),
            reductions=tuple(
                Reduction(
                    code=r["code"],
                    percent=_decimal(r["percent"], "reduction"),
                    legal_basis=r["legal_basis"],
                    label=r.get("label"),
                )
                for r in data.get("reductions", ())
            ),
        )
    except TariffInvalid:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise _bad(
            "dữ liệu biểu mức thu không đúng cấu trúc", f"tariff JSON is malformed ({exc!r})"
        ) from exc


def line_input_to_json(line: LineInput) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if line.quantity is not None:
        out["quantity"] = line.quantity
    if line.copies != 1:
        out["copies"] = line.copies
    if line.originals:
        out["originals"] = list(line.originals)
    if line.declared_value is not None:
        out["declared_value"] = line.declared_value
    if line.reduction is not None:
        out["reduction"] = line.reduction
    return out


def line_input_from_json(data: Mapping[str, Any]) -> LineInput:
    return LineInput(
        quantity=data.get("quantity"),
        copies=data.get("copies", 1),
        originals=tuple(data.get("originals", ())),
        declared_value=data.get("declared_value"),
        reduction=data.get("reduction"),
    )


def pricing_record(tariff: Tariff, line: LineInput, priced: Priced) -> dict[str, Any]:
    """What ``order_lines.pricing`` keeps: the input, the tariff as applied, the result and its
    words, so a receipt or a report can show the computation after the catalogue has changed."""
    return {
        "v": JSON_VERSION,
        "input": line_input_to_json(line),
        "tariff": tariff_to_json(tariff),
        "amount": priced.amount,
        "text_vi": priced.text_vi,
        "text_en": priced.text_en,
    }


# --------------------------------------------------------------------------- text form


def _amount_re(name: str) -> str:
    return rf"(?P<{name}>\d{{1,3}}(?:[ .,_\u00a0]\d{{3}})+|\d+)\s*(?:đồng|đ|vnd)?"


def _percent_re(name: str) -> str:
    return rf"(?P<{name}>\d+(?:[.,]\d+)?)\s*%"


_AMOUNT: Final = _amount_re("amount")
_PERCENT: Final = _percent_re("pct")
_WORD: Final = r"[^\d;:/|()]+?"

_RE_PER_COPY: Final = re.compile(r"^(?:theo bản|mỗi bản|per copy|by copy)$", re.I)
_RE_LIMIT: Final = re.compile(
    rf"^(?P<which>tối đa|tối thiểu|max|min|at most|at least|maximum|minimum)\s+{_AMOUNT}"
    r"\s*(?:/\s*(?P<per>bản|copy))?$",
    re.I,
)
_RE_TIER: Final = re.compile(
    rf"^(?:từ|from)\s+(?:(?P<unit>{_WORD})\s+)?(?P<n>\d+)\s*:\s*{_AMOUNT}"
    rf"\s*(?:/\s*(?P<unit2>{_WORD}))?$",
    re.I,
)
_RE_BAND: Final = re.compile(
    rf"^(?:giá trị|value)\s+(?:từ|from)\s+{_amount_re('floor')}\s*:\s*"
    rf"(?:{_amount_re('base')}\s*(?:\+\s*{_percent_re('share')})?|{_percent_re('only')})$",
    re.I,
)
_RE_PRICE: Final = re.compile(rf"^{_AMOUNT}\s*(?:/\s*(?P<unit>{_WORD}))?$", re.I)
_RE_REDUCTION: Final = re.compile(
    r"^(?P<code>[A-Za-z0-9_.\-]{1,32})\s*:\s*(?:giảm|reduction|reduce|minus)?\s*"
    rf"{_PERCENT}\s*(?:\((?P<label>[^()|]*)\)\s*)?(?:theo|under|per)\s+(?P<basis>\S.*)$",
    re.I,
)

_MAX_WORDS: Final = ("tối đa", "max", "at most", "maximum")


def _amount(text: str) -> int:
    value = int(re.sub(r"[ .,_\u00a0]", "", text))
    if value > MAX_VND * 1000:
        raise _bad(f"số tiền {text} quá lớn", f"amount {text} is too large")
    return value


def _pct(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def _unit(word: str | None) -> str | None:
    if word is None:
        return None
    unit = " ".join(word.split())
    return _UNIT_FROM_EN.get(unit.casefold(), unit)


def parse_tariff(text: str, reductions: str = "") -> Tariff:
    """A tariff from its text form (the catalogue's ``tariff`` and ``reductions`` columns).

    Clauses are separated by ``;`` (Vietnamese keywords, English aliases in brackets)::

        2000/trang                      first price (unit price of units 1..), unit optional
        từ trang 3: 1000/trang          [from page 3: 1000/page] a tier from unit 3
        theo bản                        [per copy] priced per copy (implied by a cap "/bản")
        tối đa 200000/bản               [max, at most] cap per copy; without "/bản": per line
        tối thiểu 5000/bản              [min, at least] floor per copy; without "/bản": per line
        giá trị từ 0: 50000             [value from 0: 50000] a band over the declared value
        giá trị từ 1000000000: 1000000 + 0,06%   base + % of the part above the band's floor

    Amounts are whole đồng (``200000``, ``200.000`` or ``200 000``, an optional ``đ``); a
    percentage takes ``,`` or ``.`` as its decimal mark. ``reductions`` lists reductions
    separated by ``|``: ``CODE: giảm 50% (who it is for) theo <legal basis>``.

    :raises TariffInvalid: naming the clause that could not be read, or what is inconsistent.
    """
    text = unicodedata.normalize("NFC", text)
    unit: str | None = None
    price_seen = False
    tiers: list[Tier] = []
    bands: list[Band] = []
    per_copy = False
    caps: dict[str, int] = {}
    for raw in text.split(";"):
        clause = " ".join(raw.split())
        if not clause:
            continue
        if _RE_PER_COPY.match(clause):
            per_copy = True
            continue
        if m := _RE_LIMIT.match(clause):
            which = "cap" if m["which"].casefold() in _MAX_WORDS else "floor"
            where = "copy" if m["per"] else "line"
            key = f"{where}_{which}"
            if key in caps:
                raise _bad(f"'{clause}' lặp lại", f"'{clause}' repeats a {which} per {where}")
            caps[key] = _amount(m["amount"])
            per_copy = per_copy or where == "copy"
            continue
        if m := _RE_BAND.match(clause):
            floor = _amount(m["floor"])
            if m["base"] is not None:
                base, share = _amount(m["base"]), _pct(m["share"]) if m["share"] else None
            else:
                base, share = 0, _pct(m["only"])
            bands.append(Band(floor, base, share))
            continue
        if m := _RE_TIER.match(clause):
            for word in (m["unit"], m["unit2"]):
                stated = _unit(word)
                if stated is not None and unit is not None and stated != unit:
                    raise _bad(
                        f"'{clause}': đơn vị {stated} khác đơn vị {unit} của biểu",
                        f"'{clause}': unit {stated} differs from the tariff's unit {unit}",
                    )
                unit = unit or stated
            tiers.append(Tier(int(m["n"]), _amount(m["amount"])))
            continue
        if (m := _RE_PRICE.match(clause)) and not price_seen:
            if tiers:
                raise _bad(
                    f"'{clause}': đơn giá đầu tiên phải đứng trước các bậc",
                    f"'{clause}': the first price comes before the tiers",
                )
            price_seen = True
            unit = _unit(m["unit"])
            tiers.append(Tier(1, _amount(m["amount"])))
            continue
        raise _bad(f"không đọc được '{clause}'", f"cannot read '{clause}'")
    if bands and (tiers or per_copy):
        raise _bad(
            "một biểu không vừa có khung giá trị vừa có đơn giá",
            "a tariff has either value bands or unit prices, not both",
        )
    if not bands and not price_seen:
        raise _bad(
            "biểu mức thu cần một đơn giá đầu tiên (ví dụ 2000/trang) hoặc các khung giá trị",
            "a tariff needs a first price (e.g. 2000/trang) or value bands",
        )
    kind = TariffKind.VALUE if bands else TariffKind.COPY if per_copy else TariffKind.UNIT
    return Tariff(
        kind=kind,
        unit=unit,
        tiers=tuple(tiers),
        bands=tuple(bands),
        copy_cap=caps.get("copy_cap"),
        copy_floor=caps.get("copy_floor"),
        line_cap=caps.get("line_cap"),
        line_floor=caps.get("line_floor"),
        reductions=parse_reductions(reductions),
    )


def parse_reductions(text: str) -> tuple[Reduction, ...]:
    """``CODE: giảm 50% (label) theo <basis> | CODE2: ...`` (English: ``CODE: 50% under ...``)."""
    out: list[Reduction] = []
    for raw in unicodedata.normalize("NFC", text).split("|"):
        clause = " ".join(raw.split())
        if not clause:
            continue
        m = _RE_REDUCTION.match(clause)
        if m is None:
            raise _bad(
                f"không đọc được mức giảm '{clause}' (mẫu: MÃ: giảm 50% (đối tượng) theo căn cứ)",
                f"cannot read reduction '{clause}' (form: CODE: giảm 50% (who) theo <basis>)",
            )
        label = " ".join(m["label"].split()) if m["label"] is not None else None
        out.append(Reduction(m["code"], _pct(m["pct"]), m["basis"].strip(), label or None))
    return tuple(out)


def format_tariff(tariff: Tariff) -> str:
    """The text form of ``tariff`` without its reductions (:func:`format_reductions`);
    :func:`parse_tariff` reads it back to an equal tariff."""
    out: list[str] = []
    if tariff.kind is TariffKind.VALUE:
        for band in tariff.bands:
            share = f" + {_percent_text(band.percent, ',')}%" if band.percent is not None else ""
            out.append(f"giá trị từ {band.from_value}: {band.amount}{share}")
    else:
        unit = tariff.unit
        first = tariff.tiers[0]
        out.append(f"{first.price}/{unit}" if unit else str(first.price))
        for tier in tariff.tiers[1:]:
            if unit:
                out.append(f"từ {unit} {tier.from_unit}: {tier.price}/{unit}")
            else:
                out.append(f"từ {tier.from_unit}: {tier.price}")
        if tariff.kind is TariffKind.COPY:
            if tariff.copy_cap is None and tariff.copy_floor is None:
                out.append("theo bản")
            if tariff.copy_cap is not None:
                out.append(f"tối đa {tariff.copy_cap}/bản")
            if tariff.copy_floor is not None:
                out.append(f"tối thiểu {tariff.copy_floor}/bản")
    if tariff.line_cap is not None:
        out.append(f"tối đa {tariff.line_cap}")
    if tariff.line_floor is not None:
        out.append(f"tối thiểu {tariff.line_floor}")
    return "; ".join(out)


def format_reductions(tariff: Tariff) -> str:
    return " | ".join(
        f"{r.code}: giảm {_percent_text(r.percent, ',')}%"
        + (f" ({r.label})" if r.label else "")
        + f" theo {r.legal_basis}"
        for r in tariff.reductions
    )
