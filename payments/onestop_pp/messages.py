"""PP-DVCQG messages: parsing, checksums, ``ThoiGianGD``, amounts and replies (pure functions).

Rules that the peers get wrong and we must not (``docs/onestop-pp.md``):

- **Hash what was received.** ``ThoiGianGD`` is hashed exactly as sent (one client writes the
  hour on a 12-hour clock), and so is every other field: a value is never re-formatted
  before it is checked. ``SoTien`` may be a JSON string or number; a number is hashed as its
  plain decimal digits (the only form a whole number has).
- **Constant-time compare** of ``MaXacThuc`` (:func:`hmac.compare_digest`), lower- or
  upper-case hex accepted.
- **Amounts are whole đồng**: ``"5000"`` and ``5000`` are accepted; ``5000.0``, ``"5.000"``,
  ``-5000``, ``true`` and ``"5e3"`` are refused.
- **Freshness**: ``ThoiGianGD`` is the partner's local wall time (the agency's zone). A
  12-hour writer's ``hh`` is ambiguous (``03`` is 03:00 or 15:00), so the time is fresh when
  any of its readings (:func:`readings`) is no older than the partner's accepted skew and no
  more than :data:`FUTURE_SECONDS` ahead. (OpenCPS stamps every message with the time its
  payment file was created, so its partners need a skew of days, not minutes.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "BILL_DIALECTS",
    "CONFIRM_FIELDS",
    "INIT_FIELDS",
    "MESSAGE_TYPES",
    "POLL_FIELDS",
    "REPLY_DIALECTS",
    "FeeLine",
    "InitMessage",
    "PollMessage",
    "ProtocolError",
    "Refusal",
    "checksum",
    "checksum_ok",
    "confirm_message",
    "error_reply",
    "fresh_enough",
    "local_timestamp",
    "parse_init",
    "parse_json",
    "parse_poll",
    "readings",
    "success_reply",
    "whole_dong",
]

MESSAGE_TYPES = ("INIT", "QUERY", "GET_BILL")
REPLY_DIALECTS = ("maloi", "error_code")
"""``maloi``: OpenCPS reads a top-level ``MaLoi``/``UrlThanhToan``; ``error_code``: the .NET
client reads ``{"error_code": "0", "message": "<JSON text>"}``."""
BILL_DIALECTS = ("url", "pdf")
"""GET_BILL: ``url`` answers JSON with ``UrlBienLai``; ``pdf`` answers the PDF as the body."""

INIT_FIELDS = (
    "LoaiBanTin",
    "PhienBan",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "LoaiHinhThanhToan",
    "MaKenhThanhToan",
    "MaThietBi",
    "NgonNgu",
    "MaTienTe",
    "MaNganHang",
    "ThongTinGiaoDich",
    "ThoiGianGD",
    "Ip",
)
"""Checksum order of INIT (the secret key is appended last)."""
POLL_FIELDS = ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD")
"""Checksum order of QUERY and GET_BILL."""
CONFIRM_FIELDS = (
    "LoaiBanTin",
    "MaLoi",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "MaTienTe",
    "MaGiaoDich",
    "MaNganHang",
    "ThoiGianGD",
    "ThongTinGiaoDich",
)
"""Checksum order of CONFIRM (and of our QUERY reply, which carries the CONFIRM fields)."""

_TIMESTAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$")
_DIGITS = re.compile(r"^[0-9]{1,15}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_AMOUNT_DIGITS = 15


@dataclass(frozen=True)
class Refusal:
    """One kind of refusal: the protocol code (``MaLoi``; ``error_code`` in the other dialect),
    the HTTP status that goes with it, and what it means in both languages."""

    code: str
    status: int
    vi: str
    en: str


class ProtocolError(Exception):
    """A message refused: answered in the partner's dialect, audited, nothing created."""

    BAD_MESSAGE = Refusal("01", 400, "Bản tin không hợp lệ", "Malformed message")
    BAD_CHECKSUM = Refusal("02", 401, "Sai mã xác thực", "Checksum (MaXacThuc) mismatch")
    UNKNOWN_PARTNER = Refusal(
        "03", 401, "Đối tác không tồn tại hoặc đã bị thu hồi", "Unknown or revoked partner"
    )
    STALE = Refusal(
        "04", 401, "Thời gian giao dịch ngoài khoảng cho phép", "ThoiGianGD outside the window"
    )
    IP_REFUSED = Refusal("05", 403, "Địa chỉ IP không được phép", "Source IP not allowed")
    DUPLICATE = Refusal(
        "06",
        409,
        "Mã tham chiếu đã dùng cho một bản tin khác",
        "MaThamChieu already used with another message",
    )
    NOT_FOUND = Refusal("07", 404, "Không tìm thấy giao dịch", "Transaction not found")
    AMOUNT_MISMATCH = Refusal(
        "08", 422, "Số tiền không khớp biểu phí", "Amount differs from the published tariff"
    )
    NOT_IN_CATALOGUE = Refusal(
        "09", 422, "Thủ tục hoặc khoản phí không có trong danh mục", "Procedure or fee unknown"
    )
    SERVICE_REFUSED = Refusal(
        "10", 422, "Dịch vụ không được hỗ trợ (xử phạt vi phạm hành chính)", "Fines not accepted"
    )
    ACCOUNT_REFUSED = Refusal(
        "11",
        422,
        "Tài khoản thụ hưởng không phải tài khoản của đơn vị thu",
        "Beneficiary account is not the agency's own",
    )
    NO_RECEIPT = Refusal("12", 409, "Chưa có biên lai", "No receipt issued yet")
    TOO_LARGE = Refusal("13", 413, "Bản tin quá lớn", "Message too large")
    RATE_LIMITED = Refusal("14", 429, "Quá nhiều yêu cầu", "Too many requests")
    INTERNAL = Refusal("99", 500, "Lỗi hệ thống", "Internal error")

    def __init__(self, refusal: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.refusal = refusal
        self.detail = detail

    @property
    def text(self) -> str:
        """What the partner's operator reads: both languages and the detail."""
        return f"{self.refusal.vi} / {self.refusal.en}: {self.detail}"


def _bad(detail: str) -> ProtocolError:
    return ProtocolError(ProtocolError.BAD_MESSAGE, detail)


# --------------------------------------------------------------------------- checksums


def checksum(values: Sequence[str], secret: str) -> str:
    """Lowercase hex SHA-256 of ``v1|v2|…|vn|secret`` (UTF-8): plain SHA-256, not HMAC."""
    return hashlib.sha256("|".join([*values, secret]).encode("utf-8")).hexdigest()


def _as_hashed(value: Any) -> str:
    """A field as it enters the checksum: the string received, or a whole number's digits."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _bad("a checksum field is neither a string nor a whole number")


def checksum_ok(message: Mapping[str, Any], fields: Sequence[str], secret: str, given: Any) -> bool:
    """``MaXacThuc`` equals the checksum of ``fields`` of ``message`` (constant time)."""
    if not isinstance(given, str) or not _HEX64.match(given):
        return False
    expected = checksum([_as_hashed(message.get(name)) for name in fields], secret)
    return hmac.compare_digest(expected.encode(), given.lower().encode())


# --------------------------------------------------------------------------- values


def parse_json(raw: bytes) -> dict[str, Any]:
    """The message as a JSON object (UTF-8); anything else → :data:`ProtocolError.BAD_MESSAGE`."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(f"not a UTF-8 JSON document: {str(exc)[:120]}") from exc
    if not isinstance(data, dict):
        raise _bad("the message must be a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def whole_dong(value: Any, name: str) -> int:
    """An amount in whole đồng, sent as a string of digits or a JSON whole number."""
    if isinstance(value, bool) or value is None:
        raise _bad(f"{name} must be a whole number of đồng, not {json.dumps(value)}")
    if isinstance(value, int):
        if value < 0 or len(str(value)) > MAX_AMOUNT_DIGITS:
            raise _bad(f"{name} must be a whole, non-negative number of đồng")
        return value
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    raise _bad(f"{name} must be a whole number of đồng (digits only), got {str(value)[:30]!r}")


def _text(data: Mapping[str, Any], name: str, *, required: bool = True, max_len: int = 255) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise _bad(f"{name} is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(f"{name} must be a string")
    text = str(value)
    if len(text) > max_len:
        raise _bad(f"{name} is longer than {max_len} characters")
    if any(ord(c) < 32 for c in text):
        raise _bad(f"{name} contains control characters")
    return text


# --------------------------------------------------------------------------- time


def readings(stamp: str, zone: ZoneInfo) -> list[datetime]:
    """Every instant ``stamp`` (``yyyyMMddHHmmss``, local wall time) may mean: the 24-hour
    reading, and for a 12-hour writer the afternoon one (``hh`` 01–11 → +12 h; ``12`` → 00)."""
    match = _TIMESTAMP.match(stamp)
    if match is None:
        raise _bad("ThoiGianGD must be yyyyMMddHHmmss")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    hours = {hour}
    if 1 <= hour <= 11:
        hours.add(hour + 12)
    if hour == 12:
        hours.add(0)
    found = []
    for h in sorted(hours):
        try:
            found.append(datetime(year, month, day, h, minute, second, tzinfo=zone))
        except ValueError:
            continue
    if not found:
        raise _bad("ThoiGianGD is not a real date and time")
    return found


FUTURE_SECONDS = 300
"""A message is never accepted from further in the future than this (clocks drift by minutes;
a stamp hours ahead is wrong), whatever a partner's accepted age."""


def fresh_enough(stamp: str, zone: ZoneInfo, now: datetime, skew_seconds: int) -> bool:
    """Some reading of ``stamp`` is at most ``skew_seconds`` old and at most
    ``min(skew_seconds, FUTURE_SECONDS)`` ahead of ``now``."""
    past = timedelta(seconds=skew_seconds)
    ahead = timedelta(seconds=min(skew_seconds, FUTURE_SECONDS))
    return any(-past <= moment - now <= ahead for moment in readings(stamp, zone))


def local_timestamp(moment: datetime, zone: ZoneInfo) -> str:
    """``yyyyMMddHHmmss`` on a 24-hour clock in ``zone`` (what we write)."""
    return moment.astimezone(zone).strftime("%Y%m%d%H%M%S")


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class FeeLine:
    """One ``PhiLePhi`` entry."""

    kind: str
    """``LoaiPhiLePhi`` as sent (``1``/``2``, or a word such as ``Phi``)."""
    code: str
    name: str
    amount: int
    quantity: int | None = None
    """``SoLuong``: not in the protocol; honoured when a client sends it."""


@dataclass(frozen=True)
class InitMessage:
    raw: Mapping[str, Any]
    partner_code: str
    reference: str
    """``MaThamChieu``."""
    amount: int
    stamp: str
    description: str
    """``ThongTinGiaoDich``."""
    service: str
    """``MaDichVu``: 2 fees and charges, 1 fines."""
    procedure_code: str
    procedure_name: str
    dossier_code: str
    beneficiary_account: str
    beneficiary_bank: str
    payer: dict[str, Any]
    lines: tuple[FeeLine, ...]
    items: tuple[tuple[str, int], ...] = field(default=())
    """``DSKhoanNop``: (text, amount)."""


@dataclass(frozen=True)
class PollMessage:
    """QUERY or GET_BILL."""

    raw: Mapping[str, Any]
    kind: str
    partner_code: str
    reference: str
    stamp: str


def message_type(data: Mapping[str, Any]) -> str:
    kind = data.get("LoaiBanTin")
    if kind not in MESSAGE_TYPES:
        raise _bad(f"LoaiBanTin must be one of {', '.join(MESSAGE_TYPES)}")
    return str(kind)


def _payer(info: Mapping[str, Any]) -> dict[str, Any]:
    name = _text(info, "HoTenNguoiNop", max_len=255)
    id_number = _text(info, "SoCMNDNguoiNop", required=False, max_len=20)
    address = ", ".join(
        part
        for part in (
            _text(info, "DiaChiNguoiNop", required=False, max_len=300),
            _text(info, "HuyenNguoiNop", required=False, max_len=100),
            _text(info, "TinhNguoiNop", required=False, max_len=100),
        )
        if part
    )
    payer: dict[str, Any] = {"name": name}
    if id_number and set(id_number) != {"0"}:  # one client sends 000000000 when unknown
        payer["id_number"] = id_number
    if address:
        payer["address"] = address[:500]
    return payer


def _lines(info: Mapping[str, Any]) -> tuple[FeeLine, ...]:
    entries = info.get("PhiLePhi")
    if not isinstance(entries, list) or not entries:
        raise _bad("ThongTinBienLai.PhiLePhi must list at least one fee")
    if len(entries) > 50:
        raise _bad("at most 50 PhiLePhi lines")
    lines = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise _bad(f"PhiLePhi[{position}] must be an object")
        quantity = entry.get("SoLuong")
        lines.append(
            FeeLine(
                kind=_text(entry, "LoaiPhiLePhi", required=False, max_len=20),
                code=_text(entry, "MaPhiLePhi", max_len=64),
                name=_text(entry, "TenPhiLePhi", required=False, max_len=500),
                amount=whole_dong(entry.get("SoTien"), f"PhiLePhi[{position}].SoTien"),
                quantity=(
                    whole_dong(quantity, f"PhiLePhi[{position}].SoLuong")
                    if quantity is not None
                    else None
                ),
            )
        )
    return tuple(lines)


def _items(info: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    entries = info.get("DSKhoanNop") or []
    if not isinstance(entries, list) or len(entries) > 50:
        raise _bad("DSKhoanNop must be a list of at most 50 items")
    found = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise _bad(f"DSKhoanNop[{position}] must be an object")
        found.append(
            (
                _text(entry, "NoiDung", required=False, max_len=500),
                whole_dong(entry.get("SoTien"), f"DSKhoanNop[{position}].SoTien"),
            )
        )
    return tuple(found)


def parse_init(data: Mapping[str, Any]) -> InitMessage:
    """An INIT's fields, typed; the checksum is checked by the caller (it needs the key)."""
    if data.get("LoaiBanTin") != "INIT":
        raise _bad("LoaiBanTin must be INIT")
    for name in INIT_FIELDS:
        if name != "SoTien":
            _text(data, name, required=name in ("MaDoiTac", "MaThamChieu", "ThoiGianGD"))
    currency = data.get("MaTienTe") or "VND"
    if currency != "VND":
        raise _bad("MaTienTe must be VND")
    info = data.get("ThongTinBienLai")
    if not isinstance(info, dict):
        raise _bad("ThongTinBienLai must be an object")
    return InitMessage(
        raw=data,
        partner_code=_text(data, "MaDoiTac", max_len=64),
        reference=_text(data, "MaThamChieu", max_len=100),
        amount=whole_dong(data.get("SoTien"), "SoTien"),
        stamp=_text(data, "ThoiGianGD", max_len=14),
        description=_text(data, "ThongTinGiaoDich", required=False, max_len=500),
        service=_text(info, "MaDichVu", max_len=4),
        procedure_code=_text(info, "MaTTHC", max_len=64),
        procedure_name=_text(info, "TenTTHC", required=False, max_len=500),
        dossier_code=_text(info, "MaHoSo", max_len=64),
        beneficiary_account=_text(info, "TKThuHuong", required=False, max_len=40),
        beneficiary_bank=_text(info, "MaNHThuHuong", required=False, max_len=40),
        payer=_payer(info),
        lines=_lines(info),
        items=_items(info),
    )


def parse_poll(data: Mapping[str, Any]) -> PollMessage:
    kind = message_type(data)
    if kind == "INIT":
        raise _bad("LoaiBanTin must be QUERY or GET_BILL")
    for name in POLL_FIELDS:
        _text(data, name, required=name != "PhienBan", max_len=100)
    return PollMessage(
        raw=data,
        kind=kind,
        partner_code=_text(data, "MaDoiTac", max_len=64),
        reference=_text(data, "MaThamChieu", max_len=100),
        stamp=_text(data, "ThoiGianGD", max_len=14),
    )


# --------------------------------------------------------------------------- what we send


def confirm_message(
    *,
    kind: str,
    result_code: str,
    partner_code: str,
    reference: str,
    amount: int,
    transaction_id: str,
    bank_code: str,
    stamp: str,
    description: str,
    secret: str,
) -> dict[str, Any]:
    """A CONFIRM (``kind`` ``CONFIRM``) or the CONFIRM fields of a QUERY reply, with its
    ``MaXacThuc``; ``SoTien`` is a JSON number and hashed as its digits."""
    message: dict[str, Any] = {
        "LoaiBanTin": kind,
        "MaLoi": result_code,
        "MaDoiTac": partner_code,
        "MaThamChieu": reference,
        "SoTien": amount,
        "MaTienTe": "VND",
        "MaGiaoDich": transaction_id,
        "MaNganHang": bank_code,
        "ThoiGianGD": stamp,
        "ThongTinGiaoDich": description,
    }
    message["MaXacThuc"] = checksum([_as_hashed(message[n]) for n in CONFIRM_FIELDS], secret)
    return message


def success_reply(dialect: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``MaLoi`` ``00`` with ``fields`` at the top level, or ``error_code`` ``0`` with the
    fields as a JSON text in ``message``."""
    if dialect == "error_code":
        return {"error_code": "0", "message": json.dumps(dict(fields), ensure_ascii=False)}
    return {"MaLoi": "00", "MoTaLoi": "Thành công", **fields}


def error_reply(dialect: str | None, error: ProtocolError) -> dict[str, Any]:
    """A refusal in the partner's dialect; both dialects at once when the partner (and so its
    dialect) is not known."""
    maloi = {"MaLoi": error.refusal.code, "MoTaLoi": error.text}
    code = {"error_code": error.refusal.code, "message": error.text}
    if dialect == "maloi":
        return maloi
    if dialect == "error_code":
        return code
    return {**maloi, **code}
