"""The built-in bank layouts (issue 18): a statement written in each layout, XLSX and CSV, in
both number formats, with the metadata lines above the header, read by its own profile and by
``auto`` where ``auto`` can recognise it; and imported twice (and once more as the other file
type) into the database without adding anything the second time.

The layouts here are written from the column lists below, not from the profiles' data, so a
profile that drifts from the layout it claims fails. Both sides are reconstructed from public
descriptions and UNCONFIRMED against a real export (see payments.statement_profiles): when a
bank's real file shows a difference, fix the layout here and the profile together.

Every date comes from the suite's clock (yesterday, agency-local), because a statement dated in
the future is refused on import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import openpyxl
import pytest
from infra.clock import ZONE, Clock
from sqlalchemy import func, select

from api.demo import seed
from payments.agencies import agency_by_code
from payments.errors import InvalidInput
from payments.models import BankEvent
from payments.statement_import import import_statement
from payments.statement_profiles import BANK_LAYOUTS, BUILT_IN_PROFILES, UNCONFIRMED
from payments.statement_tables import parse_table
from settings.config import Settings
from settings.db import session_scope

ACCOUNT = "113000012345"  # the demo agency's account
OPENING = 12_500_000


@dataclass(frozen=True)
class Tx:
    at: datetime
    reference: str
    amount: int  # signed: + money in, - money out
    memo: str


def transactions(day: date, clock: Clock) -> list[Tx]:
    return [
        Tx(clock.local(day, 8, 15, 2), "FT26001A0001", 1_250_000, "MC7KD4WQ2RXHG nop phi"),
        Tx(clock.local(day, 9, 2, 47), "FT26001A0002", 30_000, "IBFT MCK7H3Q9XAB4J le phi"),
        Tx(clock.local(day, 14, 5, 0), "FT26001A0003", -1_500_000, "PHI DICH VU THANG"),
    ]


# What each layout's header row says, column by column, and what kind of value each holds:
# no, date (dd/mm/yyyy), datetime (dd/mm/yyyy hh:mm:ss), time (hh:mm:ss), ref, debit, credit,
# signed, dc (Có/Nợ), balance, memo, value_date.
LAYOUTS: dict[str, list[tuple[str, str]]] = {
    "vietcombank": [
        ("STT", "no"),
        ("Ngày giao dịch", "date"),
        ("Số tham chiếu", "ref"),
        ("Số tiền ghi nợ", "debit"),
        ("Số tiền ghi có", "credit"),
        ("Số dư", "balance"),
        ("Mô tả", "memo"),
    ],
    "vietinbank": [
        ("STT", "no"),
        ("Ngày giao dịch", "datetime"),
        ("Diễn giải", "memo"),
        ("Nợ", "debit"),
        ("Có", "credit"),
        ("Số dư", "balance"),
        ("Số giao dịch", "ref"),
    ],
    "bidv": [
        ("STT", "no"),
        ("Số CT", "ref"),
        ("Ngày hiệu lực", "value_date"),
        ("Ngày giao dịch", "datetime"),
        ("Phát sinh nợ", "debit"),
        ("Phát sinh có", "credit"),
        ("Số dư", "balance"),
        ("Mô tả", "memo"),
    ],
    "agribank": [
        ("STT", "no"),
        ("Ngày GD", "date"),
        ("Mã GD", "ref"),
        ("Số tiền", "unsigned"),
        ("Nợ/Có", "dc"),
        ("Số dư", "balance"),
        ("Nội dung", "memo"),
    ],
    "techcombank": [
        ("Ngày giao dịch/Transaction date", "date"),
        ("Số bút toán/Reference No.", "ref"),
        ("Diễn giải/Description", "memo"),
        ("Nợ/Debit", "debit"),
        ("Có/Credit", "credit"),
        ("Số dư/Balance", "balance"),
    ],
    "mb": [
        ("STT", "no"),
        ("Mã giao dịch", "ref"),
        ("Ngày giao dịch", "datetime"),
        ("Số tiền ghi nợ", "debit"),
        ("Số tiền ghi có", "credit"),
        ("Số dư", "balance"),
        ("Nội dung chi tiết", "memo"),
    ],
    "acb": [
        ("Ngày giao dịch", "date"),
        ("Giờ giao dịch", "time"),
        ("Số GD", "ref"),
        ("Diễn giải", "memo"),
        ("Rút ra", "debit"),
        ("Gửi vào", "credit"),
        ("Số dư", "balance"),
    ],
    "vpbank": [
        ("Ngày giao dịch", "datetime"),
        ("Mã giao dịch", "ref"),
        ("Số tiền giao dịch", "signed"),
        ("Số dư", "balance"),
        ("Nội dung", "memo"),
    ],
}
#: Layouts ``auto`` cannot read by itself, and why.
AUTO_CANNOT = {"vietinbank": "bare 'Nợ'/'Có' columns are never guessed"}
#: Layouts whose date column carries no time of day (the line is booked at 00:00 local).
DATE_ONLY = {"vietcombank", "agribank", "techcombank"}


def money(value: int, style: str) -> str:
    """``1.250.000`` (dots) or ``1,250,000`` (commas), with a leading ``-`` when negative."""
    text = f"{abs(value):,}"
    if style == "dots":
        text = text.replace(",", ".")
    return ("-" if value < 0 else "") + text


def rows_of(bank: str, txs: list[Tx], style: str, *, native: bool = False) -> list[list[object]]:
    """The whole sheet: metadata lines, the header, the lines, a total and the closing line.
    ``native`` writes XLSX numbers and datetimes as typed cells instead of text."""
    day = txs[0].at.date()
    closing = OPENING + sum(t.amount for t in txs)

    def amount(value: int) -> object:
        return value if native else money(value, style)

    sheet: list[list[object]] = [
        [f"NGÂN HÀNG {bank.upper()}"],
        ["SAO KÊ TÀI KHOẢN / ACCOUNT STATEMENT"],
        [f"Số tài khoản: {ACCOUNT}"],
        ["Tên tài khoản: UBND HUYEN SON HA"],
        ["Loại tiền: VND"],
        [f"Từ ngày {day:%d/%m/%Y} đến ngày {day:%d/%m/%Y}"],
        ["Số dư đầu kỳ:", amount(OPENING)],
        [],
        [header for header, _ in LAYOUTS[bank]],
    ]
    balance = OPENING
    for number, tx in enumerate(txs, start=1):
        balance += tx.amount
        local = tx.at.astimezone(ZONE).replace(tzinfo=None)
        values: dict[str, object] = {
            "no": number,
            "date": local.replace(hour=0, minute=0, second=0) if native else f"{local:%d/%m/%Y}",
            "datetime": local if native else f"{local:%d/%m/%Y %H:%M:%S}",
            "value_date": f"{local:%d/%m/%Y}",
            "time": f"{local:%H:%M:%S}",
            "ref": tx.reference,
            "debit": amount(-tx.amount) if tx.amount < 0 else None,
            "credit": amount(tx.amount) if tx.amount > 0 else None,
            "signed": amount(tx.amount),
            "unsigned": amount(abs(tx.amount)),
            "dc": "Có" if tx.amount > 0 else "Nợ",
            "balance": amount(balance),
            "memo": tx.memo,
        }
        sheet.append([values[kind] for _, kind in LAYOUTS[bank]])
    sheet.append(["Tổng cộng"])
    sheet.append(["Số dư cuối kỳ:", amount(closing)])
    sheet.append(["Người lập biểu"])
    return sheet


def as_csv(rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode("utf-8-sig")


def as_xlsx(rows: list[list[object]], *, title: str = "Sao ke") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    sheet.merge_cells("A1:F1")  # the bank's title spans the table, as exports do
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def statement_file(
    bank: str, txs: list[Tx], fmt: str, style: str, *, native: bool = False
) -> bytes:
    rows = rows_of(bank, txs, style, native=native)
    return as_xlsx(rows) if fmt == "xlsx" else as_csv(rows)


def check(bank: str, txs: list[Tx], data: bytes, fmt: str, profile: str) -> None:
    table = parse_table(data, fmt, ZONE, profile)
    (statement,) = table.statements
    assert statement.account_number == ACCOUNT
    got = [(x.bank_reference, x.amount, x.incoming, x.memo) for x in statement.lines]
    assert got == [(t.reference, abs(t.amount), t.amount > 0, t.memo) for t in txs]
    expected_times = [
        t.at.replace(hour=0, minute=0, second=0) if bank in DATE_ONLY else t.at for t in txs
    ]
    assert [x.booked_at for x in statement.lines] == expected_times
    closing = OPENING + sum(t.amount for t in txs)
    assert (statement.opening_balance, statement.closing_balance) == (OPENING, closing)
    assert statement.balances_consistent is True
    running = [OPENING + sum(t.amount for t in txs[: i + 1]) for i in range(len(txs))]
    assert [x.raw["balance"] for x in statement.lines] == running
    assert table.columns[0] == "header row 9"
    assert statement.warnings == ()


CASES = [
    (bank, fmt, style)
    for bank in LAYOUTS
    for fmt in ("xlsx", "csv")
    for style in ("dots", "commas")
]


def test_every_bank_layout_has_a_written_sample_and_is_marked_unconfirmed() -> None:
    assert set(LAYOUTS) == {layout["name"] for layout in BANK_LAYOUTS}
    for name in LAYOUTS:
        profile = BUILT_IN_PROFILES[name]
        assert profile.built_in and profile.unconfirmed and profile.bank
        assert UNCONFIRMED in profile.source
    assert not BUILT_IN_PROFILES["auto"].unconfirmed


@pytest.mark.parametrize(("bank", "fmt", "style"), CASES, ids=["-".join(c) for c in CASES])
def test_bank_layout_read_by_its_profile_and_by_auto(
    bank: str, fmt: str, style: str, clock: Clock
) -> None:
    txs = transactions(clock.today() - timedelta(days=1), clock)
    data = statement_file(bank, txs, fmt, style)
    check(bank, txs, data, fmt, bank)
    if bank in AUTO_CANNOT:
        with pytest.raises(InvalidInput) as caught:
            parse_table(data, fmt, ZONE)
        assert "header" in caught.value.detail  # and the profile is what reads it
    else:
        check(bank, txs, data, fmt, "auto")


@pytest.mark.parametrize("bank", sorted(LAYOUTS))
def test_bank_layout_xlsx_with_typed_cells(bank: str, clock: Clock) -> None:
    """Numbers and datetimes as Excel cells (not text): no number format to guess."""
    txs = transactions(clock.today() - timedelta(days=1), clock)
    check(bank, txs, statement_file(bank, txs, "xlsx", "dots", native=True), "xlsx", bank)


def test_another_banks_profile_does_not_read_a_layout_by_accident(clock: Clock) -> None:
    txs = transactions(clock.today() - timedelta(days=1), clock)
    data = statement_file("vietinbank", txs, "csv", "dots")
    with pytest.raises(InvalidInput):
        parse_table(data, "csv", ZONE, "agribank")


# --- into the database: each layout imported, again, and as the other file type ---------


@pytest.fixture
def demo(settings: Settings) -> Iterator[Settings]:
    seed(settings)
    yield settings


def _events() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(BankEvent)) or 0)


@pytest.mark.parametrize("bank", sorted(LAYOUTS))
def test_bank_layout_import_is_idempotent(bank: str, demo: Settings, clock: Clock) -> None:
    txs = transactions(clock.today() - timedelta(days=1), clock)
    xlsx = statement_file(bank, txs, "xlsx", "dots")
    with session_scope() as session:
        agency = agency_by_code(session, "DEMO-HUYEN")
        first = import_statement(session, agency, xlsx, "xlsx", profile=bank)
    assert (first.lines, first.credits_new, first.debits_ignored) == (3, 2, 1)
    assert first.credits_matched + first.exceptions == 2
    assert first.balance_checks and first.balance_checks[0].endswith("OK")
    assert _events() == 3
    with session_scope() as session:
        agency = agency_by_code(session, "DEMO-HUYEN")
        again = import_statement(session, agency, xlsx, "xlsx", profile=bank)
        # the same lines exported as CSV with the other number format: other bytes, same lines
        other = statement_file(bank, txs, "csv", "commas")
        as_csv_too = import_statement(session, agency, other, "csv", profile=bank)
    assert again.already_imported
    assert not as_csv_too.already_imported
    assert (as_csv_too.new_events, as_csv_too.credits_new, as_csv_too.credits_known) == (0, 0, 2)
    assert _events() == 3
