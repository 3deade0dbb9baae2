"""Spreadsheet statements as internet banking exports them (issue 18, points 1 and 5).

Truth comes from outside: the samples are written in the banks' shape (bank name and title
lines, ``Số tài khoản: ...`` and ``Số dư đầu kỳ`` above the header, Vietnamese or English column
names, a "Tổng cộng" line and a signature line below), never in our own export's shape. The CSV
samples hold the five transactions of the VietinBank sample of 2026-11-20 (samples/README.md),
so parsing them must give exactly the lines of ``statement_vietinbank.csv``; they are only
parsed (no database, no clock), hence the fixed date. Every test that imports into a database
builds its file with dates from the suite's clock (yesterday, local), because statements dated
in the future are refused.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from infra.clock import ZONE, local, today
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.cli import app as cli
from api.demo import seed
from payments.agencies import agency_by_code
from payments.errors import InvalidInput
from payments.models import BankEvent, BankStatement
from payments.statement_import import ImportReport, import_statement
from payments.statement_profiles import AUTO, normalise_header, profile_by_name
from payments.statement_tables import parse_table
from payments.statements import parse_csv
from settings.config import Settings
from settings.db import session_scope

SAMPLES = Path(__file__).parent / "samples"
REFERENCE = parse_csv((SAMPLES / "statement_vietinbank.csv").read_bytes(), ZONE)[0].lines


# --- the bank-shaped CSV samples (parse only) ------------------------------------------------


@pytest.mark.parametrize(
    "name", ["statement_vn_dots.csv", "statement_en_commas.csv"], ids=["vi-dots", "en-commas"]
)
def test_bank_csv_exports_read_like_our_own(name: str) -> None:
    table = parse_table((SAMPLES / name).read_bytes(), "csv", ZONE)
    (statement,) = table.statements
    assert statement.account_number == "113000012345"
    assert statement.lines == REFERENCE
    assert [line.bank_reference for line in statement.lines] == [
        line.bank_reference for line in REFERENCE
    ]
    # Metadata above (opening) and below (closing) the table, in the file's number format.
    assert (statement.opening_balance, statement.closing_balance) == (12_500_000, 12_536_000)
    assert statement.balances_consistent is True
    assert table.columns[0] == "header row 9"
    used = " ".join(table.columns)
    for field in ("date ←", "reference ←", "debit ←", "credit ←", "description ←"):
        assert field in used
    assert statement.warnings == ()


def test_our_own_csv_header_set_keeps_working() -> None:
    data = (SAMPLES / "statement_vietinbank.csv").read_bytes()
    table = parse_table(data, "csv", ZONE)
    assert table.statements == parse_csv(data, ZONE)
    # ... including its refusal of ambiguous thousands separators (our own export has none).
    bad = data.replace(b",6000,", b",6.000,", 1)
    assert bad != data
    with pytest.raises(InvalidInput):
        parse_table(bad, "csv", ZONE)


@pytest.mark.parametrize(
    ("date_header", "ref_header", "debit_header", "credit_header", "memo_header"),
    [
        ("Ngày giao dịch", "Số tham chiếu", "Ghi nợ", "Ghi có", "Nội dung"),
        ("Ngày GD", "Số bút toán", "Số tiền ghi nợ", "Số tiền ghi có", "Diễn giải"),
        ("NGAY  GD", "Mã GD", "SO TIEN GHI NO", "so tien ghi co", "Mô tả"),
        ("Transaction Date", "Reference No.", "Debit Amount", "Credit Amount", "Description"),
        ("ngày_giao_dịch", "mã giao dịch", "Debit", "Credit", "Transaction details"),
    ],
    ids=["vi", "vi-short", "vi-no-diacritics", "en", "mixed"],
)
def test_header_names_ignore_case_spacing_and_diacritics(
    date_header: str, ref_header: str, debit_header: str, credit_header: str, memo_header: str
) -> None:
    data = (
        "Số tài khoản: 113000012345\n\n"
        f"{date_header},{ref_header},{debit_header},{credit_header},{memo_header}\n"
        "20/11/2026 08:15:02,976T2611200417,,6.000,MC7KD4WQ2RXHG nop phi\n"
    ).encode()
    (statement,) = parse_table(data, "csv", ZONE).statements
    (line,) = statement.lines
    assert (line.bank_reference, line.amount, line.incoming) == ("976T2611200417", 6000, True)
    assert line.memo == "MC7KD4WQ2RXHG nop phi"


def test_normalise_header() -> None:
    assert normalise_header("Số tiền ghi có (VND)") == "so tien ghi co vnd"
    assert normalise_header("  ĐIỄN_GIẢI ") == "dien giai"
    assert AUTO.field_of("Ngày GD") == "date" and AUTO.field_of("No.") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.000.000", 1_000_000),
        ("1,000,000", 1_000_000),
        ("6.000", 6000),
        ("6,000", 6000),
        ("6000", 6000),
        ("6000.00", 6000),
        ("1.000.000,00", 1_000_000),
        ("1,000,000.00", 1_000_000),
        ("150.000 VND", 150_000),
        ("6.000 đ", 6000),
    ],
)
def test_amount_formats(text: str, expected: int) -> None:
    data = (
        "Số tài khoản: 113000012345\nNgày GD,Mã GD,Ghi có,Nội dung\n"
        f'20/11/2026,FT2632400001,"{text}",x\n'
    ).encode()
    (statement,) = parse_table(data, "csv", ZONE).statements
    assert statement.lines[0].amount == expected


@pytest.mark.parametrize("text", ["6.000,50", "6000.5", "1.00.000", "12a", "1,0000"], ids=str)
def test_bad_amounts_are_refused_naming_the_row(text: str) -> None:
    data = (
        "Số tài khoản: 113000012345\nNgày GD,Mã GD,Ghi có,Nội dung\n"
        f'20/11/2026,FT2632400001,"{text}",x\n'
    ).encode()
    with pytest.raises(InvalidInput) as caught:
        parse_table(data, "csv", ZONE)
    assert caught.value.code == "statement_malformed"
    assert "CSV row 3" in caught.value.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20/11/2026", datetime(2026, 11, 20)),
        ("20/11/2026 15:05:02", datetime(2026, 11, 20, 15, 5, 2)),
        ("2026-11-20 15:05:02", datetime(2026, 11, 20, 15, 5, 2)),
        ("2026-11-20", datetime(2026, 11, 20)),
    ],
    ids=["dmy", "dmy-time", "iso-time", "iso"],
)
def test_date_formats_day_first(text: str, expected: datetime) -> None:
    data = (
        f"Số tài khoản: 113000012345\nNgày GD,Mã GD,Ghi có,Nội dung\n{text},FT2632400001,6000,x\n"
    ).encode()
    (statement,) = parse_table(data, "csv", ZONE).statements
    assert statement.lines[0].booked_at == expected.replace(tzinfo=ZONE)


def test_wrong_currency_in_metadata_is_refused() -> None:
    data = (
        (SAMPLES / "statement_vn_dots.csv")
        .read_bytes()
        .replace("Loại tiền: VND".encode(), "Loại tiền: USD".encode())
    )
    with pytest.raises(InvalidInput) as caught:
        parse_table(data, "csv", ZONE)
    assert caught.value.code == "statement_currency" and "row 5" in caught.value.detail


def test_a_row_without_reference_gets_a_stable_fingerprint_with_a_warning() -> None:
    data = (SAMPLES / "statement_vn_dots.csv").read_bytes().replace(b",976T2611200932,", b",,")
    first = parse_table(data, "csv", ZONE).statements[0]
    again = parse_table(data, "csv", ZONE).statements[0]
    assert first.lines[1].bank_reference.startswith("fp-")
    assert first.lines[1].bank_reference == again.lines[1].bank_reference
    (warning,) = first.warnings
    assert "row 11" in warning and "fingerprint" in warning


def test_profiles() -> None:
    assert profile_by_name(None) is AUTO
    assert profile_by_name("motcua").built_in and profile_by_name("AUTO") is AUTO
    with pytest.raises(InvalidInput) as caught:
        profile_by_name("vietcombank-2019")
    assert caught.value.code == "statement_format_unknown"
    own = (SAMPLES / "statement_vietinbank.csv").read_bytes()
    assert parse_table(own, "csv", ZONE, "motcua").statements == parse_csv(own, ZONE)
    with pytest.raises(InvalidInput):  # a bank export is not our layout
        parse_table((SAMPLES / "statement_vn_dots.csv").read_bytes(), "csv", ZONE, "motcua")


# --- XLSX in the bank's shape, dated from the clock ------------------------------------------

YESTERDAY = today() - timedelta(days=1)


def _dmy(moment: datetime) -> str:
    return moment.strftime("%d/%m/%Y %H:%M:%S")


def bank_xlsx(
    *,
    rows: list[list[Any]] | None = None,
    extra_sheet: Callable[[openpyxl.Workbook], None] | None = None,
    edit: Callable[[Any], None] | None = None,
) -> bytes:
    """A VietinBank-style export: merged title, metadata lines, header on row 8, a total."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Sao ke"
    sheet.append(["NGÂN HÀNG TMCP CÔNG THƯƠNG VIỆT NAM"])
    sheet.merge_cells("A1:F1")
    sheet.append(["SAO KÊ TÀI KHOẢN"])
    sheet.merge_cells("A2:F2")
    sheet.append(["Số tài khoản:", "113000012345"])
    sheet.append(["Loại tiền:", "VND"])
    sheet.append(["Số dư đầu kỳ:", 5_000_000])
    sheet.append([f"Từ ngày {YESTERDAY:%d/%m/%Y} đến ngày {YESTERDAY:%d/%m/%Y}"])
    sheet.append([])
    sheet.append(["STT", "Ngày GD", "Số bút toán", "Số tiền ghi nợ", "Số tiền ghi có", "Diễn giải"])
    data_rows = rows if rows is not None else default_rows()
    for row in data_rows:
        sheet.append(row)
    credits = sum(_number(r[4]) for r in data_rows)
    debits = sum(_number(r[3]) for r in data_rows)
    sheet.append(["", "Tổng cộng", "", debits, credits, ""])
    sheet.append(["Số dư cuối kỳ:", 5_000_000 + credits - debits])
    if edit is not None:
        edit(sheet)
    if extra_sheet is not None:
        extra_sheet(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _number(cell: Any) -> int:
    """The sample's own amounts (ints or "30.000" text) for its "Tổng cộng" and closing lines."""
    if isinstance(cell, int):
        return cell
    if isinstance(cell, str) and not cell.startswith("="):
        return int(cell.replace(".", "") or 0)
    return 0


def default_rows() -> list[list[Any]]:
    """Two credits (a real datetime cell and a text date) and one debit, yesterday."""
    return [
        [
            1,
            local(YESTERDAY, 8, 15, 2).replace(tzinfo=None),
            "XL26A0000001",
            None,
            6000,
            "MC7KD4WQ2RXHG nop phi",
        ],
        [2, _dmy(local(YESTERDAY, 9, 2, 47)), "XL26A0000002", None, "30.000", "IBFT MCK7H3Q9XAB4J"],
        [
            3,
            local(YESTERDAY, 14, 5).replace(tzinfo=None),
            "XL26A0000003",
            1500,
            None,
            "PHI DICH VU",
        ],
    ]


def test_xlsx_export_is_read() -> None:
    table = parse_table(bank_xlsx(), "xlsx", ZONE)
    (statement,) = table.statements
    assert [(x.bank_reference, x.amount, x.incoming) for x in statement.lines] == [
        ("XL26A0000001", 6000, True),
        ("XL26A0000002", 30000, True),  # date written as text, amount as "30.000"
        ("XL26A0000003", 1500, False),
    ]
    assert statement.lines[1].booked_at == local(YESTERDAY, 9, 2, 47)
    assert (statement.opening_balance, statement.closing_balance) == (5_000_000, 5_034_500)
    assert table.columns[0] == "header row 8"
    assert "credit ← 'Số tiền ghi có' (column 5)" in table.columns


def test_xlsx_second_sheet_of_notes_is_ignored() -> None:
    def notes(book: openpyxl.Workbook) -> None:
        book.create_sheet("Ghi chu").append(["Sao kê được tạo tự động"])

    assert len(parse_table(bank_xlsx(extra_sheet=notes), "xlsx", ZONE).statements[0].lines) == 3


def test_xlsx_two_statement_sheets_are_refused() -> None:
    def copy(book: openpyxl.Workbook) -> None:
        other = book.create_sheet("Sao ke 2")
        other.append(["Ngày GD", "Mã GD", "Ghi có", "Nội dung"])
        other.append([_dmy(local(YESTERDAY, 10)), "XL26B0000001", 5000, "x"])

    with pytest.raises(InvalidInput) as caught:
        parse_table(bank_xlsx(extra_sheet=copy), "xlsx", ZONE)
    assert "'Sao ke'" in caught.value.detail and "'Sao ke 2'" in caught.value.detail


def test_xlsx_formula_without_saved_value_is_refused_naming_the_row() -> None:
    # openpyxl writes formulas without a cached value, exactly the case of a file generated by
    # a tool and never opened in Excel.
    rows = default_rows()
    rows[1][4] = "=2*15000"
    with pytest.raises(InvalidInput) as caught:
        parse_table(bank_xlsx(rows=rows), "xlsx", ZONE)
    assert "row 10" in caught.value.detail and "=2*15000" in caught.value.detail


def test_xlsx_merged_date_cells_are_refused_naming_the_row() -> None:
    rows = default_rows()
    rows[1][1] = rows[0][1]  # same value, then merged: only the top cell keeps it

    def merge(sheet: Any) -> None:
        sheet.merge_cells("B9:B10")

    with pytest.raises(InvalidInput) as caught:
        parse_table(bank_xlsx(rows=rows, edit=merge), "xlsx", ZONE)
    assert "row 10" in caught.value.detail and "date" in caught.value.detail


def test_xlsx_password_protected_or_not_xlsx_is_refused() -> None:
    # An encrypted OOXML file is an OLE compound file, not a zip: this is its signature.
    encrypted = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512
    with pytest.raises(InvalidInput) as caught:
        parse_table(encrypted, "xlsx", ZONE)
    assert "password" in caught.value.detail
    with pytest.raises(InvalidInput):
        parse_table(b"PK\x03\x04 not really a zip", "xlsx", ZONE)


def test_xlsx_bad_date_text_is_refused_naming_the_row() -> None:
    rows = default_rows()
    rows[2][1] = "hôm qua"
    with pytest.raises(InvalidInput) as caught:
        parse_table(bank_xlsx(rows=rows), "xlsx", ZONE)
    assert "row 11" in caught.value.detail and "hôm qua" in caught.value.detail


# --- into the database ----------------------------------------------------------------------


@pytest.fixture
def demo(settings: Settings) -> Iterator[Settings]:
    seed(settings)
    yield settings


def _events() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(BankEvent)) or 0)


