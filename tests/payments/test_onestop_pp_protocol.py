"""PP-DVCQG pure functions: checksums in the documented field order, ``ThoiGianGD`` (24- and
12-hour), amounts as strings or numbers, and the two reply dialects.

The checksums here are computed independently (``hashlib`` over the order written in
``docs/onestop-pp.md``), never by the code under test, so a wrong field order cannot agree
with itself.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from infra.clock import Clock

from payments.onestop_pp import (
    CONFIRM_FIELDS,
    INIT_FIELDS,
    POLL_FIELDS,
    ProtocolError,
    checksum,
    checksum_ok,
    confirm_message,
    error_reply,
    fresh_enough,
    local_timestamp,
    parse_init,
    parse_json,
    parse_poll,
    readings,
    success_reply,
    whole_dong,
)

SECRET = "ppk_example-secret-key"

DOC_INIT_ORDER = [
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
]
DOC_CONFIRM_ORDER = [
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
]
DOC_POLL_ORDER = ["LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD"]

WORKED_EXAMPLE = {
    "LoaiBanTin": "INIT",
    "PhienBan": "1.0.6",
    "MaDoiTac": "MOTCUA-SONHA",
    "MaThamChieu": "H0122000001000120261203093000",
    "SoTien": "105000",
    "LoaiHinhThanhToan": "PAY",
    "MaKenhThanhToan": "1",
    "MaThietBi": "1",
    "NgonNgu": "vi-VN",
    "MaTienTe": "VND",
    "MaNganHang": "PAYMENT",
    "ThongTinGiaoDich": "THANH TOAN HO SO H01.22-000001-0001",
    "ThoiGianGD": "20261203093000",
    "Ip": "203.0.113.7",
}
"""The worked example of ``docs/onestop-pp.md`` (its dates are message text, not the clock)."""
WORKED_KEY = "ppk_vi-du-khong-dung-that"
WORKED_CHECKSUM = "175d2d8bde1bcc890a3958827e99b6da51b8fbcd6a63c03a6e6312e4ba075aed"


def doc_checksum(message: dict[str, Any], order: list[str], secret: str) -> str:
    joined = "|".join([*(str(message[name]) for name in order), secret])
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def test_field_orders_are_the_documented_ones() -> None:
    assert list(INIT_FIELDS) == DOC_INIT_ORDER
    assert list(CONFIRM_FIELDS) == DOC_CONFIRM_ORDER
    assert list(POLL_FIELDS) == DOC_POLL_ORDER


def test_worked_example_checksum_of_the_integrators_doc() -> None:
    ours = checksum([WORKED_EXAMPLE[n] for n in INIT_FIELDS], WORKED_KEY)
    assert ours == doc_checksum(WORKED_EXAMPLE, DOC_INIT_ORDER, WORKED_KEY)
    assert ours == WORKED_CHECKSUM


def test_checksum_ok_is_case_blind_and_refuses_any_change() -> None:
    message: dict[str, Any] = {**WORKED_EXAMPLE}
    given = doc_checksum(message, DOC_INIT_ORDER, SECRET)
    assert checksum_ok(message, INIT_FIELDS, SECRET, given)
    assert checksum_ok(message, INIT_FIELDS, SECRET, given.upper())
    assert not checksum_ok(message, INIT_FIELDS, SECRET + "x", given)
    assert not checksum_ok({**message, "SoTien": "105001"}, INIT_FIELDS, SECRET, given)
    assert not checksum_ok(message, INIT_FIELDS, SECRET, given[:-1])
    assert not checksum_ok(message, INIT_FIELDS, SECRET, None)
    assert not checksum_ok(message, INIT_FIELDS, SECRET, 12345)


def test_a_number_amount_is_hashed_as_its_digits() -> None:
    as_string = {**WORKED_EXAMPLE}
    as_number = {**WORKED_EXAMPLE, "SoTien": 105000}
    given = doc_checksum(as_string, DOC_INIT_ORDER, SECRET)
    assert checksum_ok(as_number, INIT_FIELDS, SECRET, given)


def test_the_string_received_is_hashed_not_a_reformatted_time(clock: Clock) -> None:
    twelve = clock.local_now().strftime("%Y%m%d%I%M%S")
    message = {**WORKED_EXAMPLE, "ThoiGianGD": twelve}
    given = doc_checksum(message, DOC_INIT_ORDER, SECRET)
    assert checksum_ok(message, INIT_FIELDS, SECRET, given)


@pytest.mark.parametrize(
    ("value", "expected"), [("5000", 5000), (5000, 5000), ("0", 0), (0, 0), ("105000", 105000)]
)
def test_whole_dong_accepts_strings_and_numbers(value: Any, expected: int) -> None:
    assert whole_dong(value, "SoTien") == expected


@pytest.mark.parametrize(
    "value",
    [
        5000.0,
        5000.5,
        "5000.0",
        "5.000",
        "5,000",
        -5000,
        "-5000",
        True,
        False,
        None,
        "5e3",
        "",
        " 5000",
        "+5000",
        [5000],
        {"v": 5000},
        10**16,
    ],
)
def test_whole_dong_refuses_decimals_negatives_booleans(value: Any) -> None:
    with pytest.raises(ProtocolError) as caught:
        whole_dong(value, "SoTien")
    assert caught.value.refusal is ProtocolError.BAD_MESSAGE


def test_json_amounts_with_a_decimal_point_are_refused_after_parsing() -> None:
    parsed = parse_json(b'{"SoTien": 5000.0}')
    with pytest.raises(ProtocolError):
        whole_dong(parsed["SoTien"], "SoTien")


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b'"INIT"', b"\xff\xfe", b'{"SoTien": NaN}', b"null"]
)
def test_malformed_json_is_a_bad_message(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_json(raw)
    assert caught.value.refusal.code == "01"


def test_readings_of_24_and_12_hour_stamps(clock: Clock) -> None:
    moment = clock.local_now().replace(hour=15, minute=4, second=5, microsecond=0)
    assert readings(moment.strftime("%Y%m%d%H%M%S"), clock.zone) == [moment]
    twelve = readings(moment.strftime("%Y%m%d%I%M%S"), clock.zone)  # "03" on a 12-hour clock
    assert moment in twelve and moment - timedelta(hours=12) in twelve
    noon = moment.replace(hour=12)
    assert noon.replace(hour=0) in readings(noon.strftime("%Y%m%d%H%M%S"), clock.zone)
    with pytest.raises(ProtocolError):
        readings(moment.strftime("%Y%m%d%H%M"), clock.zone)
    with pytest.raises(ProtocolError):
        readings(moment.strftime("%Y13%d%H%M%S"), clock.zone)


@pytest.mark.parametrize("hour_format", ["%H", "%I"])
def test_freshness_window_both_clocks(clock: Clock, hour_format: str) -> None:
    now = clock.now()
    local = clock.local_now()

    def stamp(delta: timedelta) -> str:
        return (local + delta).strftime(f"%Y%m%d{hour_format}%M%S")

    assert fresh_enough(stamp(timedelta()), clock.zone, now, 300)
    assert fresh_enough(stamp(timedelta(seconds=-240)), clock.zone, now, 300)
    assert not fresh_enough(stamp(timedelta(minutes=-10)), clock.zone, now, 300)
    assert not fresh_enough(stamp(timedelta(minutes=10)), clock.zone, now, 300)
    days = 4 * 86_400  # an OpenCPS partner: its stamps are the payment file's creation time
    assert fresh_enough(stamp(timedelta(days=-2)), clock.zone, now, days)
    assert not fresh_enough(stamp(timedelta(days=-5)), clock.zone, now, days)
    if hour_format == "%H":  # a 12-hour stamp 10 min ahead also reads as 12 h ago
        assert not fresh_enough(stamp(timedelta(minutes=10)), clock.zone, now, days)


def test_local_timestamp_is_24_hour_in_the_zone(clock: Clock) -> None:
    stamp = local_timestamp(clock.now(), clock.zone)
    assert len(stamp) == 14 and stamp.isdigit()
    assert any(abs(r - clock.now()) < timedelta(seconds=2) for r in readings(stamp, clock.zone))


def _init(**info: Any) -> dict[str, Any]:
    base_info: dict[str, Any] = {
        "MaDichVu": "2",
        "MaTTHC": "1.001612",
        "MaHoSo": "H01.22-000001-0001",
        "HoTenNguoiNop": "Nguyễn Văn An",
        "SoCMNDNguoiNop": "000000000",
        "DiaChiNguoiNop": "Số 5",
        "TinhNguoiNop": "Hà Nội",
        "PhiLePhi": [
            {"LoaiPhiLePhi": "1", "MaPhiLePhi": "CT-BS", "TenPhiLePhi": "Phí", "SoTien": "5000"}
        ],
        **info,
    }
    return {**WORKED_EXAMPLE, "SoTien": "5000", "ThongTinBienLai": base_info}


def test_parse_init_reads_the_receipt_information() -> None:
    msg = parse_init(_init())
    assert msg.amount == 5000 and msg.service == "2" and msg.dossier_code == "H01.22-000001-0001"
    assert msg.payer == {"name": "Nguyễn Văn An", "address": "Số 5, Hà Nội"}  # 000000000: none
    assert [(line.code, line.amount) for line in msg.lines] == [("CT-BS", 5000)]


@pytest.mark.parametrize(
    "change",
    [
        {"PhiLePhi": []},
        {"PhiLePhi": [{"MaPhiLePhi": "CT-BS", "SoTien": 5000.5}]},
        {"PhiLePhi": [{"MaPhiLePhi": "CT-BS", "SoTien": True}]},
        {"PhiLePhi": [{"MaPhiLePhi": "CT-BS", "SoTien": "-5000"}]},
        {"MaHoSo": ""},
        {"HoTenNguoiNop": {"x": 1}},
    ],
)
def test_parse_init_refuses_bad_fields(change: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_init(_init(**change))


def test_parse_poll_and_wrong_type(clock: Clock) -> None:
    poll = parse_poll(
        {
            "LoaiBanTin": "QUERY",
            "PhienBan": "1.0.6",
            "MaDoiTac": "X",
            "MaThamChieu": "R",
            "ThoiGianGD": local_timestamp(clock.now(), clock.zone),
        }
    )
    assert poll.kind == "QUERY" and poll.reference == "R"
    with pytest.raises(ProtocolError):
        parse_poll({"LoaiBanTin": "PAY"})


def test_confirm_message_checksum_matches_the_documented_order(clock: Clock) -> None:
    message = confirm_message(
        kind="CONFIRM",
        result_code="00",
        partner_code="MOTCUA-SONHA",
        reference="R1",
        amount=105000,
        transaction_id="MCP1234",
        bank_code="VIETQR",
        stamp=local_timestamp(clock.now(), clock.zone),
        description="THANH TOAN HO SO H01",
        secret=SECRET,
    )
    assert message["SoTien"] == 105000 and isinstance(message["SoTien"], int)
    assert message["MaXacThuc"] == doc_checksum(message, DOC_CONFIRM_ORDER, SECRET)


def test_reply_dialects() -> None:
    ok = success_reply("maloi", {"UrlThanhToan": "https://x/pay/1"})
    assert ok["MaLoi"] == "00" and ok["UrlThanhToan"] == "https://x/pay/1"
    dotnet = success_reply("error_code", {"UrlThanhToan": "https://x/pay/1"})
    assert dotnet["error_code"] == "0"
    assert json.loads(dotnet["message"])["UrlThanhToan"] == "https://x/pay/1"
    error = ProtocolError(ProtocolError.BAD_CHECKSUM, "no")
    assert error_reply("maloi", error)["MaLoi"] == "02" and "error_code" not in error_reply(
        "maloi", error
    )
    assert error_reply("error_code", error) == {"error_code": "02", "message": error.text}
    both = error_reply(None, error)
    assert both["MaLoi"] == both["error_code"] == "02"


def test_refusal_codes_are_distinct() -> None:
    refusals = [v for v in vars(ProtocolError).values() if hasattr(v, "code") and hasattr(v, "vi")]
    codes = [r.code for r in refusals]
    assert len(codes) == len(set(codes)) >= 14
    assert "00" not in codes and "0" not in codes
