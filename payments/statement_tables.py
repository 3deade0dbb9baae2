"""Spreadsheet statements (CSV and XLSX exports of internet banking) read into :class:`Statement`.

Vietnamese accountants download the daily statement as Excel or CSV with Vietnamese headers and
the account, period and balances on lines above the header (issue 18). This module finds the
header row, maps its columns with a :class:`~payments.statement_profiles.StatementProfile`,
reads the metadata lines above it (account, currency, opening and closing balance) and turns
every data row into a :class:`StatementLine`.

As for every statement (payments.statements): the whole file is accepted or refused, naming
every bad row (``statement_malformed``, ``extra["errors"]``); anything but VND is refused
(``statement_currency``); nothing is guessed where a wrong guess moves money. XLSX is read with
openpyxl in read-only mode with cached values (``data_only``): a formula Excel never saved a
value for, a merged cell that leaves a data row without its date or amount, two sheets that
both hold a statement, or a password-protected file are refused with the row (or sheet) named.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from payments.errors import InvalidInput
from payments.statement_profiles import (
    MOTCUA,
    StatementProfile,
    normalise_header,
    profile_by_name,
)
from payments.statements import (
    CSV_COLUMNS,
    CSV_OPTIONAL_COLUMNS,
    CURRENCY,
    MAX_STATEMENT_BYTES,
    Statement,
    StatementLine,
    line_fingerprint,
    parse_csv,
)

__all__ = [
    "TABLE_FORMATS",
    "TableSample",
    "TableStatement",
    "guess_format",
    "parse_table",
    "sample_table",
]

TABLE_FORMATS = ("csv", "xlsx")
_MAX_ERRORS = 50
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML and old .xls
_ACCOUNT = re.compile(r"[0-9][0-9 .\-]{4,32}[0-9]")

Cell = Any  # str | int | float | datetime | date | time | None, as the reader gives it
Row = tuple[int, list[Cell]]  # (1-based row number in the sheet or file, cells)


@dataclass(frozen=True)
class TableStatement:
    """The parsed statement and which header cell was used for which field (for the report)."""

    statements: list[Statement]
    columns: tuple[str, ...]


def _malformed(detail: str, **extra: object) -> InvalidInput:
    return InvalidInput(detail, code="statement_malformed", extra=dict(extra) or None)


# --- reading rows ---------------------------------------------------------------------------


def _csv_rows(data: bytes) -> list[Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _malformed(
            f"CSV line {line}: not UTF-8 text (byte {exc.start}) / tệp CSV không phải UTF-8"
        ) from exc
    sample = "\n".join(text.splitlines()[:80])
    # Exports use ',', ';' (Excel in a Vietnamese locale) or tab; the most frequent wins.
    delimiter = max((",", ";", "\t"), key=sample.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[Row] = []
    try:
        start = 1
        for values in reader:
            rows.append((start, list(values)))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _malformed(f"CSV line {reader.line_num}: {exc}") from exc
    return rows


def _xlsx_sheets(data: bytes) -> list[tuple[str, list[Row], Any]]:
    """Every sheet's rows (cached values) and the workbook with formulas, for diagnosis."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    if data.startswith(_OLE_MAGIC):
        # Both an encrypted OOXML file and an Excel 97-2003 .xls are OLE compound files; only
        # the encrypted one has an "EncryptionInfo" stream (named in UTF-16 in the directory).
        if "EncryptionInfo".encode("utf-16-le") in data:
            raise _malformed(
                "XLSX file is password-protected (encrypted): open it in Excel and save it "
                "without a password / tệp Excel có mật khẩu mở: hãy mở bằng Excel và lưu lại "
                "không đặt mật khẩu"
            )
        raise _malformed(
            "the file is password-protected or an old Excel 97-2003 .xls: save it as .xlsx "
            "without a password / tệp có mật khẩu hoặc là .xls cũ: hãy lưu lại dạng .xlsx "
            "không mật khẩu"
        )
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise _malformed(f"not a readable XLSX file ({exc}) / không đọc được tệp Excel") from exc
    sheets: list[tuple[str, list[Row], Any]] = []
    try:
        for sheet in book.worksheets:
            rows: list[Row] = []
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                rows.append((number, list(values)))
            sheets.append((sheet.title, rows, None))
    finally:
        book.close()
    return sheets