def _import(data: bytes, fmt: str = "xlsx", profile: str | None = None) -> ImportReport:
    with session_scope() as session:
        return import_statement(
            session, agency_by_code(session, "DEMO-HUYEN"), data, fmt, profile=profile
        )


def test_xlsx_import_reports_and_is_idempotent(demo: Settings) -> None:
    data = bank_xlsx()
    first = _import(data)
    assert (first.lines, first.credits_new, first.credits_known, first.debits_ignored) == (
        3,
        2,
        0,
        1,
    )
    assert first.credits_matched + first.exceptions == 2
    assert first.balance_checks and "OK" in first.balance_checks[0]
    assert any("Số bút toán" in column for column in first.columns)
    assert _events() == 3
    assert _import(data).already_imported  # the same bytes
    assert _events() == 3
    # The same lines in a file that differs (another export, another sheet title): nothing new.
    renamed = bank_xlsx(edit=lambda sheet: setattr(sheet, "title", "Statement"))
    assert renamed != data
    same = _import(renamed)
    assert not same.already_imported
    assert (same.new_events, same.credits_new, same.credits_known) == (0, 0, 2)
    assert _events() == 3
    # A new export of the same day with one more line (different bytes): only that line is new.
    more = [*default_rows(), [4, _dmy(local(YESTERDAY, 16)), "XL26A0000004", None, 7000, "x"]]
    again = _import(bank_xlsx(rows=more))
    assert (again.credits_new, again.credits_known, again.debits_ignored) == (1, 2, 1)
    assert _events() == 4


