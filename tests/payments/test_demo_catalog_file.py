"""The shipped demo catalogue is a well-formed catalogue CSV (contract.md columns).

Checked with the csv module only; the real importer and its rules live elsewhere.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

import payments.reference

# Located through a module of the real package: with tests/ on sys.path (the
# root conftest), "payments" alone can resolve to the namespace tests/payments.
CATALOG = Path(payments.reference.__file__).parent / "data" / "demo_catalog.csv"

HEADER = [
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
]
OPTIONAL_HEADER = ["tariff", "reductions"]
"""The optional tariff columns (issue 14), after the required ones."""
INTEGER = re.compile(r"[1-9][0-9]*")


@pytest.fixture(scope="module")
def raw() -> bytes:
    return CATALOG.read_bytes()


@pytest.fixture(scope="module")
def rows(raw: bytes) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    assert reader.fieldnames == HEADER + OPTIONAL_HEADER
    result = list(reader)
    assert all(None not in row and len(row) == len(reader.fieldnames) for row in result)
    return result


def test_file_is_inside_the_package() -> None:
    assert CATALOG.parent.parent.name == "payments"
    assert CATALOG.parent.parent.joinpath("reference.py").is_file()


def test_utf8_without_bom(raw: bytes) -> None:
    text = raw.decode("utf-8")  # strict: raises on bad bytes
    assert not text.startswith("\ufeff")
    assert "Chứng thực" in text


def test_header_exact(raw: bytes) -> None:
    first_line = raw.decode("utf-8").splitlines()[0]
    assert first_line == ",".join(HEADER + OPTIONAL_HEADER)


def test_size_and_spread(rows: list[dict[str, str]]) -> None:
    assert len({r["procedure_code"] for r in rows}) >= 20
    assert len({r["field"] for r in rows}) >= 6
    assert {r["fee_kind"] for r in rows} == {"phi", "le_phi"}


def test_required_values_present_and_trimmed(rows: list[dict[str, str]]) -> None:
    for line, row in enumerate(rows, start=2):
        for column in (
            "procedure_code",
            "procedure_name",
            "field",
            "fee_code",
            "fee_kind",
            "fee_name",
            "amount",
            "legal_basis",
        ):
            assert row[column], (line, column)
        for column, value in row.items():
            assert value == value.strip(), (line, column)


def test_procedure_codes_look_national(rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert re.fullmatch(r"[12]\.[0-9]{6}", row["procedure_code"]), row["procedure_code"]


def test_procedure_rows_agree(rows: list[dict[str, str]]) -> None:
    seen: dict[str, tuple[str, str]] = {}
    pairs: set[tuple[str, str]] = set()
    for row in rows:
        key = (row["procedure_code"], row["fee_code"])
        assert key not in pairs, key
        pairs.add(key)
        name_field = (row["procedure_name"], row["field"])
        assert seen.setdefault(row["procedure_code"], name_field) == name_field


def test_amounts_are_whole_dong(rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert INTEGER.fullmatch(row["amount"]), row
        if row["max_amount"]:
            assert INTEGER.fullmatch(row["max_amount"]), row
            assert int(row["max_amount"]) >= int(row["amount"])


def test_capped_per_page_items(rows: list[dict[str, str]]) -> None:
    capped_pages = [r for r in rows if r["unit"] == "trang" and r["max_amount"]]
    assert len(capped_pages) >= 3


def test_retention_only_on_phi(rows: list[dict[str, str]]) -> None:
    for row in rows:
        if row["fee_kind"] == "phi":
            assert re.fullmatch(r"[0-9]{1,3}", row["retention_percent"]), row
            assert 0 <= int(row["retention_percent"]) <= 100
        else:
            assert row["fee_kind"] == "le_phi"
            assert row["retention_percent"] == "", row


def test_contract_example_is_orderable(rows: list[dict[str, str]]) -> None:
    # contract.md's payment-order example: procedure 1.001612, fee CT-BS, quantity 3.
    (ct_bs,) = [r for r in rows if (r["procedure_code"], r["fee_code"]) == ("1.001612", "CT-BS")]
    assert ct_bs["amount"] == "2000"
    assert ct_bs["unit"] == "trang"
    assert ct_bs["max_amount"] == "200000"


def test_certification_items_carry_the_law_s_tariff(rows: list[dict[str, str]]) -> None:
    # Circular 226/2016/TT-BTC: the per-page copies and the flat items, with their basis and date
    per_page = "2000/trang; từ trang 3: 1000/trang; tối đa 200000/bản"
    expected = {
        "CT-BS": per_page,
        "CT-BSNN": per_page,
        "CT-BSHD": per_page,
        "CT-CK": "10000/trường hợp",
        "CT-CKND": "10000/trường hợp",
        "CT-HD": "50000/hợp đồng",
        "CT-SDHD": "30000/hợp đồng",
        "CT-SLHD": "25000/hợp đồng",
    }
    for row in rows:
        if row["fee_code"] in expected:
            assert row["tariff"] == expected[row["fee_code"]], row
            assert row["legal_basis"].startswith("Thông tư 226/2016/TT-BTC"), row
            assert "hiệu lực từ" in row["legal_basis"], row


def test_a_value_banded_and_a_reduced_item(rows: list[dict[str, str]]) -> None:
    banded = [r for r in rows if r["tariff"].startswith("giá trị từ 0:")]
    reduced = [r for r in rows if r["reductions"]]
    assert banded and reduced
    assert all(r["legal_basis"] for r in banded + reduced)
    assert all(" theo " in r["reductions"] for r in reduced)  # each reduction has its basis