def _formula_cells(data: bytes, sheet_title: str) -> dict[tuple[int, int], str]:
    """(row, column) → formula text, for the cells of one sheet that hold a formula."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    try:
        found: dict[tuple[int, int], str] = {}
        for r, values in enumerate(book[sheet_title].iter_rows(values_only=True), start=1):
            for c, value in enumerate(values):
                if isinstance(value, str) and value.startswith("="):
                    found[(r, c)] = value
        return found
    finally:
        book.close()


# --- header and metadata --------------------------------------------------------------------


def _header(rows: Sequence[Row], profile: StatementProfile) -> tuple[int, dict[str, int]] | None:
    """Index in ``rows`` of the header and field → column, or ``None`` if none is found."""
    candidates = (
        [(i, r) for i, r in enumerate(rows) if r[0] == profile.header_row]
        if profile.header_row
        else list(enumerate(rows[: profile.search_rows]))
    )
    for index, (_number, cells) in candidates:
        mapping: dict[str, int] = {}
        for column, cell in enumerate(cells):
            name = profile.field_of(cell) if isinstance(cell, str) else None
            if name and name not in mapping:
                mapping[name] = column
        if "date" in mapping and ("credit" in mapping or "amount" in mapping) and len(mapping) >= 3:
            return index, mapping
    return None


_META_LABELS = {
    "account": ("so tai khoan", "tai khoan", "account number", "account no", "account"),
    "currency": ("loai tien", "tien te", "currency"),
    "opening": ("so du dau ky", "so du dau", "opening balance", "beginning balance"),
    "closing": ("so du cuoi ky", "so du cuoi", "closing balance", "ending balance"),
}


def _metadata(rows: Sequence[Row], profile: StatementProfile) -> dict[str, tuple[int, Cell]]:
    """Label → (row, value) from lines like ``Số tài khoản: 113000012345`` or a label cell
    followed by its value cell; above the header, and also below the data (closing balance)."""
    found: dict[str, tuple[int, Cell]] = {}
    for number, cells in rows:
        for column, cell in enumerate(cells):
            if not isinstance(cell, str) or not cell.strip():
                continue
            label_text, sep, rest = cell.partition(":")
            label = normalise_header(label_text)
            for key, labels in _META_LABELS.items():
                if key in found or not any(label == x or label.startswith(x + " ") for x in labels):
                    continue
                value: Cell = rest.strip() if sep and rest.strip() else None
                if value is None:
                    following = [v for v in cells[column + 1 :] if v not in (None, "")]
                    value = following[0] if following else None
                if value is not None:
                    found[key] = (number, value)
    return found


# --- values ---------------------------------------------------------------------------------


def _amount(cell: Cell, profile: StatementProfile) -> int | None:
    """Whole dong from a number or text (``1.000.000``, ``1,000,000``, ``6000.00``,
    ``(150.000)``, ``-150000 VND``); ``None`` for an empty cell. Raises ``ValueError``."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    if isinstance(cell, bool):
        raise ValueError(f"{cell!r} is not an amount")
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float):
        if not cell.is_integer():
            raise ValueError(f"{cell!r} has a fractional part; VND has no minor unit")
        return int(cell)
    if not isinstance(cell, str):
        raise ValueError(f"{cell!r} is not an amount")
    text = re.sub(r"(?i)\s|vnd|đ|₫", "", cell)
    negative = text.startswith("-") or (text.startswith("(") and text.endswith(")"))
    text = text.strip("()+-")
    if not re.fullmatch(r"[0-9][0-9.,]*", text or ""):
        raise ValueError(f"{cell!r} is not an amount")
    text = _plain_number(text, profile.thousands)
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{cell!r} is not an amount") from exc
    if value != value.to_integral_value():
        raise ValueError(f"{cell!r} has a fractional part; VND has no minor unit")
    if len(str(int(value))) > 15:
        raise ValueError(f"{cell!r} is too large")
    return -int(value) if negative else int(value)


