"""Catalogue import: whole-file rejection naming lines, idempotent re-import, effective dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from infra.clock import today
from sqlalchemy import func, select

from api.demo import DEMO_AGENCY
from payments.agencies import AgencyInput, add_agency
from payments.catalog import fee_item_on, import_catalog, price_line, procedure_by_code
from payments.errors import CatalogImportError, InvalidInput, UnknownFee
from payments.models import FeeItem, Procedure
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