def test_bad_xlsx_writes_nothing(demo: Settings) -> None:
    rows = default_rows()
    rows[2][4] = "=1+1"
    rows[2][3] = None
    with pytest.raises(InvalidInput):
        _import(bank_xlsx(rows=rows))
    assert _events() == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(BankStatement)) == 0


def test_stated_balances_that_disagree_refuse_the_file(demo: Settings) -> None:
    def wrong_closing(sheet: Any) -> None:
        sheet.cell(row=sheet.max_row, column=2, value=9_999_999)

    with pytest.raises(InvalidInput) as caught:
        _import(bank_xlsx(edit=wrong_closing))
    assert "balance" in caught.value.detail
    assert _events() == 0


def test_cli_bank_import_xlsx_prints_the_report(demo: Settings, tmp_path: Path) -> None:
    path = tmp_path / "saoke.xlsx"
    path.write_bytes(bank_xlsx())
    args = ["bank", "import", str(path), "--agency", "DEMO-HUYEN", "--format", "xlsx"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "lines read: 3; credits new: 2, already known: 0" in result.output
    assert "debits ignored: 1; warnings: 0" in result.output
    assert "columns used: header row 8" in result.output
    assert "balance check: statement 1: opening 5000000" in result.output
    result = CliRunner().invoke(cli, [*args, "--profile", "nope"])
    assert result.exit_code != 0
    assert _events() == 3


def test_cli_bank_csv_export_with_profile_auto(demo: Settings, tmp_path: Path) -> None:
    day = YESTERDAY.strftime("%d/%m/%Y").encode()
    data = (SAMPLES / "statement_vn_dots.csv").read_bytes().replace(b"20/11/2026", day)
    data = data.replace(
        b"19/11/2026", (YESTERDAY - timedelta(days=1)).strftime("%d/%m/%Y").encode()
    )
    path = tmp_path / "saoke.csv"
    path.write_bytes(data)
    args = ["bank", "import", str(path), "--agency", "DEMO-HUYEN", "--format", "csv"]
    result = CliRunner().invoke(cli, [*args, "--profile", "auto"])
    assert result.exit_code == 0, result.output
    assert "lines read: 5; credits new: 4, already known: 0" in result.output
    assert "debits ignored: 1" in result.output
    result = CliRunner().invoke(cli, args)
    assert "imported before" in result.output
    assert _events() == 5
