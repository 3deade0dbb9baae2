"""Catalogue import: whole-file rejection naming lines, idempotent re-import, effective dates."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from infra.clock import today
from sqlalchemy import func, select

import payments.reference
from api.demo import DEMO_AGENCY
from payments.agencies import AgencyInput, add_agency
from payments.catalog import (
    fee_item_on,
    import_catalog,
    parse_catalog,
    price_line,
    procedure_by_code,
    reprice_fee,
)
from payments.errors import CatalogImportError, InvalidInput, UnknownFee
from payments.models import FeeItem, Procedure
from payments.tariffs import LineInput, describe, format_tariff, parse_tariff, price, tariff_of
from settings.config import Settings
from settings.db import session_scope

HEADER = "procedure_code,procedure_name,field,fee_code,fee_kind,fee_name,amount,unit,max_amount,retention_percent,legal_basis\n"
GOOD = HEADER + (
    "1.001612,Chứng thực bản sao từ bản chính,Chứng thực,CT-BS,phi,Phí chứng thực bản sao,2000,trang,200000,0,Thông tư 226/2016/TT-BTC\n"
    "1.001193,Đăng ký khai sinh,Hộ tịch,HT-KS,le_phi,Lệ phí đăng ký khai sinh,8000,,,,Nghị quyết 12/2020/NQ-HĐND\n"
)


# The catalogue is in force from well before today; a repricing takes effect half a year later
# (still in the past), so the price "on today" is the new one whatever the date.
START = today() - timedelta(days=400)
REPRICED = START + timedelta(days=181)


DEMO = Path(payments.reference.__file__).parent / "data" / "demo_catalog.csv"


def _count(model: type) -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def agency_id(settings: Settings) -> str:
    with session_scope() as s:
        return add_agency(s, DEMO_AGENCY).id


def _import(agency_id: str, data: str, day: date = START) -> object:
    with session_scope() as s:
        from payments.models import Agency

        agency = s.get(Agency, agency_id)
        assert agency is not None
        return import_catalog(s, agency, data.encode(), effective_from=day)


def test_import_then_reimport_changes_nothing(agency_id: str) -> None:
    first = _import(agency_id, GOOD)
    assert (first.procedures_created, first.fees_created) == (2, 2)  # type: ignore[attr-defined]
    again = _import(agency_id, GOOD)
    assert (again.procedures_created, again.fees_created, again.fees_unchanged) == (0, 0, 2)  # type: ignore[attr-defined]
    assert _count(FeeItem) == 2


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("1.1,P,F,X,phi,N,abc,,,,L", "amount"),
        ("1.1,P,F,X,phi,N,-5,,,,L", "amount"),
        ("1.1,P,F,X,phi,N,1.5,,,,L", "amount"),
        ("1.1,P,F,X,fee,N,100,,,,L", "fee_kind"),
        ("1.1,P,F,X,le_phi,N,100,,,10,L", "retention_percent"),
        ("1.1,P,F,X,phi,N,100,,,101,L", "retention_percent"),
        ("1.1,P,F,X,phi,N,100,,50,,L", "max_amount"),
        ("1.1,,F,X,phi,N,100,,,,L", "procedure_name"),
        ("1.1,P,F,X,phi,N,100,,,,", "legal_basis"),
        ("1.1,P,F,X,phi,N,100,,,,L,extra", "more cells"),
    ],
)
def test_one_bad_row_rejects_the_whole_file_naming_the_line(
    agency_id: str, row: str, needle: str
) -> None:
    with pytest.raises(CatalogImportError) as err:
        _import(agency_id, GOOD + row + "\n")
    assert "line 4" in str(err.value) and needle in str(err.value)
    assert _count(Procedure) == 0 and _count(FeeItem) == 0


def test_missing_column_and_non_utf8(agency_id: str) -> None:
    with pytest.raises(CatalogImportError, match="missing columns"):
        _import(agency_id, "procedure_code,amount\n1,2\n")
    with pytest.raises(CatalogImportError, match="UTF-8"), session_scope() as s:
        from payments.models import Agency

        a = s.get(Agency, agency_id)
        assert a is not None
        import_catalog(s, a, GOOD.encode("utf-16"), effective_from=START)


def test_new_price_is_effective_dated(agency_id: str) -> None:
    _import(agency_id, GOOD)
    result = _import(agency_id, GOOD.replace(",8000,", ",10000,"), REPRICED)
    assert result.fees_repriced == 1  # type: ignore[attr-defined]
    with session_scope() as s:
        proc = procedure_by_code(s, agency_id, "1.001193")
        old = fee_item_on(s, proc, "HT-KS", REPRICED - timedelta(days=1))
        new = fee_item_on(s, proc, "HT-KS", REPRICED)
        assert old is not None and new is not None
        assert (old.amount, new.amount) == (8000, 10000)
        current = fee_item_on(s, proc, "HT-KS", today())
        assert current is not None and current.amount == 10000
        with pytest.raises(UnknownFee):
            fee_item_on(s, proc, "HT-KS", START - timedelta(days=1))


def test_pricing_caps_and_exemptions(agency_id: str) -> None:
    _import(agency_id, GOOD)
    with session_scope() as s:
        item = fee_item_on(s, procedure_by_code(s, agency_id, "1.001612"), "CT-BS", today())
        assert item is not None
        assert price_line(item, 3).amount == 6000
        assert price_line(item, 1000).amount == 200_000
        exempt = price_line(item, 3, ("Người khuyết tật", "Điều 5 TT 226/2016"))
        assert exempt.amount == 0 and exempt.exemption_category == "Người khuyết tật"
        for bad in (0, -1, True):
            with pytest.raises(InvalidInput):
                price_line(item, bad)


def test_agency_validation(settings: Settings) -> None:
    bad = AgencyInput(
        code="X",
        name="N",
        tax_code="0108424453",
        address="A",
        bank_bin="97041",
        bank_account="12-3",
        bank_account_name="N",
        series="26TIA",
        template="EBL03",
    )
    with pytest.raises(InvalidInput) as err, session_scope() as s:
        add_agency(s, bad)
    text = str(err.value)
    for field in ("tax_code", "bank_bin", "bank_account", "series", "template"):
        assert field in text


# --- tariffs (issue 14) ----------------------------------------------------------------

TARIFF_HEADER = HEADER.rstrip("\n") + ",tariff,reductions\n"
LAWFUL = TARIFF_HEADER + (
    '1.001612,Chứng thực bản sao từ bản chính,Chứng thực,CT-BS,phi,Phí chứng thực bản sao,2000,trang,200000,0,Thông tư 226/2016/TT-BTC,"2000/trang; từ trang 3: 1000/trang; tối đa 200000/bản",\n'
    "1.001612,Chứng thực bản sao từ bản chính,Chứng thực,HKD-TL,le_phi,Lệ phí đăng ký,100000,lần,,,NQ 08/2023,,TRUCTUYEN: giảm 50% (nộp trực tuyến) theo NQ 08/2023\n"
    "1.001193,Đăng ký khai sinh,Hộ tịch,HT-KS,le_phi,Lệ phí đăng ký khai sinh,8000,,,,Nghị quyết 12/2020/NQ-HĐND,,\n"
)


def _item(agency_id: str, procedure: str, fee: str, day: date | None = None) -> FeeItem:
    with session_scope() as s:
        item = fee_item_on(s, procedure_by_code(s, agency_id, procedure), fee, day or today())
        assert item is not None
        s.expunge(item)
        return item


def test_tariff_columns_are_optional_and_stored_as_json(agency_id: str) -> None:
    first = _import(agency_id, LAWFUL)
    assert first.fees_created == 3  # type: ignore[attr-defined]
    ct_bs = _item(agency_id, "1.001612", "CT-BS")
    assert ct_bs.tariff is not None and ct_bs.tariff["kind"] == "copy"
    assert (ct_bs.amount, ct_bs.max_amount, ct_bs.unit) == (2000, 200_000, "trang")
    assert price(tariff_of(ct_bs), LineInput(quantity=3)).amount == 5_000
    reduced = _item(agency_id, "1.001612", "HKD-TL")
    assert reduced.tariff is not None and reduced.tariff["kind"] == "unit"
    assert price(tariff_of(reduced), LineInput(quantity=1, reduction="TRUCTUYEN")).amount == 50_000
    assert _item(agency_id, "1.001193", "HT-KS").tariff is None  # legacy: as before
    again = _import(agency_id, LAWFUL)
    assert again.fees_unchanged == 3  # type: ignore[attr-defined]


def test_a_changed_tariff_is_a_new_price(agency_id: str) -> None:
    _import(agency_id, LAWFUL)
    changed = LAWFUL.replace("từ trang 3: 1000/trang", "từ trang 3: 1500/trang")
    result = _import(agency_id, changed, REPRICED)
    assert result.fees_repriced == 1  # type: ignore[attr-defined]
    old = _item(agency_id, "1.001612", "CT-BS", REPRICED - timedelta(days=1))
    new = _item(agency_id, "1.001612", "CT-BS", REPRICED)
    assert price(tariff_of(old), LineInput(quantity=3)).amount == 5_000
    assert price(tariff_of(new), LineInput(quantity=3)).amount == 5_500


@pytest.mark.parametrize(
    ("tariff", "reductions", "needle"),
    [
        ("2000/trang; 1000", "", "cannot read '1000'"),
        ("3000/trang; tối đa 200000/bản", "", "amount 2000 differs from the tariff's first price"),
        ("2000/trang; tối đa 100000/bản", "", "max_amount 200000 differs from the tariff's cap"),
        ("2000/bản; tối đa 200000/bản", "", "unit 'bản' differs from the unit column"),
        ("2000/trang; tối đa 200000/bản", "X: giảm 50%", "cannot read reduction"),
    ],
)
def test_a_bad_tariff_rejects_the_whole_file_naming_the_line(
    agency_id: str, tariff: str, reductions: str, needle: str
) -> None:
    row = (
        f'2.000815,Chứng thực bản sao,Chứng thực,CT-BS2,phi,Phí,2000,trang,200000,0,TT 226,"{tariff}",'
        f"{reductions}\n"
    )
    with pytest.raises(CatalogImportError) as err:
        _import(agency_id, LAWFUL + row)
    assert "line 5: " in str(err.value)
    assert needle in str(err.value)
    assert _count(Procedure) == 0 and _count(FeeItem) == 0


def test_a_reduction_alone_keeps_the_legacy_price(agency_id: str) -> None:
    _import(agency_id, LAWFUL)
    item = _item(agency_id, "1.001612", "HKD-TL")
    tariff = tariff_of(item)
    assert price(tariff, LineInput(quantity=2)).amount == 200_000
    assert describe(tariff).startswith("100.000 đ/lần; giảm 50% (nộp trực tuyến) theo NQ 08/2023")


def test_repricing_a_tariff_changes_its_first_price_or_takes_a_whole_tariff(
    agency_id: str,
) -> None:
    _import(agency_id, LAWFUL)
    with session_scope() as s:
        from payments.models import Agency

        agency = s.get(Agency, agency_id)
        assert agency is not None
        item = fee_item_on(s, procedure_by_code(s, agency_id, "1.001612"), "CT-BS", today())
        assert item is not None
        _, new = reprice_fee(s, agency, item.id, 3000, effective_from=REPRICED)
        assert new.tariff is not None
        assert format_tariff(tariff_of(new)) == (
            "3000/trang; từ trang 3: 1000/trang; tối đa 200000/bản"
        )
        whole = parse_tariff("2500/trang; từ trang 3: 1200/trang; tối đa 150000/bản")
        with pytest.raises(InvalidInput, match="first price"):
            reprice_fee(
                s, agency, new.id, 3000, effective_from=REPRICED + timedelta(1), tariff=whole
            )
        _, newer = reprice_fee(
            s, agency, new.id, 2500, effective_from=REPRICED + timedelta(1), tariff=whole
        )
        assert (newer.amount, newer.max_amount) == (2500, 150_000)
        assert price(tariff_of(newer), LineInput(quantity=250)).amount == 150_000


def test_the_demo_catalogue_prices_as_the_law_says(agency_id: str) -> None:
    rows = {(r.procedure_code, r.fee_code): r for r in parse_catalog(DEMO.read_bytes())}

    def amount(fee: str, line: LineInput, procedure: str = "2.000815") -> int:
        row = rows[(procedure, fee)]
        assert row.tariff is not None, fee
        return price(row.tariff, line).amount

    # Circular 226/2016/TT-BTC, every certification item
    for fee, procedure in (
        ("CT-BS", "2.000815"),
        ("CT-BS", "1.001612"),
        ("CT-BSNN", "2.000843"),
        ("CT-BSHD", "2.000908"),
    ):
        assert [amount(fee, LineInput(quantity=n), procedure) for n in (1, 3, 12, 250)] == [
            2_000,
            5_000,
            14_000,
            200_000,
        ]
        assert amount(fee, LineInput(quantity=3, copies=2), procedure) == 10_000
    for fee, procedure, expected in (
        ("CT-CK", "2.000884", 10_000),
        ("CT-CKND", "2.000992", 10_000),
        ("CT-HD", "2.001035", 50_000),
        ("CT-SDHD", "2.001019", 30_000),
        ("CT-SLHD", "2.001016", 25_000),
    ):
        assert amount(fee, LineInput(quantity=1), procedure) == expected
        assert "hiệu lực từ" in rows[(procedure, fee)].legal_basis
    # a value-banded item and a reduced one
    assert amount("CC-QSDD", LineInput(declared_value=1_500_000_000), "2.002389") == 1_300_000
    assert amount("HKD-TL", LineInput(quantity=1, reduction="TRUCTUYEN"), "1.001612") == 50_000
    # and the whole file imports
    _import(agency_id, DEMO.read_text(encoding="utf-8"))
