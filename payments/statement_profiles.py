"""Column-mapping profiles for spreadsheet statements (CSV and XLSX exports of internet banking).

A profile is data, not code: which row is the header (or "find it"), which header names mean
which field, how numbers and dates are written and which words mark a credit or a debit in a
D/C column. Vietnamese banks' exports differ per bank and change without notice, so the default
profile (``auto``) recognises the common Vietnamese and English column names itself; a named
profile narrows that down to one layout (and can name columns ``auto`` must not guess, such as
a bare ``Nợ`` / ``Có``).

Three kinds of profile, one shape (:func:`profile_from_json` reads all of them):

* ``auto`` and ``motcua`` (our own CSV export), documented here;
* the **bank layouts** in :data:`BANK_LAYOUTS` (Vietcombank, VietinBank, BIDV, Agribank,
  Techcombank, MB, ACB, VPBank). Each is **reconstructed from public descriptions and
  unconfirmed against a real export** (``unconfirmed=True``; :data:`UNCONFIRMED`): an agency
  should check it with its bank's own file on the admin page before relying on it. They are
  kept together as plain data so a corrected layout is a one-entry change;
* an agency's **own profiles**, stored as the same JSON in ``statement_profiles`` (the admin
  page ``/staff/admin/statements``; ``payments.statement_profile_store``). A stored profile may
  not take a built-in name, so a name always means one layout.

Header names are compared after :func:`normalise_header`: case, spacing, punctuation and
Vietnamese diacritics are ignored, so ``Ngày GD``, ``NGAY GD`` and ``ngay_gd`` are one name; a
bilingual cell (``Ngày giao dịch/Transaction date``, ``Có (Credit)``, two lines) is also tried
part by part.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from payments.errors import InvalidInput

__all__ = [
    "AUTO",
    "BANK_LAYOUTS",
    "BUILT_IN_PROFILES",
    "FIELDS",
    "MOTCUA",
    "PROFILE_NAME",
    "THOUSANDS",
    "UNCONFIRMED",
    "StatementProfile",
    "normalise_header",
    "profile_by_name",
    "profile_from_json",
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
#: How thousands are written: ``auto`` (``1.000.000`` and ``1,000,000`` both read, ambiguous
#: text refused), ``.`` (decimal ``,``), ``,`` (decimal ``.``), ``none`` (plain digits).
THOUSANDS = ("auto", ".", ",", "none")
#: An agency profile's name: short, lower case, safe in a URL and on the command line.
PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{1,39}")
#: The mark every bank layout carries (code, README, admin page).
UNCONFIRMED = (
    "layout reconstructed from public descriptions, unconfirmed against a real export: check "
    "with your bank's file / mẫu dựng lại từ mô tả công khai, chưa đối chiếu với tệp xuất thật: "
    "hãy kiểm tra bằng tệp của ngân hàng"
)
DEFAULT_DATE_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
)
_MAX_NAMES = 20
_MAX_NAME_LEN = 100


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


_PARTS = re.compile(r"[/()\[\]\r\n|]+")

#: Normalised D/C-column values meaning credit and debit (``Có``/``Nợ``, ``C``/``D``, ...).
CREDIT_MARKS = _names("C", "CR", "Credit", "Có", "Ghi có", "In", "+C")
DEBIT_MARKS = _names("D", "DR", "Debit", "Nợ", "Ghi nợ", "Out", "-D")


@dataclass(frozen=True)
class StatementProfile:
    """How one export layout is read.

    ``header_row`` is 1-based, or ``None`` to find the first row naming a date column and a
    credit (or signed amount) column among the first :attr:`search_rows`. ``columns`` maps a
    field of :data:`FIELDS` to the header names (normalised) that mean it; ``labels`` keeps
    them as written, for people. ``date_formats`` are tried in order (``strptime``); Vietnamese
    banks write ``03/12/2026`` for the 3rd of December. ``thousands`` is one of
    :data:`THOUSANDS`. ``credit_marks`` / ``debit_marks`` are the (normalised) values of a D/C
    column. ``unconfirmed`` marks a layout nobody has checked against a real file.
    """

    name: str
    description: str
    columns: dict[str, frozenset[str]]
    header_row: int | None = None
    search_rows: int = 60
    date_formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    day_first: bool = True
    thousands: str = "auto"
    built_in: bool = False
    source: str = ""
    bank: str = ""
    unconfirmed: bool = False
    credit_marks: frozenset[str] = CREDIT_MARKS
    debit_marks: frozenset[str] = DEBIT_MARKS
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def field_of(self, header: object) -> str | None:
        """The field a header cell names under this profile, or ``None``: the whole cell
        first, then each part of a bilingual cell (``Ngày GD/Trans. date``, ``Có (Credit)``)."""
        for text in (header, *_PARTS.split(str(header or ""))):
            name = normalise_header(text)
            if not name:
                continue
            for field_name in FIELDS:
                if name in self.columns.get(field_name, frozenset()):
                    return field_name
        return None

    def to_json(self) -> dict[str, Any]:
        """The profile as stored (``statement_profiles.profile``) and as the admin page edits
        it; :func:`profile_from_json` reads it back."""
        return {
            "name": self.name,
            "description": self.description,
            "bank": self.bank,
            "header_row": self.header_row,
            "search_rows": self.search_rows,
            "columns": {
                f: list(self.labels.get(f) or sorted(self.columns[f]))
                for f in FIELDS
                if self.columns.get(f)
            },
            "date_formats": list(self.date_formats),
            "thousands": self.thousands,
            "credit_marks": sorted(self.credit_marks),
            "debit_marks": sorted(self.debit_marks),
            "unconfirmed": self.unconfirmed,
            "source": self.source,
        }


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


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(detail, code="statement_profile_invalid")


def _text_list(value: object, what: str, *, limit: int = _MAX_NAMES) -> list[str]:
    """A list of short non-empty strings (a single string is one item)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or len(items) > limit:
        raise _invalid(f"{what}: give 1 to {limit} names / {what}: cần từ 1 đến {limit} tên")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item) > _MAX_NAME_LEN:
            raise _invalid(
                f"{what}: {item!r} is not a name of 1 to {_MAX_NAME_LEN} characters / "
                f"tên không hợp lệ"
            )
        out.append(" ".join(item.split()))
    return out


