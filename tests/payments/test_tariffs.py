"""Pricing by the law's tariffs (issue 14): the cases of domain.md, edges, words, text form, JSON.

Table-driven against the figures of Circular 226/2016/TT-BTC (certification) and the notary
bands of Circular 257/2016/TT-BTC, plus property tests of what must hold for every tariff.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.catalog import line_amount
from payments.errors import PaymentsError, TariffInputInvalid, TariffInvalid
from payments.tariffs import (
    Band,
    LineInput,
    PartKind,
    Reduction,
    Tariff,
    TariffKind,
    Tier,
    describe,
    format_reductions,
    format_tariff,
    legacy_tariff,
    line_input_from_json,
    line_input_to_json,
    parse_tariff,
    price,
    pricing_record,
    round_half_up,
    tariff_from_json,
    tariff_of,
    tariff_to_json,
)

CERTIFIED_COPY = "2000/trang; từ trang 3: 1000/trang; tối đa 200000/bản"
"""Circular 226/2016/TT-BTC: 2,000 đ/page for pages 1-2, 1,000 from page 3, ≤ 200,000 per copy."""
ONLINE = "TRUCTUYEN: giảm 50% (nộp hồ sơ trực tuyến) theo Nghị quyết 08/2023/NQ-HĐND tỉnh"
NOTARY = (
    "giá trị từ 0: 50000; giá trị từ 50000000: 100000; "
    "giá trị từ 100000000: 100000 + 0,1%; giá trị từ 1000000000: 1000000 + 0,06%; "
    "giá trị từ 3000000000: 2200000 + 0,05%; giá trị từ 5000000000: 3200000 + 0,04%; "
    "giá trị từ 10000000000: 5200000 + 0,03%; giá trị từ 100000000000: 32200000 + 0,02%; "
    "tối đa 70000000"
)
"""Circular 257/2016/TT-BTC art. 4(2)(a): notary fee by the value of the land-use right."""

COPY = parse_tariff(CERTIFIED_COPY, ONLINE)
VALUE = parse_tariff(NOTARY)


# --------------------------------------------------------------------------- domain.md cases


@pytest.mark.parametrize(
    ("pages", "amount", "text_vi"),
    [
        (1, 2_000, "1 trang × 2.000 đ = 2.000 đ"),
        (2, 4_000, "2 trang × 2.000 đ = 4.000 đ"),
        (3, 5_000, "2 trang × 2.000 đ + 1 trang × 1.000 đ = 5.000 đ"),
        (12, 14_000, "2 trang × 2.000 đ + 10 trang × 1.000 đ = 14.000 đ"),
        (
            199,
            200_000,
            "2 trang × 2.000 đ + 197 trang × 1.000 đ, tối đa 200.000 đ/bản = 200.000 đ",
        ),
        (
            250,
            200_000,
            "2 trang × 2.000 đ + 248 trang × 1.000 đ, tối đa 200.000 đ/bản = 200.000 đ",
        ),
        (198, 200_000, "2 trang × 2.000 đ + 196 trang × 1.000 đ = 200.000 đ"),
    ],
)
def test_certified_copy_of_one_copy(pages: int, amount: int, text_vi: str) -> None:
    priced = price(COPY, LineInput(quantity=pages))
    assert priced.amount == amount
    assert priced.text_vi == text_vi
    assert sum(p.amount for p in priced.parts) == amount


def test_two_copies_of_three_pages() -> None:
    priced = price(COPY, LineInput(quantity=3, copies=2))
    assert priced.amount == 10_000
    assert priced.text_vi == "(2 trang × 2.000 đ + 1 trang × 1.000 đ) × 2 bản = 10.000 đ"
    assert priced.text_en == ("(2 pages × 2,000 VND + 1 page × 1,000 VND) × 2 copies = 10,000 VND")


def test_the_cap_is_per_copy_not_per_line() -> None:
    assert price(COPY, LineInput(quantity=250, copies=3)).amount == 600_000


def test_several_originals_in_one_line() -> None:
    priced = price(COPY, LineInput(originals=(3, 12, 250), copies=2))
    assert priced.amount == 2 * (5_000 + 14_000 + 200_000)
    assert priced.text_vi.startswith("bản chính 1: (2 trang × 2.000 đ + 1 trang × 1.000 đ)")
    assert "bản chính 3: (2 trang × 2.000 đ + 248 trang × 1.000 đ, tối đa 200.000 đ/bản)" in (
        priced.text_vi
    )
    assert priced.text_vi.endswith("; cộng 438.000 đ")
    assert priced.text_en.endswith("; in all 438,000 VND")
    assert {p.original for p in priced.parts} == {1, 2, 3}
    # quantity may be given as the originals' total pages, never as something else
    assert price(COPY, LineInput(quantity=265, originals=(3, 12, 250), copies=2)) == priced
    with pytest.raises(TariffInputInvalid, match="quantity"):
        price(COPY, LineInput(quantity=3, originals=(3, 12)))


@pytest.mark.parametrize(
    ("fee", "amount"),
    [
        ("10000/trường hợp", 10_000),  # signature certification, per case
        ("50000/hợp đồng", 50_000),  # certifying a contract or transaction
        ("30000/hợp đồng", 30_000),  # amending or cancelling one
        ("25000/hợp đồng", 25_000),  # correcting an error in one
    ],
)
def test_flat_items_of_circular_226(fee: str, amount: int) -> None:
    tariff = parse_tariff(fee)
    assert tariff.kind is TariffKind.UNIT
    assert price(tariff, LineInput(quantity=1)).amount == amount
    assert price(tariff, LineInput(quantity=2)).amount == 2 * amount  # two cases
    assert price(tariff, LineInput(quantity=1)).simple


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        (0, 50_000),
        (49_999_999, 50_000),  # "dưới 50 triệu"
        (50_000_000, 100_000),  # "từ 50 triệu": the floor belongs to the band above
        (100_000_000, 100_000),
        (100_000_001, 100_000),  # 0.1% of 1 đ rounds to 0
        (100_000_500, 100_001),  # 0.1% of 500 đ = 0.5 đ: half up
        (100_000_499, 100_000),
        (999_999_999, 1_000_000),  # 100,000 + 899,999.999 → 1,000,000 (continuous at 1 bn)
        (1_000_000_000, 1_000_000),
        (1_500_000_000, 1_300_000),
        (3_000_000_000, 2_200_000),
        (5_000_000_000, 3_200_000),
        (10_000_000_000, 5_200_000),
        (100_000_000_000, 32_200_000),
        (288_999_995_000, 69_999_999),
        (289_000_000_000, 70_000_000),  # 32.2 M + 0.02% of 189 bn = 70 M: the cap
        (10**15, 70_000_000),
    ],
)
def test_value_bands_at_each_edge(value: int, amount: int) -> None:
    priced = price(VALUE, LineInput(declared_value=value))
    assert priced.amount == amount
    assert sum(p.amount for p in priced.parts) == amount


def test_value_band_words() -> None:
    priced = price(VALUE, LineInput(declared_value=1_500_000_000))
    assert priced.text_vi == (
        "giá trị khai báo 1.500.000.000 đ: 1.000.000 đ + 0,06% × 500.000.000 đ = 1.300.000 đ"
    )
    assert priced.text_en == (
        "declared value 1,500,000,000 VND: 1,000,000 VND + 0.06% × 500,000,000 VND = 1,300,000 VND"
    )
    fixed = price(VALUE, LineInput(declared_value=30_000_000))
    assert fixed.text_vi == "giá trị khai báo 30.000.000 đ: 50.000 đ"
    capped = price(VALUE, LineInput(declared_value=300_000_000_000))
    assert capped.text_vi.endswith("= 72.200.000 đ; tối đa 70.000.000 đ")
    assert [p.kind for p in capped.parts] == [PartKind.FIXED, PartKind.PERCENT, PartKind.LINE_CAP]


# --------------------------------------------------------------------------- reductions


def test_reduction_applies_after_the_per_copy_cap() -> None:
    priced = price(COPY, LineInput(quantity=250, reduction="TRUCTUYEN"))
    assert priced.amount == 100_000  # half of the capped 200,000, not of 250,000
    assert priced.text_vi.endswith(
        "; giảm 50% (nộp hồ sơ trực tuyến) theo Nghị quyết 08/2023/NQ-HĐND tỉnh: 100.000 đ"
    )
    assert "50% reduction (nộp hồ sơ trực tuyến) under Nghị quyết" in priced.text_en
    assert priced.parts[-1].kind is PartKind.REDUCTION and priced.parts[-1].amount == -100_000


def test_reduction_applies_after_the_line_cap_and_rounds_half_up() -> None:
    tariff = parse_tariff("1001/trường hợp; tối đa 3003", "X: giảm 50% theo Căn cứ A")
    assert price(tariff, LineInput(quantity=1, reduction="X")).amount == 501  # 500.5 → 501
    assert price(tariff, LineInput(quantity=9, reduction="X")).amount == 1502  # 3003 / 2
    third = parse_tariff("10000/lần", "K: giảm 33,3333% theo Căn cứ B")
    assert price(third, LineInput(quantity=1, reduction="K")).amount == 6667


def test_unknown_reduction_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(TariffInputInvalid, match="TRUCTUYEN") as err:
        price(COPY, LineInput(quantity=3, reduction="HONGHEO"))
    assert err.value.code == "tariff_input_invalid" and err.value.status == 422
    with pytest.raises(TariffInputInvalid, match="no reduction"):
        price(VALUE, LineInput(declared_value=1, reduction="HONGHEO"))


# --------------------------------------------------------------------------- floors and caps


def test_floors_per_copy_and_per_line() -> None:
    tariff = parse_tariff("1000/trang; tối thiểu 5000/bản; tối thiểu 12000")
    assert tariff.kind is TariffKind.COPY
    assert price(tariff, LineInput(quantity=1)).amount == 12_000  # 5,000 per copy, 12,000 a line
    assert price(tariff, LineInput(quantity=1, copies=3)).amount == 15_000
    priced = price(tariff, LineInput(quantity=2, copies=2))
    assert priced.amount == 12_000
    assert priced.text_vi == (
        "(2 trang × 1.000 đ, tối thiểu 5.000 đ/bản) × 2 bản = 10.000 đ; tối thiểu 12.000 đ"
    )


def test_tiers_over_the_unit_index_within_a_line() -> None:
    tariff = parse_tariff("2000000/phòng; từ phòng 4: 1000000/phòng; tối đa 8000000")
    assert [price(tariff, LineInput(quantity=n)).amount for n in (1, 3, 4, 6, 9)] == [
        2_000_000,
        6_000_000,
        7_000_000,
        8_000_000,
        8_000_000,
    ]


# --------------------------------------------------------------------------- legacy rows


def _row(**kw: Any) -> Any:
    return SimpleNamespace(
        **{"amount": 2000, "unit": "trang", "max_amount": None, "tariff": None} | kw
    )


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(0, 10**7),
    cap=st.none() | st.integers(1, 10**9),
    quantity=st.integers(1, 100_000),
)
def test_a_row_without_tariff_prices_exactly_as_before(
    amount: int, cap: int | None, quantity: int
) -> None:
    tariff = tariff_of(_row(amount=amount, max_amount=cap))
    assert tariff == legacy_tariff(amount, "trang", cap)
    assert price(tariff, LineInput(quantity=quantity)).amount == line_amount(
        amount, quantity, cap, None
    )


def test_legacy_ct_bs_keeps_its_old_arithmetic_and_a_tariff_row_the_law() -> None:
    legacy = _row(max_amount=200_000)
    assert price(tariff_of(legacy), LineInput(quantity=3)).amount == 6_000
    lawful = _row(max_amount=200_000, tariff=tariff_to_json(COPY))
    assert price(tariff_of(lawful), LineInput(quantity=3)).amount == 5_000


# --------------------------------------------------------------------------- words


def test_describe_in_both_languages() -> None:
    assert describe(COPY) == (
        "2.000 đ/trang cho trang 1–2; 1.000 đ/trang từ trang 3; tối đa 200.000 đ/bản; "
        "tính cho từng bản theo số trang của bản chính; "
        "giảm 50% (nộp hồ sơ trực tuyến) theo Nghị quyết 08/2023/NQ-HĐND tỉnh"
    )
    assert describe(COPY, "en").startswith(
        "2,000 VND per page for pages 1–2; 1,000 VND per page from page 3; "
        "at most 200,000 VND per copy"
    )
    assert describe(parse_tariff("10000/trường hợp")) == "10.000 đ/trường hợp"
    assert describe(parse_tariff("10000/trường hợp"), "en") == "10,000 VND per case"
    assert describe(legacy_tariff(5000, "trang", 300_000)) == "5.000 đ/trang; tối đa 300.000 đ"
    words = describe(VALUE)
    assert words.startswith("Theo giá trị khai báo: dưới 50.000.000 đ: 50.000 đ; ")
    assert "từ 1.000.000.000 đ đến dưới 3.000.000.000 đ: 1.000.000 đ + 0,06% phần vượt" in words
    assert words.endswith("; tối đa 70.000.000 đ")


# --------------------------------------------------------------------------- text form


def test_text_form_round_trips_and_accepts_english_and_grouped_numbers() -> None:
    assert format_tariff(COPY) == CERTIFIED_COPY
    assert format_reductions(COPY) == ONLINE
    assert format_tariff(VALUE) == NOTARY
    english = parse_tariff("2.000 đ/page; from page 3: 1,000/page; at most 200 000 đ/copy")
    assert english == replace(COPY, reductions=())
    assert parse_tariff("10000; per copy") == Tariff(TariffKind.COPY, tiers=(Tier(1, 10_000),))
    assert format_tariff(Tariff(TariffKind.COPY, tiers=(Tier(1, 10_000),))) == "10000; theo bản"
    assert parse_tariff("value from 0: 0 + 1.5%") == Tariff(
        TariffKind.VALUE, bands=(Band(0, 0, Decimal("1.5")),)
    )
    assert parse_tariff("giá trị từ 0: 1,5%") == parse_tariff("value from 0: 0 + 1.5%")


@pytest.mark.parametrize(
    ("text", "reductions", "needle"),
    [
        ("", "", "first price"),
        ("2000/trang; 1000/trang", "", "cannot read '1000/trang'"),
        ("từ trang 3: 1000/trang; 2000/trang", "", "comes before the tiers"),
        ("2000/trang; từ bản 3: 1000", "", "differs from the tariff's unit"),
        ("2000/trang; từ trang 1: 1000/trang", "", "increase"),
        ("2000/trang; tối đa 100; tối đa 200", "", "repeats"),
        ("2000/trang; tối thiểu 300/bản; tối đa 200/bản", "", "floor per copy is above"),
        ("giá trị từ 10: 5000", "", "starts at 0"),
        ("giá trị từ 0: 5000; 2000/trang", "", "not both"),
        ("giá trị từ 0: 5000 + 101%", "", "at most 100"),
        ("2000/trang", "X: giảm 100% theo A", "below 100"),
        ("2000/trang", "X: giảm 50%", "cannot read reduction"),
        ("2000/trang", "X: giảm 50% theo A | X: giảm 20% theo B", "repeats"),
        ("2000/tra;ng", "", "cannot read"),
        ("abc", "", "cannot read 'abc'"),
    ],
)
def test_bad_tariff_text_is_refused_saying_why(text: str, reductions: str, needle: str) -> None:
    with pytest.raises(TariffInvalid, match=needle) as err:
        parse_tariff(text, reductions)
    assert isinstance(err.value, PaymentsError) and err.value.code == "tariff_invalid"
    assert " / " in err.value.detail  # Vietnamese, then English


def test_json_round_trip_and_bad_json() -> None:
    for tariff in (COPY, VALUE, legacy_tariff(8000, None, None)):
        assert tariff_from_json(tariff_to_json(tariff)) == tariff
    assert tariff_to_json(COPY) == {
        "v": 1,
        "kind": "copy",
        "unit": "trang",
        "tiers": [[1, 2000], [3, 1000]],
        "copy_cap": 200_000,
        "reductions": [
            {
                "code": "TRUCTUYEN",
                "percent": "50",
                "legal_basis": "Nghị quyết 08/2023/NQ-HĐND tỉnh",
                "label": "nộp hồ sơ trực tuyến",
            }
        ],
    }
    for bad in ({}, {"v": 2, "kind": "unit"}, {"v": 1, "kind": "x"}, {"v": 1, "kind": "unit"}):
        with pytest.raises(TariffInvalid):
            tariff_from_json(bad)
    with pytest.raises(TariffInvalid):
        tariff_from_json({"v": 1, "kind": "value", "bands": [[0, 1, 0.5]]})  # float percent


def test_pricing_record_keeps_input_tariff_and_words() -> None:
    line = LineInput(quantity=3, copies=2, reduction="TRUCTUYEN")
    priced = price(COPY, line)
    record = pricing_record(COPY, line, priced)
    assert record["amount"] == 5_000 and record["input"] == {
        "quantity": 3,
        "copies": 2,
        "reduction": "TRUCTUYEN",
    }
    assert line_input_from_json(line_input_to_json(line)) == line
    assert tariff_from_json(record["tariff"]) == COPY
    assert record["text_vi"] == priced.text_vi and record["text_en"] == priced.text_en


# --------------------------------------------------------------------------- bad line input


@pytest.mark.parametrize(
    ("tariff", "line", "needle"),
    [
        (COPY, LineInput(), "pages of the original"),
        (COPY, LineInput(quantity=0), "quantity"),
        (COPY, LineInput(quantity=True), "pages"),
        (COPY, LineInput(quantity=3, copies=0), "copies"),
        (COPY, LineInput(quantity=3, declared_value=10), "not priced by a declared value"),
        (COPY, LineInput(originals=(3, 0)), "pages of an original"),
        (COPY, LineInput(originals=tuple([1] * 101)), "originals must list"),
        (VALUE, LineInput(), "declared value"),
        (VALUE, LineInput(declared_value=-1), "declared value"),
        (VALUE, LineInput(declared_value=10, quantity=2), "one case"),
        (VALUE, LineInput(declared_value=10, copies=2), "one case"),
        (parse_tariff("10000/trường hợp"), LineInput(), "give the quantity"),
        (parse_tariff("10000/trường hợp"), LineInput(quantity=1, copies=2), "quantity only"),
        (parse_tariff("10000/trường hợp"), LineInput(originals=(1,)), "quantity only"),
        (parse_tariff("10000/trường hợp"), LineInput(quantity=100_001), "quantity"),
    ],
)
def test_bad_line_input_says_what_the_tariff_needs(
    tariff: Tariff, line: LineInput, needle: str
) -> None:
    with pytest.raises(TariffInputInvalid, match=needle) as err:
        price(tariff, line)
    assert err.value.code == "tariff_input_invalid" and err.value.status == 422
    vi, en = err.value.detail.split(" / ", 1)
    assert vi and en


def test_tariff_construction_is_validated() -> None:
    with pytest.raises(TariffInvalid):
        Tariff(TariffKind.UNIT)
    with pytest.raises(TariffInvalid):
        Tariff(TariffKind.UNIT, tiers=(Tier(1, 100),), copy_cap=5)
    with pytest.raises(TariffInvalid):
        Tariff(TariffKind.UNIT, tiers=(Tier(1, -1),))
    with pytest.raises(TariffInvalid):
        Tariff(TariffKind.VALUE, unit="trang", bands=(Band(0, 1),))
    with pytest.raises(TariffInvalid):
        Tariff(
            TariffKind.UNIT,
            tiers=(Tier(1, 1),),
            reductions=(Reduction("X", Decimal("0.00001"), "A"),),
        )


def test_round_half_up() -> None:
    assert [round_half_up(Decimal(x)) for x in ("0.5", "1.5", "2.5", "2.4999")] == [1, 2, 3, 2]


# --------------------------------------------------------------------------- properties

_prices = st.integers(0, 50_000)


@st.composite
def _unit_tariffs(draw: st.DrawFn) -> Tariff:
    starts = sorted(draw(st.sets(st.integers(2, 40), max_size=3)))
    tiers = (Tier(1, draw(_prices)), *(Tier(s, draw(_prices)) for s in starts))
    kind = draw(st.sampled_from([TariffKind.UNIT, TariffKind.COPY]))
    copy_cap = draw(st.none() | st.integers(1, 500_000)) if kind is TariffKind.COPY else None
    copy_floor = None
    if kind is TariffKind.COPY:
        copy_floor = draw(st.none() | st.integers(1, copy_cap or 500_000))
    line_cap = draw(st.none() | st.integers(1, 5_000_000))
    reductions = ()
    if draw(st.booleans()):
        pct = draw(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99.99"), places=2))
        reductions = (Reduction("R", pct, "Căn cứ"),)
    return Tariff(
        kind,
        unit="trang",
        tiers=tiers,
        copy_cap=copy_cap,
        copy_floor=copy_floor,
        line_cap=line_cap,
        reductions=reductions,
    )


@st.composite
def _value_tariffs(draw: st.DrawFn) -> Tariff:
    floors = sorted(draw(st.sets(st.integers(1, 10**12), max_size=4)))
    bands = tuple(
        Band(
            f,
            draw(_prices),
            draw(st.none() | st.decimals(Decimal("0.001"), Decimal("5"), places=3)),
        )
        for f in (0, *floors)
    )
    return Tariff(TariffKind.VALUE, bands=bands, line_cap=draw(st.none() | st.integers(1, 10**9)))


@settings(max_examples=150, deadline=None)
@given(tariff=_unit_tariffs(), pages=st.integers(1, 400), copies=st.integers(1, 5), data=st.data())
def test_never_negative_monotone_in_pages_and_under_the_caps(
    tariff: Tariff, pages: int, copies: int, data: st.DataObject
) -> None:
    copies = copies if tariff.kind is TariffKind.COPY else 1
    reduction = "R" if tariff.reductions and data.draw(st.booleans()) else None
    here = price(tariff, LineInput(quantity=pages, copies=copies, reduction=reduction))
    more = price(tariff, LineInput(quantity=pages + 1, copies=copies, reduction=reduction))
    assert 0 <= here.amount <= more.amount
    assert sum(p.amount for p in here.parts) == here.amount
    if tariff.copy_cap is not None and tariff.line_floor is None:
        assert here.amount <= tariff.copy_cap * copies
    if tariff.line_cap is not None:
        assert here.amount <= tariff.line_cap
    assert here.text_vi and here.text_en


@settings(max_examples=100, deadline=None)
@given(tariff=_value_tariffs(), value=st.integers(0, 10**13))
def test_value_tariffs_never_negative_and_monotone(tariff: Tariff, value: int) -> None:
    here = price(tariff, LineInput(declared_value=value)).amount
    assert here >= 0
    # an arbitrary table may step down at a band's floor: monotone inside one band
    if value + 1 not in {b.from_value for b in tariff.bands}:
        assert here <= price(tariff, LineInput(declared_value=value + 1)).amount
    if tariff.line_cap is not None:
        assert here <= tariff.line_cap


@settings(max_examples=150, deadline=None)
@given(tariff=_unit_tariffs() | _value_tariffs())
def test_text_form_and_json_round_trip(tariff: Tariff) -> None:
    assert parse_tariff(format_tariff(tariff), format_reductions(tariff)) == tariff
    assert tariff_from_json(tariff_to_json(tariff)) == tariff
