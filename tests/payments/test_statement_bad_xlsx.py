"""Bad XLSX input (issue 18): each case is either read correctly or refused with a message that
names the row (or sheet), and a refused file imports nothing.

Complements tests/payments/test_statement_tables.py (formula without a saved value, merged date
cells, a date in free text, two statement sheets, not a zip): here a formula *with* the value
Excel saved, a merged description, a date typed as text, the statement on the second sheet,
sheet protection (readable) against file encryption (refused), an old .xls. Dates from the
suite's clock (yesterday), files written in the Vietcombank layout of
test_statement_bank_layouts.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import openpyxl
import pytest
from infra.clock import ZONE, Clock
from sqlalchemy import func, select
from test_statement_bank_layouts import Tx, rows_of, transactions

from api.demo import seed
from payments.agencies import agency_by_code
from payments.errors import InvalidInput
from payments.models import BankEvent, BankStatement
from payments.statement_import import import_statement
from payments.statement_tables import parse_table
from settings.config import Settings
from settings.db import session_scope

HEADER_ROW = 9  # rows_of: seven metadata lines, a blank line, then the header


def workbook(txs: list[Tx], *, native: bool = True, edit: Any = None, before: Any = None) -> bytes:
    """The Vietcombank layout; ``edit(sheet)`` changes the statement sheet, ``before(book)``
    may add sheets in front of it."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Sao ke"
    for row in rows_of("vietcombank", txs, "dots", native=native):
        sheet.append(row)
    if edit is not None:
        edit(sheet)
    if before is not None:
        before(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_cached_value(data: bytes, formula: str, value: str) -> bytes:
    """What Excel does on save and openpyxl does not: store the formula's computed value."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                text = content.decode()
                text, count = re.subn(
                    rf"<f>{re.escape(formula)}</f>(<v\s*/>|<v></v>)?",
                    f"<f>{formula}</f><v>{value}</v>",
                    text,
                )
                assert count == 1, text[:2000]
                content = text.encode()
            dst.writestr(item, content)
    return out.getvalue()


@pytest.fixture
def txs(clock: Clock) -> list[Tx]:
    return transactions(clock.today() - timedelta(days=1), clock)


def refused(data: bytes) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_table(data, "xlsx", ZONE, "vietcombank")
    return caught.value.detail


def test_formula_with_a_saved_value_is_read(txs: list[Tx]) -> None:
    def formula(sheet: Any) -> None:
        sheet.cell(row=HEADER_ROW + 2, column=5, value="=2*15000")  # the 30.000 credit

    data = with_cached_value(workbook(txs, edit=formula), "2*15000", "30000")
    (statement,) = parse_table(data, "xlsx", ZONE, "vietcombank").statements
    assert [x.amount for x in statement.lines] == [1_250_000, 30_000, 1_500_000]


def test_formula_without_a_saved_value_is_refused_naming_the_row(txs: list[Tx]) -> None:
    def formula(sheet: Any) -> None:
        sheet.cell(row=HEADER_ROW + 2, column=5, value="=2*15000")

    detail = refused(workbook(txs, edit=formula))
    assert f"row {HEADER_ROW + 2}" in detail and "=2*15000" in detail


def test_merged_description_cells_are_read(txs: list[Tx]) -> None:
    """A memo merged over two lines: the money and dates are intact, so both lines are read
    (the lower one with the empty memo the merge leaves)."""

    def merge(sheet: Any) -> None:
        sheet.merge_cells(f"G{HEADER_ROW + 1}:G{HEADER_ROW + 2}")

    (statement,) = parse_table(workbook(txs, edit=merge), "xlsx", ZONE, "vietcombank").statements
    assert [x.memo for x in statement.lines] == [txs[0].memo, "", txs[2].memo]


def test_merged_amount_cells_are_refused_naming_the_row(txs: list[Tx]) -> None:
    def merge(sheet: Any) -> None:
        sheet.cell(row=HEADER_ROW + 2, column=5, value=None)
        sheet.merge_cells(f"E{HEADER_ROW + 1}:E{HEADER_ROW + 2}")

    detail = refused(workbook(txs, edit=merge))
    assert f"row {HEADER_ROW + 2}" in detail and "credit" in detail


def test_date_typed_as_text_is_read_and_a_bad_one_refused(txs: list[Tx]) -> None:
    def as_text(sheet: Any) -> None:
        sheet.cell(row=HEADER_ROW + 1, column=2, value=f"{txs[0].at:%d/%m/%Y}")

    (statement,) = parse_table(workbook(txs, edit=as_text), "xlsx", ZONE).statements
    assert statement.lines[0].booked_at.date() == txs[0].at.date()

    typed = f"12.31.{Clock().today().year}"  # month first: there is no 31st month

    def month_first(sheet: Any) -> None:
        sheet.cell(row=HEADER_ROW + 3, column=2, value=f"{typed} (MM.DD)")

    detail = refused(workbook(txs, edit=month_first))
    assert f"row {HEADER_ROW + 3}" in detail and typed in detail


def test_statement_on_the_second_sheet_is_read_and_named(txs: list[Tx]) -> None:
    def cover(book: openpyxl.Workbook) -> None:
        notes = book.create_sheet("Huong dan", 0)
        notes.append(["Sao kê được tạo tự động từ ngân hàng điện tử"])

    table = parse_table(workbook(txs, before=cover), "xlsx", ZONE, "vietcombank")
    assert len(table.statements[0].lines) == 3
    assert table.columns[-1] == "sheet 'Sao ke' (not 'Huong dan')"


def test_sheet_protection_is_not_encryption_and_is_read(txs: list[Tx]) -> None:
    def protect(sheet: Any) -> None:
        sheet.protection.sheet = True
        sheet.protection.password = "khong-sua"

    (statement,) = parse_table(workbook(txs, edit=protect), "xlsx", ZONE).statements
    assert len(statement.lines) == 3


def test_encrypted_workbook_and_old_xls_are_refused_with_the_reason() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    encrypted = ole + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 64
    detail = refused(encrypted)
    assert "password-protected (encrypted)" in detail and "mật khẩu" in detail
    assert ".xls" in refused(ole + "Workbook".encode("utf-16-le"))


# --- nothing half-imported --------------------------------------------------------------


@pytest.fixture
def demo(settings: Settings) -> Iterator[Settings]:
    seed(settings)
    yield settings


def test_a_refused_workbook_imports_nothing(demo: Settings, txs: list[Tx]) -> None:
    def bad_last_row(sheet: Any) -> None:
        sheet.cell(row=HEADER_ROW + 3, column=2, value="hôm qua")

    with session_scope() as session, pytest.raises(InvalidInput) as caught:
        agency = agency_by_code(session, "DEMO-HUYEN")
        import_statement(session, agency, workbook(txs, edit=bad_last_row), "xlsx")
    assert f"row {HEADER_ROW + 3}" in caught.value.detail
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(BankEvent)) == 0
        assert session.scalar(select(func.count()).select_from(BankStatement)) == 0
