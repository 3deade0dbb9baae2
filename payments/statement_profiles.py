"""Column-mapping profiles for spreadsheet statements (CSV and XLSX exports of internet banking).

A profile is data, not code: which row is the header (or "find it"), which header names mean
which field, and how numbers and dates are written. Vietnamese banks' exports differ per bank
and change without notice, so the default profile (``auto``) recognises the common Vietnamese
and English column names itself; a named profile only narrows that down.

Built-in profiles are listed in :data:`BUILT_IN_PROFILES` and marked ``built_in=True`` with the
source of the layout. Only layouts we can document are built in: our own CSV export
(``motcua``) and the generic recogniser (``auto``). Per-bank layouts are not built in until a
bank's published export can be cited; agencies' own profiles are to be stored per agency (the
admin page of issue 18, not built yet).

Header names are compared after :func:`normalise_header`: case, spacing, punctuation and
Vietnamese diacritics are ignored, so ``Ngày GD``, ``NGAY GD`` and ``ngay_gd`` are one name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from payments.errors import InvalidInput

__all__ = [
    "AUTO",
    "BUILT_IN_PROFILES",
    "FIELDS",
    "StatementProfile",
    "normalise_header",
    "profile_by_name",
]

#: The fields a profile maps; ``date`` and one of ``credit``/``amount`` are required.
FIELDS = (
    "date",
    "time",
    "value_date",
    "reference",
    "credit",
    "debit",
    "amount",
    "direction",
    "description",
    "balance",
    "account",
    "currency",
)


def normalise_header(text: object) -> str:
    """``"Số tiền ghi có (VND)"`` → ``"so tien ghi co vnd"``: lower case, no diacritics (đ → d),
    punctuation and underscores as spaces, runs of spaces collapsed."""
    value = str(text or "").replace("đ", "d").replace("Đ", "D")
    value = unicodedata.normalize("NFKD", value)
    value = "".join(ch for ch in value if not unicodedata.combining(ch)).lower()
    value = re.sub(r"[^0-9a-z]+", " ", value)
    return " ".join(value.split())


def _names(*names: str) -> frozenset[str]:
    return frozenset(normalise_header(name) for name in names)


@dataclass(frozen=True)
class StatementProfile:
    """How one export layout is read.

    ``header_row`` is 1-based, or ``None`` to find the first row naming a date column and a
    credit (or signed amount) column among the first :attr:`search_rows`. ``columns`` maps a
    field of :data:`FIELDS` to the header names (normalised) that mean it. ``date_formats``
    are tried in order (``strptime``); ``day_first`` documents that ``03/12/2026`` is the 3rd
    of December, as Vietnamese banks write it. ``thousands`` is ``"."``, ``","`` or ``"auto"``
    (``1.000.000`` and ``1,000,000`` both read as one million; a single separator followed by
    one or two digits is a decimal mark).
    """

    name: str
    description: str
    columns: dict[str, frozenset[str]]
    header_row: int | None = None
    search_rows: int = 60
    date_formats: tuple[str, ...] = (
        "%d/%m/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
        "%d/%m/%Y",
        "%d-%m-%Y %H:%M:%S",
        "%d-%m-%Y",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d",
    )
    day_first: bool = True
    thousands: str = "auto"
    built_in: bool = False
    source: str = ""

    def field_of(self, header: object) -> str | None:
        """The field a header cell names under this profile, or ``None``."""
        name = normalise_header(header)
        for field_name in FIELDS:
            if name in self.columns.get(field_name, frozenset()):
                return field_name
        return None


_COMMON_COLUMNS: dict[str, frozenset[str]] = {
    "date": _names(
        "Ngày giao dịch",
        "Ngày GD",
        "Ngày",
        "Ngày hạch toán",
        "Ngày ghi sổ",
        "Thời gian giao dịch",
        "Ngày giờ giao dịch",
        "Thời gian",
        "Ngày thực hiện",
        "Transaction date",
        "Trans date",
        "Txn date",
        "Date",
        "Posting date",
        "Booking date",
        "Transaction time",
        "Date time",
        "booked_at",
    ),
    "time": _names("Giờ giao dịch", "Giờ GD", "Giờ", "Time"),
    "value_date": _names("Ngày hiệu lực", "Ngày giá trị", "Value date", "value_date"),
    "reference": _names(
        "Số tham chiếu",
        "Số bút toán",
        "Mã GD",
        "Mã giao dịch",
        "Số giao dịch",
        "Số GD",
        "Số chứng từ",
        "Số CT",
        "Mã tham chiếu",
        "Reference",
        "Reference no",
        "Reference number",
        "Ref no",
        "Transaction ID",
        "Transaction no",
        "Transaction number",
        "Bank reference",
        "bank_reference",
    ),
    "debit": _names(
        "Ghi nợ",
        "Số tiền ghi nợ",
        "Phát sinh nợ",
        "Rút ra",
        "Số tiền rút",
        "Debit",
        "Debit amount",
        "Withdrawal",
        "Withdrawals",
        "Money out",
    ),
    "credit": _names(
        "Ghi có",
        "Số tiền ghi có",
        "Phát sinh có",
        "Gửi vào",
        "Số tiền gửi",
        "Credit",
        "Credit amount",
        "Deposit",
        "Deposits",
        "Money in",
    ),
    # Never a bare "Nợ"/"Có": without diacritics they read "no"/"co", which is also "No." (the
    # row number column of English exports).
    "amount": _names("Số tiền", "Số tiền giao dịch", "Amount", "Transaction amount"),
    "direction": _names("Nợ/Có", "Loại", "D/C", "Debit/Credit", "Direction", "CR/DR"),
    "description": _names(
        "Nội dung",
        "Diễn giải",
        "Mô tả",
        "Nội dung giao dịch",
        "Nội dung chi tiết",
        "Chi tiết giao dịch",
        "Description",
        "Details",
        "Transaction details",
        "Narrative",
        "Remarks",
        "Memo",
    ),
    "balance": _names("Số dư", "Số dư cuối", "Số dư sau giao dịch", "Balance", "Running balance"),
    "account": _names("Số tài khoản", "Tài khoản", "Account number", "Account", "account_number"),
    "currency": _names("Loại tiền", "Tiền tệ", "Currency", "CCY"),
}

AUTO = StatementProfile(
    name="auto",
    description="Finds the header row and recognises the common Vietnamese and English "
    "column names (the default when no --profile is given).",
    columns=_COMMON_COLUMNS,
    built_in=True,
    source="issue 18: the column names of Vietnamese internet-banking exports",
)

MOTCUA = StatementProfile(
    name="motcua",
    description="Our own CSV export: account_number, booked_at, bank_reference, amount "
    "(signed), direction, memo; header on row 1; ISO dates.",
    columns={
        "account": _names("account_number"),
        "date": _names("booked_at"),
        "value_date": _names("value_date"),
        "reference": _names("bank_reference"),
        "amount": _names("amount"),
        "direction": _names("direction"),
        "description": _names("memo"),
        "currency": _names("currency"),
    },
    header_row=1,
    date_formats=("%Y-%m-%d %H:%M:%S",),
    thousands="none",
    built_in=True,
    source="payments.statements.CSV_COLUMNS (README: bank statements)",
)

BUILT_IN_PROFILES: dict[str, StatementProfile] = {p.name: p for p in (AUTO, MOTCUA)}


def profile_by_name(name: str | None) -> StatementProfile:
    """The built-in profile ``name`` (``None`` → :data:`AUTO`), or ``statement_format_unknown``."""
    if name is None:
        return AUTO
    profile = BUILT_IN_PROFILES.get(name.strip().lower())
    if profile is None:
        raise InvalidInput(
            f"unknown statement profile {name!r}; built in: {', '.join(BUILT_IN_PROFILES)} / "
            f"không có mẫu cột {name!r}",
            code="statement_format_unknown",
        )
    return profile
