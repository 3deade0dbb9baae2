"""VietQR payloads (NAPAS 247 over EMVCo merchant-presented QR) and their images.

A citizen pays a fee by scanning a QR code with any Vietnamese banking app.
The app reads an EMVCo TLV string naming the agency's own account (money goes
straight to the collecting organisation, never through us), the amount and
the memo. We put the transfer reference in the memo (sub-field ``62.08``) so
the credit can be matched back to the payment order.

Layout (``id`` 2 digits, ``length`` 2 digits, ``value``)::

    00 "01"                      payload format indicator
    01 "12" | "11"               dynamic (one-time) | static
    38 {00 "A000000727"          NAPAS GUID
        01 {00 BIN, 01 account}  beneficiary
        02 "QRIBFTTA"|"QRIBFTTC"}  to account | to card
    53 "704"                     VND
    54 amount                    whole dong, optional
    58 "VN"
    59 name, 60 city             optional
    62 {08 purpose}              memo, optional
    63 CRC                       CRC-16/CCITT-FALSE over everything before it, "6304" included

Values are restricted to printable ASCII: the TLV length counts characters,
and banking apps disagree on anything else. Diacritics are stripped the way
banks would strip them anyway (see :func:`payments.memo.strip_diacritics`).
"""

from __future__ import annotations

import binascii
import functools
import io
import re
from dataclasses import dataclass
from typing import TypeAlias

import segno

from payments.memo import strip_diacritics

__all__ = [
    "CURRENCY_VND",
    "MAX_PURPOSE_LENGTH",
    "NAPAS_GUID",
    "SERVICE_TO_ACCOUNT",
    "SERVICE_TO_CARD",
    "TLVDict",
    "VietQR",
    "build_payload",
    "crc16_ccitt_false",
    "decode_payload",
    "parse_payload",
    "qr_png",
    "qr_svg",
]

NAPAS_GUID = "A000000727"
"""Globally unique identifier of NAPAS in merchant account information (id 38.00)."""

SERVICE_TO_ACCOUNT = "QRIBFTTA"
"""NAPAS 247 service code: transfer to an account number."""

SERVICE_TO_CARD = "QRIBFTTC"
"""NAPAS 247 service code: transfer to a card number."""

CURRENCY_VND = "704"
"""ISO 4217 numeric code of the Vietnamese dong (id 53)."""

MAX_PURPOSE_LENGTH = 25
"""EMVCo limit of "purpose of transaction" (62.08); banks truncate beyond it."""

_MAX_NAME_LENGTH = 25  # EMVCo id 59
_MAX_CITY_LENGTH = 15  # EMVCo id 60
_MAX_AMOUNT_DIGITS = 13  # EMVCo id 54

_BIN_RE = re.compile(r"[0-9]{6}")
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9]{1,19}")
_PRINTABLE_ASCII_RE = re.compile(r"[\x20-\x7e]+")
_CRC_TAG = "6304"

TLVDict: TypeAlias = dict[str, "str | TLVDict"]
"""A parsed TLV level: id -> value, or id -> nested level for template fields."""


def crc16_ccitt_false(data: bytes) -> str:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR).

    Returned as the 4 upper-case, zero-padded hex digits EMVCo puts in id 63:
    a CRC of 0x0A1B must read ``0A1B``, or banking apps reject the code.
    Check value: ``crc16_ccitt_false(b"123456789") == "29B1"``.

    :func:`binascii.crc_hqx` is this CRC (the XMODEM/CCITT polynomial, unreflected) with the
    start value as a parameter; in C it is ~30 times faster than a Python table loop, which
    mattered on the order-creation hot path.
    """
    return f"{binascii.crc_hqx(data, 0xFFFF):04X}"


def _tlv(tag: str, value: str) -> str:
    if not 0 < len(value) <= 99:
        raise ValueError(f"field {tag}: value length {len(value)} is outside 1-99")
    return f"{tag}{len(value):02d}{value}"


def _ascii_text(name: str, value: str, max_length: int) -> str:
    """Strip diacritics, then insist on 1..max_length printable ASCII characters."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str")
    text = strip_diacritics(value)
    if not _PRINTABLE_ASCII_RE.fullmatch(text):
        raise ValueError(f"{name} must be non-empty printable ASCII after removing diacritics")
    if len(text) > max_length:
        raise ValueError(f"{name} is {len(text)} characters; at most {max_length} allowed")
    return text


_COUNTRY = _tlv("58", "VN")