def _plain_number(text: str, thousands: str) -> str:
    """``1.000.000`` / ``1,000,000`` / ``1.000.000,00`` / ``1,000,000.00`` → ``1000000[.00]``.

    With ``thousands="auto"``: when both marks appear the last one is the decimal mark; a mark
    that repeats, or is followed by exactly three digits, separates thousands; one followed by
    one or two digits is a decimal mark. ``"none"`` (our own export) allows a ``.`` decimal
    only, as payments.statements.parse_csv does.
    """
    if thousands == "none":
        if "," in text or text.count(".") > 1:
            raise ValueError(f"{text!r}: thousands separators are not allowed in this layout")
        return text
    if thousands in (".", ","):
        decimal_mark = "," if thousands == "." else "."
        return text.replace(thousands, "").replace(decimal_mark, ".")
    marks = [ch for ch in text if ch in ".,"]
    if not marks:
        return text
    last = marks[-1]
    if len(set(marks)) == 2:
        head, _, tail = text.rpartition(last)
        if marks.count(last) > 1 or not re.fullmatch(r"[0-9]{1,2}", tail):
            raise ValueError(f"{text!r}: mixed separators")
        return head.replace("." if last == "," else ",", "") + "." + tail
    parts = text.split(last)
    if len(parts) > 2:
        if not all(len(p) == 3 for p in parts[1:]):
            raise ValueError(f"{text!r}: bad thousands grouping")
        return "".join(parts)
    tail = parts[1]
    if len(tail) == 3:
        return "".join(parts)
    if len(tail) in (1, 2):
        return parts[0] + "." + tail
    raise ValueError(f"{text!r}: ambiguous separator")


_EXCEL_EPOCH = datetime(1899, 12, 30)


def _moment(cell: Cell, extra_time: Cell, profile: StatementProfile, zone: tzinfo) -> datetime:
    """A date cell (``datetime``, Excel serial number or text in the profile's formats) with
    an optional separate time cell, as an aware time in the agency zone. Raises ValueError."""
    moment: datetime | None = None
    if isinstance(cell, datetime):
        moment = cell.replace(tzinfo=None)
    elif isinstance(cell, date):
        moment = datetime.combine(cell, time(0, 0))
    elif isinstance(cell, int | float) and not isinstance(cell, bool) and 20_000 < cell < 80_000:
        moment = _EXCEL_EPOCH + timedelta(days=float(cell))
        moment = moment.replace(microsecond=0)
    elif isinstance(cell, str) and cell.strip():
        text = " ".join(cell.split())
        for fmt in profile.date_formats:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if moment is None:
        raise ValueError(f"{cell!r} is not a date ({profile.date_formats[0]} or similar)")
    if extra_time not in (None, "") and moment.time() == time(0, 0):
        if isinstance(extra_time, time):
            moment = datetime.combine(moment.date(), extra_time)
        elif isinstance(extra_time, datetime):
            moment = datetime.combine(moment.date(), extra_time.time())
        else:
            clock = str(extra_time).strip()
            for fmt in ("%H:%M:%S", "%H:%M"):
                try:
                    moment = datetime.combine(moment.date(), datetime.strptime(clock, fmt).time())
                    break
                except ValueError:
                    continue
            else:
                raise ValueError(f"time {extra_time!r} is not HH:MM[:SS]")
    return moment.replace(tzinfo=zone)


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return " ".join(str(cell).split())


_FOOTER = re.compile(r"^(tong|cong|total|sum|so du cuoi|closing|nguoi lap|ke toan|ghi chu)")


# --- the table ------------------------------------------------------------------------------


def _is_native_csv(rows: Sequence[Row]) -> bool:
    """Our own export (payments.statements.parse_csv): its header names on the first row."""
    first = next((cells for _, cells in rows if any(_text(c) for c in cells)), [])
    names = {str(c).strip().lower() for c in first if c is not None}
    return bool(names & {"booked_at", "bank_reference", "account_number"}) and names <= set(
        CSV_COLUMNS + CSV_OPTIONAL_COLUMNS
    ) | {""}


def guess_format(data: bytes, filename: str = "") -> str:
    """``xlsx`` for a zip (OOXML) or an OLE file (encrypted OOXML, old .xls: refused later with
    the reason), else ``csv``; an upload's own name is only a hint after the bytes."""
    if data.startswith((b"PK\x03\x04", _OLE_MAGIC)):
        return "xlsx"
    if filename.lower().endswith((".xlsx", ".xlsm", ".xls")):
        return "xlsx"
    return "csv"