def _check_date_format(fmt: str) -> None:
    """A format must write and read back a day, a month and a year (``%d/%m/%Y``...)."""
    sample = datetime(2031, 12, 23, 14, 5, 9)  # a fixed, unambiguous day: 23 > 12
    try:
        back = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        raise _invalid(f"date format {fmt!r}: {exc} / định dạng ngày không hợp lệ") from exc
    if back.date() != sample.date():
        raise _invalid(
            f"date format {fmt!r} must name day, month and year (e.g. %d/%m/%Y) / định dạng "
            "ngày phải có ngày, tháng, năm (ví dụ %d/%m/%Y)"
        )


def profile_from_json(data: Mapping[str, Any], *, built_in: bool = False) -> StatementProfile:
    """A profile from its JSON (stored, built in, or typed on the admin page), checked:
    known fields only, a date column and a credit or signed-amount column, sane formats.
    Anything else is ``statement_profile_invalid`` with a bilingual message."""
    if not isinstance(data, Mapping):
        raise _invalid("a profile is a JSON object / mẫu cột phải là một đối tượng JSON")
    name = str(data.get("name") or "").strip().lower()
    if not PROFILE_NAME.fullmatch(name):
        raise _invalid(
            f"profile name {name!r}: 2 to 40 of a-z 0-9 . _ - / tên mẫu {name!r}: 2–40 ký tự "
            "a-z 0-9 . _ -"
        )
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, Mapping):
        raise _invalid("columns: a mapping field → names / columns phải là ánh xạ trường → tên")
    unknown = sorted(set(raw_columns) - set(FIELDS))
    if unknown:
        raise _invalid(
            f"unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(FIELDS)} / "
            "trường không hợp lệ"
        )
    labels = {f: tuple(_text_list(v, f)) for f, v in raw_columns.items() if v not in (None, "", [])}
    if "date" not in labels or not ({"credit", "amount"} & labels.keys()):
        raise _invalid(
            "a profile needs a date column and a credit (or signed amount) column / mẫu cột "
            "cần cột ngày giao dịch và cột ghi có (hoặc số tiền có dấu)"
        )
    header_row = data.get("header_row")
    if header_row in ("", None):
        header_row = None
    elif (
        not isinstance(header_row, int)
        or isinstance(header_row, bool)
        or not (1 <= header_row <= 500)
    ):
        raise _invalid(
            f"header_row {header_row!r}: a row number 1–500, or empty to find it / dòng tiêu "
            "đề phải là số 1–500 hoặc để trống"
        )
    search_rows = data.get("search_rows", 60)
    if (
        not isinstance(search_rows, int)
        or isinstance(search_rows, bool)
        or not (1 <= search_rows <= 500)
    ):
        raise _invalid("search_rows: 1–500 / số dòng tìm tiêu đề: 1–500")
    thousands = str(data.get("thousands") or "auto")
    if thousands not in THOUSANDS:
        raise _invalid(
            f"thousands {thousands!r}: one of {', '.join(THOUSANDS)} / dấu phân cách hàng "
            "nghìn không hợp lệ"
        )
    date_formats = tuple(
        _text_list(data.get("date_formats") or list(DEFAULT_DATE_FORMATS), "date_formats")
    )
    for fmt in date_formats:
        _check_date_format(fmt)
    marks: dict[str, frozenset[str]] = {}
    for key, default in (("credit_marks", CREDIT_MARKS), ("debit_marks", DEBIT_MARKS)):
        given = data.get(key)
        marks[key] = (
            frozenset(normalise_header(m) for m in _text_list(given, key)) - {""}
            if given
            else default
        )
    if marks["credit_marks"] & marks["debit_marks"]:
        raise _invalid(
            "a mark cannot mean both credit and debit / một ký hiệu không thể vừa "
            "là ghi có vừa là ghi nợ"
        )
    description = str(data.get("description") or "")[:500]
    return StatementProfile(
        name=name,
        description=description,
        columns={f: frozenset(normalise_header(n) for n in v) for f, v in labels.items()},
        header_row=header_row,
        search_rows=search_rows,
        date_formats=date_formats,
        thousands=thousands,
        built_in=built_in,
        source=str(data.get("source") or "")[:500],
        bank=str(data.get("bank") or "")[:100],
        unconfirmed=bool(data.get("unconfirmed")),
        credit_marks=marks["credit_marks"],
        debit_marks=marks["debit_marks"],
        labels=labels,
    )