@functools.lru_cache(maxsize=1024)
def _head(bank_bin: str, account: str, dynamic: bool, service: str) -> str:
    """Ids 00, 01, 38 and 53: the same for every order to one account, so built (and the
    account checked) once per account rather than once per order."""
    if not isinstance(bank_bin, str) or not _BIN_RE.fullmatch(bank_bin):
        raise ValueError("bank_bin must be 6 digits")
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise ValueError("account must be 1-19 ASCII letters or digits")
    if service not in (SERVICE_TO_ACCOUNT, SERVICE_TO_CARD):
        raise ValueError(f"service must be {SERVICE_TO_ACCOUNT} or {SERVICE_TO_CARD}")
    beneficiary = _tlv("00", bank_bin) + _tlv("01", account)
    merchant_account = _tlv("00", NAPAS_GUID) + _tlv("01", beneficiary) + _tlv("02", service)
    return (
        _tlv("00", "01")
        + _tlv("01", "12" if dynamic else "11")
        + _tlv("38", merchant_account)
        + _tlv("53", CURRENCY_VND)
    )


def build_payload(
    *,
    bank_bin: str,
    account: str,
    amount: int | None,
    purpose: str | None,
    dynamic: bool = True,
    service: str = SERVICE_TO_ACCOUNT,
    merchant_name: str | None = None,
    city: str | None = None,
) -> str:
    """Build a VietQR payload string, CRC included.

    ``bank_bin`` is the 6-digit NAPAS BIN of the agency's bank, ``account``
    its account (or card, with :data:`SERVICE_TO_CARD`) number, 1-19 letters
    or digits. ``amount`` is whole dong (a positive ``int`` of at most 13
    digits; ``bool`` and ``float`` are refused so that ``120000.0`` or
    ``True`` cannot slip into a payment request). ``purpose`` becomes the
    transfer memo: diacritics are removed, case is kept, and the result must
    be printable ASCII of at most 25 characters. ``dynamic`` marks a one-time
    code (``"12"``) rather than a reusable one (``"11"``).

    Raises :class:`ValueError` (or :class:`TypeError` for a wrong type).
    """
    parts = [_head(bank_bin, account, dynamic, service)]
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("amount must be an int number of dong")
        if amount <= 0 or len(str(amount)) > _MAX_AMOUNT_DIGITS:
            raise ValueError(f"amount must be positive with at most {_MAX_AMOUNT_DIGITS} digits")
        parts.append(_tlv("54", str(amount)))
    parts.append(_COUNTRY)
    if merchant_name is not None:
        parts.append(_tlv("59", _ascii_text("merchant_name", merchant_name, _MAX_NAME_LENGTH)))
    if city is not None:
        parts.append(_tlv("60", _ascii_text("city", city, _MAX_CITY_LENGTH)))
    if purpose is not None:
        text = _ascii_text("purpose", purpose, MAX_PURPOSE_LENGTH)
        parts.append(_tlv("62", _tlv("08", text)))
    body = "".join(parts) + _CRC_TAG
    return body + crc16_ccitt_false(body.encode("ascii"))


def _split_tlv(data: str, where: str) -> TLVDict:
    fields: TLVDict = {}
    pos = 0
    while pos < len(data):
        header = data[pos : pos + 4]
        if len(header) < 4 or not header.isascii() or not header.isdigit():
            raise ValueError(f"{where}: bad TLV header {header!r} at offset {pos}")
        tag, length = header[:2], int(header[2:])
        value = data[pos + 4 : pos + 4 + length]
        if length == 0 or len(value) != length:
            raise ValueError(f"{where}: field {tag} declares length {length} at offset {pos}")
        if tag in fields:
            raise ValueError(f"{where}: field {tag} appears twice")
        fields[tag] = value
        pos += 4 + length
    return fields


def _is_template(tag: str) -> bool:
    """EMVCo ids whose value is itself TLV: merchant account info 26-51, 62, 64, 80-99."""
    number = int(tag)
    return 26 <= number <= 51 or number in (62, 64) or 80 <= number <= 99


def parse_payload(payload: str) -> TLVDict:
    """Parse an EMVCo QR payload into ``{id: value}``, checking lengths and the CRC.

    Template fields (26-51, 62, 64, 80-99) are parsed into nested dicts, and
    in a NAPAS merchant account the beneficiary (sub-field ``01``) is parsed
    once more into ``{"00": BIN, "01": account}``. The CRC must be the last
    field, ``6304`` + 4 hex digits, and match. Raises :class:`ValueError`.
    """
    if not isinstance(payload, str) or not payload.isascii():
        raise ValueError("payload must be an ASCII string")
    if len(payload) < 8 or payload[-8:-4] != _CRC_TAG:
        raise ValueError("payload does not end with a CRC field (6304XXXX)")
    expected = crc16_ccitt_false(payload[:-4].encode("ascii"))
    if payload[-4:].upper() != expected:
        raise ValueError(f"CRC mismatch: payload says {payload[-4:]!r}, computed {expected!r}")
    fields = _split_tlv(payload, "payload")
    if list(fields)[-1] != "63":
        raise ValueError("the CRC field 63 is not the last field")
    if next(iter(fields)) != "00":
        raise ValueError("payload must start with field 00 (payload format indicator)")
    for tag, value in fields.items():
        if _is_template(tag) and isinstance(value, str):
            nested = _split_tlv(value, f"field {tag}")
            inner = nested.get("01")
            if nested.get("00") == NAPAS_GUID and isinstance(inner, str):
                nested["01"] = _split_tlv(inner, f"field {tag}.01")
            fields[tag] = nested
    return fields