def _check_bytes(data: bytes, fmt: str) -> str:
    if fmt not in TABLE_FORMATS:
        raise InvalidInput(
            f"unknown table format {fmt!r}; use csv or xlsx", code="statement_format_unknown"
        )
    what = fmt.upper()
    if len(data) > MAX_STATEMENT_BYTES:
        raise _malformed(f"{what} file is {len(data)} bytes, more than {MAX_STATEMENT_BYTES}")
    if not data.strip():
        raise _malformed(f"{what} file is empty / tệp rỗng")
    return what


def _statement_sheet(
    sheets: list[tuple[str, list[Row], Any]], profile: StatementProfile
) -> tuple[str, list[Row]]:
    """The one sheet holding a statement under ``profile``: notes on other sheets are
    ignored, two statement sheets are refused naming both, none is refused naming them all."""
    found = [(title, rows, _header(rows, profile)) for title, rows, _ in sheets]
    with_header = [(title, rows, h) for title, rows, h in found if h is not None]
    if not with_header:
        titles = ", ".join(repr(t) for t, _, _ in sheets)
        raise _malformed(
            f"XLSX: no header row with a date and a credit/amount column in sheet(s) {titles} "
            "/ không tìm thấy dòng tiêu đề (Ngày giao dịch, Ghi có, ...)"
        )
    if len(with_header) > 1:
        titles = ", ".join(repr(t) for t, _, _ in with_header)
        raise _malformed(
            f"XLSX: sheets {titles} all look like statements; export one sheet per file "
            "/ nhiều trang tính đều giống sao kê: mỗi tệp chỉ một trang tính"
        )
    title, rows, _ = with_header[0]
    return title, rows


def parse_table(
    data: bytes,
    fmt: str,
    zone: tzinfo,
    profile_name: str | StatementProfile | None = None,
    *,
    account_hint: str | None = None,
) -> TableStatement:
    """A CSV or XLSX statement. ``account_hint`` is not trusted: it is only used in messages.

    ``profile_name`` is a built-in profile's name or a profile itself (an agency's stored one,
    or one being tried on the admin page). Without a profile: today's own CSV header set goes
    to :func:`parse_csv` unchanged; anything else has its header row found and its columns
    recognised by name (profile ``auto``).
    """
    what = _check_bytes(data, fmt)
    del account_hint
    profile = (
        profile_name
        if isinstance(profile_name, StatementProfile)
        else profile_by_name(profile_name)
    )
    if fmt == "csv":
        rows = _csv_rows(data)
        if (profile_name is None and _is_native_csv(rows)) or profile is MOTCUA:
            statements = parse_csv(data, zone)
            return TableStatement(statements, tuple(f"{c} ← {c}" for c in CSV_COLUMNS))
        return _parse_rows(rows, profile, zone, what, sheet=None, formulas=None)

    sheets = _xlsx_sheets(data)
    title, rows = _statement_sheet(sheets, profile)
    table = _parse_rows(
        rows, profile, zone, what, sheet=title, formulas=lambda: _formula_cells(data, title)
    )
    if len(sheets) == 1:
        return table
    # Say which sheet was read when the workbook has others (notes, a cover page).
    others = ", ".join(repr(t) for t, _, _ in sheets if t != title)
    return TableStatement(table.statements, (*table.columns, f"sheet {title!r} (not {others})"))


@dataclass(frozen=True)
class TableSample:
    """The first rows of a spreadsheet as text and where ``profile`` finds the header, for
    the admin page that builds a profile from a sample (columns prefilled from detection)."""

    fmt: str
    sheet: str | None
    rows: list[tuple[int, list[str]]]
    header_row: int | None
    header: list[str]
    mapping: dict[str, int]


def sample_table(
    data: bytes, fmt: str, profile: StatementProfile | None = None, *, max_rows: int = 60
) -> TableSample:
    """Reads ``data`` as :func:`parse_table` would (same refusals for an unreadable file) but
    stops short of the lines: the header found by ``profile`` (default ``auto``), or none, and
    the first ``max_rows`` rows so a person can pick the header and columns themselves."""
    _check_bytes(data, fmt)
    profile = profile or profile_by_name(None)
    sheet: str | None = None
    if fmt == "csv":
        rows = _csv_rows(data)
    else:
        sheets = _xlsx_sheets(data)
        try:
            sheet, rows = _statement_sheet(sheets, profile)
        except InvalidInput:
            # no header under this profile: show the first sheet that holds anything
            sheet, rows, _ = next(
                (s for s in sheets if any(_text(c) for _, cells in s[1] for c in cells)),
                sheets[0] if sheets else ("", [], None),
            )
    header = _header(rows, profile)
    shown = [(number, [_text(c) for c in cells]) for number, cells in rows[:max_rows]]
    if header is None:
        return TableSample(fmt, sheet, shown, None, [], {})
    index, mapping = header
    number, cells = rows[index]
    return TableSample(fmt, sheet, shown, number, [_text(c) for c in cells], mapping)


