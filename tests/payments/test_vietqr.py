"""VietQR payloads: the worked example, CRC, validation, parsing and real decoding."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from payments.reference import generate
from payments.vietqr import (
    SERVICE_TO_CARD,
    VietQR,
    build_payload,
    crc16_ccitt_false,
    decode_payload,
    parse_payload,
    qr_png,
    qr_svg,
)

EXAMPLE = (
    "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA"
    "530370454061200005802VN62170813ung ho lu lut6304C15C"
)
EXAMPLE_ARGS: dict[str, Any] = {
    "bank_bin": "970415",
    "account": "0011001932418",
    "amount": 120000,
    "purpose": "ung ho lu lut",
}


def test_worked_example_from_domain_md() -> None:
    assert build_payload(**EXAMPLE_ARGS) == EXAMPLE


def test_diacritics_are_stripped_from_the_purpose() -> None:
    assert build_payload(**{**EXAMPLE_ARGS, "purpose": "ủng hộ lũ lụt"}) == EXAMPLE
    payload = build_payload(**{**EXAMPLE_ARGS, "purpose": "Đóng phí MC7KD4WQ2RXHG"})
    assert decode_payload(payload).purpose == "Dong phi MC7KD4WQ2RXHG"


def test_crc_check_value() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE.
    assert crc16_ccitt_false(b"123456789") == "29B1"
    assert crc16_ccitt_false(b"") == "FFFF"
    assert crc16_ccitt_false(EXAMPLE[:-4].encode()) == "C15C"


def test_crc_with_leading_zero_is_zero_padded() -> None:
    for amount in range(1000, 200000, 1000):
        payload = build_payload(**{**EXAMPLE_ARGS, "amount": amount})
        if payload[-4] == "0":
            break
    else:
        pytest.fail("no payload with a CRC below 0x1000 in the searched range")
    crc = crc16_ccitt_false(payload[:-4].encode())
    assert crc == payload[-4:]
    assert len(crc) == 4 and crc.startswith("0") and crc == crc.upper()
    assert payload[-8:-4] == "6304"
    assert parse_payload(payload)["63"] == crc
    # And a CRC below 0x0100 (two leading zeros) straight from the function.
    small = next(
        data for n in range(100000) if int(crc16_ccitt_false(data := str(n).encode()), 16) < 0x100
    )
    assert crc16_ccitt_false(small).startswith("00")


def test_parse_example() -> None:
    assert parse_payload(EXAMPLE) == {
        "00": "01",
        "01": "12",
        "38": {"00": "A000000727", "01": {"00": "970415", "01": "0011001932418"}, "02": "QRIBFTTA"},
        "53": "704",
        "54": "120000",
        "58": "VN",
        "62": {"08": "ung ho lu lut"},
        "63": "C15C",
    }


ROUND_TRIPS: list[dict[str, Any]] = [
    EXAMPLE_ARGS,
    {**EXAMPLE_ARGS, "dynamic": False},
    {**EXAMPLE_ARGS, "amount": None, "purpose": None},
    {**EXAMPLE_ARGS, "amount": 9_999_999_999_999},
    {
        "bank_bin": "970436",
        "account": "1023456789",
        "amount": 30000,
        "purpose": generate(),
        "merchant_name": "UBND HUYEN AN BINH",
        "city": "Tây Ninh",
    },
    {
        "bank_bin": "970418",
        "account": "9704180012345678",
        "amount": 2000,
        "purpose": "x",
        "service": SERVICE_TO_CARD,
    },
    {**EXAMPLE_ARGS, "account": "ABC123xyz", "purpose": "a" * 25},
]


@pytest.mark.parametrize("args", ROUND_TRIPS)
def test_round_trip(args: dict[str, Any]) -> None:
    payload = build_payload(**args)
    decoded = decode_payload(payload)
    assert build_payload(**dataclasses.asdict(decoded)) == payload
    assert decoded.bank_bin == args["bank_bin"]
    assert decoded.account == args["account"]
    assert decoded.amount == args["amount"]
    assert decoded.dynamic == args.get("dynamic", True)
    assert parse_payload(payload)["01"] == ("12" if decoded.dynamic else "11")


def test_optional_fields_order() -> None:
    payload = build_payload(**ROUND_TRIPS[4])
    fields = parse_payload(payload)
    assert list(fields) == ["00", "01", "38", "53", "54", "58", "59", "60", "62", "63"]
    assert fields["60"] == "Tay Ninh"
    assert "54" not in parse_payload(build_payload(**ROUND_TRIPS[2]))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"bank_bin": "97041"}, ValueError),
        ({"bank_bin": "9704150"}, ValueError),
        ({"bank_bin": "97041a"}, ValueError),
        ({"bank_bin": "９７０４１５"}, ValueError),
        ({"account": ""}, ValueError),
        ({"account": "1" * 20}, ValueError),
        ({"account": "0011-0019"}, ValueError),
        ({"account": "001100193241８"}, ValueError),
        ({"amount": 0}, ValueError),
        ({"amount": -5}, ValueError),
        ({"amount": 10**13}, ValueError),
        ({"amount": True}, TypeError),
        ({"amount": 120000.0}, TypeError),
        ({"amount": "120000"}, TypeError),
        ({"purpose": "a" * 26}, ValueError),
        ({"purpose": ""}, ValueError),
        ({"purpose": "ung ho\nlu lut"}, ValueError),
        ({"purpose": "ủng hộ ❤"}, ValueError),
        ({"service": "QRIBFTTX"}, ValueError),
        ({"merchant_name": "N" * 26}, ValueError),
        ({"city": "Thanh pho Ho Chi Minh"}, ValueError),
    ],
)
def test_invalid_inputs(change: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        build_payload(**{**EXAMPLE_ARGS, **change})


def _with_crc(body: str) -> str:
    return body + crc16_ccitt_false(body.encode())


@pytest.mark.parametrize(
    "payload",
    [
        EXAMPLE[:-1] + "D",  # wrong CRC
        EXAMPLE.replace("120000", "130000"),  # amount changed, CRC not updated
        EXAMPLE[:-8],  # CRC field missing
        EXAMPLE[:-4] + "C15",  # CRC too short
        "",
        _with_crc(EXAMPLE[:-4].replace("5406120000", "5407120000")),  # length overruns
        _with_crc("00020101021253O3704" + "6304"),  # length is not digits
        _with_crc("000201000201" + "6304"),  # field 00 twice
        _with_crc("010212000201" + "6304"),  # does not start with 00
        _with_crc("000201" + "63041234" + "5802VN" + "6304"),  # a CRC field before the end
        EXAMPLE.replace("ung ho", "ủng hộ"),  # not ASCII
    ],
)
def test_parse_rejects(payload: str) -> None:
    with pytest.raises(ValueError):
        parse_payload(payload)


def test_parse_accepts_lower_case_crc() -> None:
    assert parse_payload(EXAMPLE[:-4] + "c15c")["63"] == "c15c"


def test_decode_rejects_non_vietqr() -> None:
    with pytest.raises(ValueError):
        decode_payload(_with_crc("0002010102125303840" + "5802US" + "6304"))
    assert isinstance(decode_payload(EXAMPLE), VietQR)


def test_png_and_svg() -> None:
    png = qr_png(EXAMPLE)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(qr_png(EXAMPLE, scale=2)) < len(png)
    svg = qr_svg(EXAMPLE)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


def test_images_refuse_a_broken_payload() -> None:
    with pytest.raises(ValueError):
        qr_png(EXAMPLE[:-1] + "D")
    with pytest.raises(ValueError):
        qr_svg(EXAMPLE[:-1] + "D")
    with pytest.raises(ValueError):
        qr_png(EXAMPLE, scale=0)


ZBARIMG = shutil.which("zbarimg")


@pytest.mark.skipif(ZBARIMG is None, reason="zbarimg (zbar-tools) is not installed")
@pytest.mark.parametrize("args", [EXAMPLE_ARGS, ROUND_TRIPS[4], ROUND_TRIPS[5]])
def test_png_decodes_with_zbarimg(args: dict[str, Any], tmp_path: Path) -> None:
    payload = build_payload(**args)
    image = tmp_path / "vietqr.png"
    image.write_bytes(qr_png(payload))
    assert ZBARIMG is not None
    result = subprocess.run(
        [ZBARIMG, "--raw", "-q", str(image)], capture_output=True, check=True, timeout=30
    )
    assert result.stdout.decode("ascii").rstrip("\n") == payload