# --- bank layouts ---------------------------------------------------------------------------
#
# EVERY LAYOUT BELOW IS RECONSTRUCTED FROM PUBLIC DESCRIPTIONS AND UNCONFIRMED AGAINST A REAL
# EXPORT: CHECK IT WITH YOUR BANK'S FILE (admin page "Sao kê ngân hàng": upload a sample, see
# the parsed lines). Banks rename columns between versions of their internet banking; when one
# is found wrong, correct its entry here (or save an agency profile from the admin page).
#
# Common to all: metadata lines above the header (bank name, "Số tài khoản: ...", "Loại tiền",
# "Từ ngày ... đến ngày ...", "Số dư đầu kỳ") and a total / closing balance / signature below;
# the header row is found (first 60 rows); amounts read in either number format ("auto": the
# same bank writes 1.000.000 or 1,000,000 depending on the user's settings); day-first dates.

_SOURCE = "reconstructed from public descriptions (user guides, accounting forums); " + UNCONFIRMED

BANK_LAYOUTS: tuple[dict[str, Any], ...] = (
    {
        "name": "vietcombank",
        "bank": "Vietcombank (VCB)",
        "description": "VCB Digibank / iB@nking 'Sao kê tài khoản': STT, Ngày giao dịch (date "
        "only), Số tham chiếu, Số tiền ghi nợ, Số tiền ghi có, Số dư, Mô tả.",
        "columns": {
            "date": ["Ngày giao dịch", "Transaction Date"],
            "reference": ["Số tham chiếu", "Reference No"],
            "debit": ["Số tiền ghi nợ", "Debit"],
            "credit": ["Số tiền ghi có", "Credit"],
            "balance": ["Số dư", "Balance"],
            "description": ["Mô tả", "Description"],
        },
        "date_formats": ["%d/%m/%Y", "%d/%m/%Y %H:%M:%S"],
    },
    {
        "name": "vietinbank",
        "bank": "VietinBank (CTG)",
        "description": "VietinBank iPay / eFAST 'Lịch sử giao dịch': STT, Ngày giao dịch "
        "(dd/mm/yyyy hh:mm:ss), Diễn giải, Nợ, Có, Số dư, Số giao dịch. The bare 'Nợ'/'Có' "
        "columns are not guessed by auto.",
        "columns": {
            "date": ["Ngày giao dịch"],
            "description": ["Diễn giải"],
            "debit": ["Nợ"],
            "credit": ["Có"],
            "balance": ["Số dư"],
            "reference": ["Số giao dịch"],
        },
        "date_formats": ["%d/%m/%Y %H:%M:%S", "%d/%m/%Y"],
    },
    {
        "name": "bidv",
        "bank": "BIDV",
        "description": "BIDV iBank / SmartBanking: STT, Số CT, Ngày hiệu lực (value date), "
        "Ngày giao dịch, Phát sinh nợ, Phát sinh có, Số dư, Mô tả.",
        "columns": {
            "reference": ["Số CT", "Số chứng từ"],
            "value_date": ["Ngày hiệu lực"],
            "date": ["Ngày giao dịch"],
            "debit": ["Phát sinh nợ"],
            "credit": ["Phát sinh có"],
            "balance": ["Số dư"],
            "description": ["Mô tả", "Diễn giải"],
        },
        "date_formats": ["%d/%m/%Y %H:%M:%S", "%d/%m/%Y"],
    },
    {
        "name": "agribank",
        "bank": "Agribank",
        "description": "Agribank E-Mobile Banking / Internet Banking: STT, Ngày GD, Mã GD, "
        "Số tiền, Nợ/Có (one amount and a Nợ/Có column), Số dư, Nội dung.",
        "columns": {
            "date": ["Ngày GD"],
            "reference": ["Mã GD"],
            "amount": ["Số tiền"],
            "direction": ["Nợ/Có"],
            "balance": ["Số dư"],
            "description": ["Nội dung"],
        },
        "date_formats": ["%d/%m/%Y", "%d/%m/%Y %H:%M:%S"],
        "credit_marks": ["Có", "C"],
        "debit_marks": ["Nợ", "N", "D"],
    },
    {
        "name": "techcombank",
        "bank": "Techcombank (TCB)",
        "description": "Techcombank Business / F@st i-Bank, bilingual headers: Ngày giao "
        "dịch/Transaction date, Số bút toán/Reference No., Diễn giải/Description, Nợ/Debit, "
        "Có/Credit, Số dư/Balance.",
        "columns": {
            "date": ["Ngày giao dịch/Transaction date"],
            "reference": ["Số bút toán/Reference No."],
            "description": ["Diễn giải/Description"],
            "debit": ["Nợ/Debit"],
            "credit": ["Có/Credit"],
            "balance": ["Số dư/Balance"],
        },
        "date_formats": ["%d/%m/%Y", "%d/%m/%Y %H:%M:%S"],
    },
    {
        "name": "mb",
        "bank": "MB (Ngân hàng Quân đội)",
        "description": "MB BIZ / MB Bank app: STT, Mã giao dịch, Ngày giao dịch "
        "(dd/mm/yyyy hh:mm:ss), Số tiền ghi nợ, Số tiền ghi có, Số dư, Nội dung chi tiết.",
        "columns": {
            "reference": ["Mã giao dịch"],
            "date": ["Ngày giao dịch"],
            "debit": ["Số tiền ghi nợ"],
            "credit": ["Số tiền ghi có"],
            "balance": ["Số dư"],
            "description": ["Nội dung chi tiết", "Nội dung"],
        },
        "date_formats": ["%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y"],
    },
    {
        "name": "acb",
        "bank": "ACB",
        "description": "ACB ONE / ACB Online: Ngày giao dịch and Giờ giao dịch in two columns, "
        "Số GD, Diễn giải, Rút ra, Gửi vào, Số dư.",
        "columns": {
            "date": ["Ngày giao dịch"],
            "time": ["Giờ giao dịch"],
            "reference": ["Số GD"],
            "description": ["Diễn giải"],
            "debit": ["Rút ra"],
            "credit": ["Gửi vào"],
            "balance": ["Số dư"],
        },
        "date_formats": ["%d/%m/%Y"],
    },
    {
        "name": "vpbank",
        "bank": "VPBank",
        "description": "VPBank NEO: Ngày giao dịch, Mã giao dịch, Số tiền giao dịch (signed: "
        "'-' for money out, no D/C column), Số dư, Nội dung.",
        "columns": {
            "date": ["Ngày giao dịch"],
            "reference": ["Mã giao dịch"],
            "amount": ["Số tiền giao dịch"],
            "balance": ["Số dư"],
            "description": ["Nội dung"],
        },
        "date_formats": ["%d/%m/%Y %H:%M:%S", "%d/%m/%Y"],
    },
)


def _bank_profile(layout: Mapping[str, Any]) -> StatementProfile:
    return profile_from_json({**layout, "unconfirmed": True, "source": _SOURCE}, built_in=True)


BUILT_IN_PROFILES: dict[str, StatementProfile] = {
    p.name: p for p in (AUTO, MOTCUA, *(_bank_profile(x) for x in BANK_LAYOUTS))
}


def profile_by_name(
    name: str | None, own: Mapping[str, StatementProfile] | None = None
) -> StatementProfile:
    """The profile ``name`` (``None`` → :data:`AUTO`): built in, or one of ``own`` (an
    agency's stored profiles by name); else ``statement_format_unknown``."""
    if name is None:
        return AUTO
    key = name.strip().lower()
    profile = BUILT_IN_PROFILES.get(key) or (own or {}).get(key)
    if profile is None:
        known = [*BUILT_IN_PROFILES, *(own or {})]
        raise InvalidInput(
            f"unknown statement profile {name!r}; known: {', '.join(known)} / "
            f"không có mẫu cột {name!r}",
            code="statement_format_unknown",
        )
    return profile