def _parse_rows(
    rows: list[Row],
    profile: StatementProfile,
    zone: tzinfo,
    what: str,
    *,
    sheet: str | None,
    formulas: Any,
) -> TableStatement:
    place = f"{what} sheet {sheet!r}" if sheet else what
    header = _header(rows, profile)
    if header is None:
        raise _malformed(
            f"{place}: no header row with a date and a credit/amount column in the first "
            f"{profile.search_rows} rows / không tìm thấy dòng tiêu đề (Ngày giao dịch, Ghi có...)"
        )
    index, mapping = header
    header_number, header_cells = rows[index]
    meta = _metadata(rows[:index], profile)
    meta_below = _metadata(rows[index + 1 :], profile)
    columns = tuple(
        f"{name} ← {_text(header_cells[col])!r} (column {col + 1})"
        for name, col in sorted(mapping.items(), key=lambda kv: kv[1])
    )
    errors: list[str] = []
    warnings: list[str] = []

    currency_meta = meta.get("currency")
    if currency_meta and _text(currency_meta[1]).upper() not in ("", CURRENCY, "VNĐ", "VND."):
        raise InvalidInput(
            f"{place} row {currency_meta[0]}: currency {_text(currency_meta[1])}; only VND is "
            "accepted / chỉ chấp nhận VND",
            code="statement_currency",
        )
    account_meta = meta.get("account")
    account = ""
    if account_meta:
        match = _ACCOUNT.search(_text(account_meta[1]))
        account = re.sub(r"[ .\-]", "", match.group(0)) if match else ""

    def cell(cells: list[Cell], name: str) -> Cell:
        col = mapping.get(name)
        return cells[col] if col is not None and col < len(cells) else None

    formula_map: dict[tuple[int, int], str] | None = None

    def missing(number: int, name: str) -> str:
        """Why the ``name`` cell of row ``number`` is empty, for the message."""
        nonlocal formula_map
        if formulas is not None:
            if formula_map is None:
                formula_map = formulas()
            formula = formula_map.get((number, mapping[name]))
            if formula is not None:
                return (
                    f"{name} is a formula ({formula}) without a saved value: open the file in "
                    "Excel and save it / công thức chưa có giá trị: mở bằng Excel rồi lưu lại"
                )
        return f"no {name} (an empty or merged cell?) / thiếu {name}"

    lines: list[tuple[str, StatementLine]] = []
    seen: dict[tuple[object, ...], int] = {}
    row_account = account
    for number, cells in rows[index + 1 :]:
        if not any(_text(c) for c in cells):
            continue
        date_cell = cell(cells, "date")
        credit = debit = None
        amount_problem = ""
        try:
            credit = _amount(cell(cells, "credit"), profile)
            debit = _amount(cell(cells, "debit"), profile)
            signed = _amount(cell(cells, "amount"), profile)
        except ValueError as exc:
            amount_problem = str(exc)
            signed = None
        first_text = normalise_header(next((c for c in cells if _text(c)), ""))
        has_money = any(v not in (None, 0) for v in (credit, debit, signed)) or amount_problem
        if _text(date_cell) == "" and not has_money:
            continue  # a footer, signature or note line
        if _FOOTER.match(first_text) and not isinstance(date_cell, datetime | date):
            continue  # "Tổng cộng" / "Total" rows carry sums, not transactions
        where = f"{place} row {number}"
        if amount_problem:
            errors.append(f"{where}: amount {amount_problem}")
            continue
        try:
            booked = _moment(date_cell, cell(cells, "time"), profile, zone)
        except ValueError as exc:
            errors.append(
                f"{where}: {missing(number, 'date')}"
                if _text(date_cell) == ""
                else f"{where}: date {exc}"
            )
            continue
        direction = normalise_header(cell(cells, "direction"))
        if signed is not None and "credit" not in mapping:
            if direction in profile.debit_marks:
                signed = -abs(signed)
            elif direction and direction not in profile.credit_marks:
                errors.append(
                    f"{where}: direction {_text(cell(cells, 'direction'))!r} is not credit "
                    f"({', '.join(sorted(profile.credit_marks))}) or debit "
                    f"({', '.join(sorted(profile.debit_marks))})"
                )
                continue
            credit, debit = (signed, None) if signed > 0 else (None, -signed if signed else None)
        if credit and debit:
            errors.append(f"{where}: both a credit ({credit}) and a debit ({debit})")
            continue
        if not credit and not debit:
            if "credit" in mapping and formulas is not None:
                errors.append(f"{where}: {missing(number, 'credit')}")
            else:
                errors.append(f"{where}: neither a credit nor a debit amount")
            continue
        amount = credit or debit or 0
        if amount < 0:
            errors.append(f"{where}: negative amount {amount} in a credit/debit column")
            continue
        incoming = bool(credit)
        own_account = _text(cell(cells, "account"))
        if own_account:
            row_account = re.sub(r"[ .\-]", "", own_account)
        if not row_account:
            errors.append(
                f"{where}: no account number (a line 'Số tài khoản: ...' above the header, or "
                "an account column) / không có số tài khoản"
            )
            continue
        currency = _text(cell(cells, "currency")).upper()
        if currency not in ("", CURRENCY):
            raise InvalidInput(
                f"{where}: currency {currency}; only VND is accepted / chỉ chấp nhận VND",
                code="statement_currency",
            )
        memo = _text(cell(cells, "description"))
        reference = _text(cell(cells, "reference"))
        key = (row_account, booked.date(), amount, incoming, memo)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        if not reference or reference.upper() in ("NONREF", "NOTPROVIDED") or len(reference) > 128:
            reference = line_fingerprint(
                row_account, booked.date(), amount, incoming, memo, occurrence
            )
            warnings.append(f"{where}: no bank reference; identified by fingerprint {reference}")
        raw: dict[str, Any] = {
            "format": what.lower(),
            "row": number,
            "sheet": sheet,
            "cells": [_text(c) for c in cells],
            "balance": _balance(cell(cells, "balance"), profile),
        }
        lines.append(
            (
                row_account,
                StatementLine(reference, booked, booked.date(), amount, incoming, memo, raw),
            )
        )

    if errors:
        shown = errors[:_MAX_ERRORS]
        more = len(errors) - len(shown)
        raise _malformed(
            f"{what} rejected (nothing imported / không nhập dòng nào): "
            + "; ".join(shown)
            + (f"; and {more} more" if more else ""),
            errors=errors,
        )
    if not lines:
        raise _malformed(
            f"{place}: header on row {header_number} but no transaction rows below it "
            "/ không có giao dịch"
        )
    opening = _meta_amount(meta.get("opening") or meta_below.get("opening"), place, profile)
    closing = _meta_amount(meta.get("closing") or meta_below.get("closing"), place, profile)
    by_account: dict[str, list[StatementLine]] = {}
    for acct, line in lines:
        by_account.setdefault(acct, []).append(line)
    statements = [
        Statement(
            account_number=acct,
            currency=CURRENCY,
            opening_date=min(x.booked_at.date() for x in acct_lines),
            closing_date=max(x.booked_at.date() for x in acct_lines),
            lines=acct_lines,
            opening_balance=opening if len(by_account) == 1 else None,
            closing_balance=closing if len(by_account) == 1 else None,
            warnings=tuple(warnings),
        )
        for acct, acct_lines in by_account.items()
    ]
    return TableStatement(statements, (f"header row {header_number}", *columns))


def _balance(cell: Cell, profile: StatementProfile) -> int | None:
    """A line's running balance, shown to staff only (it moves no money): unreadable → None."""
    try:
        return _amount(cell, profile)
    except ValueError:
        return None


def _meta_amount(
    found: tuple[int, Cell] | None, place: str, profile: StatementProfile
) -> int | None:
    if found is None:
        return None
    try:
        return _amount(found[1], profile)
    except ValueError as exc:
        raise _malformed(f"{place} row {found[0]}: balance {exc}") from exc