@dataclass(frozen=True, slots=True)
class VietQR:
    """The business content of a VietQR payload; field names match :func:`build_payload`."""

    bank_bin: str
    account: str
    amount: int | None
    purpose: str | None
    dynamic: bool
    service: str
    merchant_name: str | None = None
    city: str | None = None


def _text(level: TLVDict, tag: str) -> str | None:
    value = level.get(tag)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"field {tag} is a template, expected text")


def _level(level: TLVDict, tag: str) -> TLVDict:
    value = level.get(tag)
    if not isinstance(value, dict):
        raise ValueError(f"field {tag} is missing or not a template")
    return value


def decode_payload(payload: str) -> VietQR:
    """Parse a payload (see :func:`parse_payload`) and read it as a NAPAS VietQR.

    Used to check what a printed or scanned code really asks for, e.g. that
    the account and amount match the payment order. Raises :class:`ValueError`
    if it is not a VietQR transfer in VND.
    """
    fields = parse_payload(payload)
    if _text(fields, "00") != "01" or _text(fields, "01") not in ("11", "12"):
        raise ValueError("not an EMVCo payload (fields 00/01)")
    if _text(fields, "53") != CURRENCY_VND or _text(fields, "58") != "VN":
        raise ValueError("not a VND payment in Vietnam (fields 53/58)")
    merchant = _level(fields, "38")
    if _text(merchant, "00") != NAPAS_GUID:
        raise ValueError("field 38 is not a NAPAS merchant account")
    beneficiary = _level(merchant, "01")
    bank_bin, account = _text(beneficiary, "00"), _text(beneficiary, "01")
    service = _text(merchant, "02")
    if bank_bin is None or account is None or service is None:
        raise ValueError("field 38 lacks the BIN, the account or the service code")
    amount_text = _text(fields, "54")
    if amount_text is not None and not (amount_text.isascii() and amount_text.isdigit()):
        raise ValueError("field 54 is not a whole number of dong")
    purpose = _text(_level(fields, "62"), "08") if "62" in fields else None
    return VietQR(
        bank_bin=bank_bin,
        account=account,
        amount=int(amount_text) if amount_text is not None else None,
        purpose=purpose,
        dynamic=_text(fields, "01") == "12",
        service=service,
        merchant_name=_text(fields, "59"),
        city=_text(fields, "60"),
    )


def _qr(payload: str) -> segno.QRCode:
    # Refuse to draw a code a banking app would reject (bad CRC or TLV).
    parse_payload(payload)
    # Error level exactly M (boost_error=False): 15% damage tolerance, and the
    # symbol size depends on the payload only.
    return segno.make(payload, error="m", micro=False, boost_error=False)


def qr_png(payload: str, scale: int = 8) -> bytes:
    """Render ``payload`` as a PNG QR code (error level M, 4-module quiet zone).

    ``scale`` is pixels per module; 8 gives ~300-400 px for a typical payload,
    readable from a phone held at a counter or on a printed receipt.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError("scale must be a positive int")
    buffer = io.BytesIO()
    _qr(payload).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(payload: str) -> str:
    """Render ``payload`` as a standalone SVG document (error level M), for pages and PDFs."""
    buffer = io.BytesIO()
    _qr(payload).save(buffer, kind="svg", scale=4, border=4, xmldecl=False)
    return buffer.getvalue().decode("utf-8")


BANK_NAMES: dict[str, str] = {
    "970415": "VietinBank",
    "970436": "Vietcombank",
    "970418": "BIDV",
    "970405": "Agribank",
    "970422": "MB",
    "970407": "Techcombank",
    "970432": "VPBank",
    "970416": "ACB",
    "970403": "Sacombank",
    "970423": "TPBank",
    "970441": "VIB",
    "970443": "SHB",
    "970437": "HDBank",
    "970448": "OCB",
    "970426": "MSB",
    "970431": "Eximbank",
    "970440": "SeABank",
    "970428": "Nam A Bank",
    "970449": "LPBank",
}
"""Short names of common banks by NAPAS BIN, for pages and clerks to read out. Not exhaustive:
:func:`bank_name` falls back to the BIN, which every banking app also accepts."""


def bank_name(bin_code: str | None) -> str:
    if not bin_code:
        return ""
    return BANK_NAMES.get(bin_code, f"BIN {bin_code}")
