"""Casso v2 webhooks: the published signature vector, every rejection cause, shape and normalising."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from infra.clock import ZONE, bank_time, local, now, today
from sqlalchemy import select

from api.demo import DEMO_AGENCY
from payments.agencies import add_agency
from payments.casso import (
    CassoPayload,
    casso_dedup_key,
    journal_casso,
    normalise_casso,
    parse_casso,
    sign,
    verify_signature,
)
from payments.errors import InvalidInput, Unauthorized
from payments.models import Agency, BankEvent
from settings.config import Settings
from settings.db import session_scope

# Casso's own example (developer.casso.vn, the PHP/Python/C#/Java/Go snippets): checksum key,
# body and the header Casso computed for it. Deliberate: its dates (2024-10-03) are Casso's,
# fixed by the published signature; only verified against its own moment or refused as old.
CASSO_KEY = "mgExMrjj4i7a1p8Cs6LmFbpCd8lbw4sSX4LZXPag7TKazeIogtR90tvWYTkwQbvs"
CASSO_T = 1727948258788
CASSO_HEADER = (
    "t=1727948258788,v1=ed0a4bd2e826d5cb69988cdb141e6c1a080e21f3b57eb72cd78192220042b9e7dde0868f"
    "c667faea8e224900fa7904e7c88dfa098032fb2d6b6996856e8b7ff3"
)
CASSO_BODY: dict[str, Any] = {
    "error": 0,
    "data": {
        "id": 0,
        "reference": "MA_GIAO_DICH_THU_NGHIEM",
        "description": "giao dich thu nghiem",
        "amount": 599000,
        "runningBalance": 25000000,
        "transactionDateTime": "2024-10-03 15:06:37",
        "accountNumber": "88888888",
        "bankName": "VPBank",
        "bankAbbreviation": "VPB",
        "virtualAccountNumber": "",
        "virtualAccountName": "",
        "counterAccountName": "NGUYEN VAN A",
        "counterAccountNumber": "8888888888",
        "counterAccountBankId": "970415",
        "counterAccountBankName": "VietinBank",
    },
}
CASSO_NOW = datetime.fromtimestamp(CASSO_T / 1000, UTC)

SECRET = "test-casso-secret-0123456789"
NOW = now().replace(microsecond=0)
NOW_MS = int(NOW.timestamp() * 1000)
# The transfer booked yesterday morning (local): a past bank time on any day, at any hour.
BOOKED = local(today() - timedelta(days=1), 9, 2, 47)


def _body(**data: Any) -> dict[str, Any]:
    base = {
        "id": 218897,
        "reference": "976T2611200932",
        "description": "IBFT MCK7H3Q9XAB4J TRAN THI BICH NGOC nop le phi ho tich",
        "amount": 30000,
        "runningBalance": 12530000,
        "transactionDateTime": bank_time(BOOKED),
        "accountNumber": "113000012345",
        "bankName": "VietinBank",
        "bankAbbreviation": "ICB",
        "virtualAccountNumber": "",
        "virtualAccountName": "",
        "counterAccountName": "TRAN THI BICH NGOC",
        "counterAccountNumber": "0011001932418",
        "counterAccountBankId": "970436",
        "counterAccountBankName": "Vietcombank",
    }
    base.update(data)
    return {"error": 0, "data": base}


def _raw(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _code(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(exc.value.code)


# --- the published vector -----------------------------------------------------------------


def test_casso_published_vector_verifies() -> None:
    # Casso sends the body in its own key order; we verify what was parsed, sorted.
    verify_signature(CASSO_HEADER, _raw(CASSO_BODY), CASSO_KEY, now=CASSO_NOW)


def test_sign_reproduces_the_published_header() -> None:
    assert sign(CASSO_BODY, CASSO_KEY, CASSO_T) == CASSO_HEADER


def test_vector_verifies_whatever_the_whitespace_and_key_order() -> None:
    pretty = json.dumps(
        {"data": dict(reversed(list(CASSO_BODY["data"].items()))), "error": 0}, indent=4
    )
    verify_signature(CASSO_HEADER, pretty.encode(), CASSO_KEY, now=CASSO_NOW)


def test_data_only_message_is_not_what_casso_signs() -> None:
    # domain.md's wording ("data as JSON") would sign only the data object; Casso's vector proves
    # it signs the whole body, so a data-only signature must be refused.
    data_only = sign(CASSO_BODY["data"], CASSO_KEY, CASSO_T)
    assert data_only != CASSO_HEADER
    with pytest.raises(Unauthorized) as exc:
        verify_signature(data_only, _raw(CASSO_BODY), CASSO_KEY, now=CASSO_NOW)
    assert _code(exc) == "casso_signature_mismatch"


# --- accepted -----------------------------------------------------------------------------


def test_round_trip_and_tolerance_boundaries() -> None:
    body = _body()
    raw = _raw(body)
    verify_signature(sign(body, SECRET, NOW_MS), raw, SECRET, now=NOW)
    verify_signature(sign(body, SECRET, NOW_MS - 300_000), raw, SECRET, now=NOW)
    verify_signature(sign(body, SECRET, NOW_MS + 300_000), raw, SECRET, now=NOW)
    verify_signature(sign(body, SECRET, NOW_MS - 60_000), raw, SECRET, now=NOW, tolerance_s=60)


def test_non_ascii_text_verifies_in_either_json_rendering() -> None:
    import hashlib
    import hmac

    body = _body(description="Nguyễn Văn An nộp phí MC7KD4WQ2RXHG", counterAccountName="ĐỖ THỊ HÀ")
    raw = _raw(body)
    verify_signature(sign(body, SECRET, NOW_MS), raw, SECRET, now=NOW)  # UTF-8, as JSON.stringify
    ascii_json = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    mac = hmac.new(SECRET.encode(), f"{NOW_MS}.{ascii_json}".encode(), hashlib.sha512).hexdigest()
    verify_signature(f"t={NOW_MS},v1={mac}", raw, SECRET, now=NOW)  # \\uXXXX, as PHP/Python


def test_several_v1_values_any_one_may_match() -> None:
    body = _body()
    good = sign(body, SECRET, NOW_MS)
    other = sign(body, "previous-secret", NOW_MS).split("v1=")[1]
    verify_signature(f"{good},v1={other}", _raw(body), SECRET, now=NOW)
    verify_signature(f"{good.replace('v1=', 'v1=' + other + ',v1=')}", _raw(body), SECRET, now=NOW)


def test_upper_case_hex_and_spaces_are_tolerated() -> None:
    body = _body()
    t, v1 = sign(body, SECRET, NOW_MS).split(",")
    verify_signature(f" {t} , {v1.upper().replace('V1=', 'v1=')} ", _raw(body), SECRET, now=NOW)


# --- one test per rejection cause ---------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(Unauthorized) as exc:
        verify_signature(header, _raw(_body()), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_missing"
    assert exc.value.status == 401


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"t={NOW_MS}",  # no v1
        "v1=" + "a" * 128,  # no t
        "t=abc,v1=" + "a" * 128,  # t not a number
        "t=-5,v1=" + "a" * 128,
        "t=1,t=2,v1=" + "a" * 128,  # t twice
        f"t={NOW_MS};v1=" + "a" * 128,  # wrong separator
    ],
    # Stable ids: the values hold the time, and pytest-xdist workers must collect the same ids.
    ids=["garbage", "no-v1", "no-t", "t-not-number", "t-negative", "t-twice", "wrong-separator"],
)
def test_malformed_header(header: str) -> None:
    with pytest.raises(Unauthorized) as exc:
        verify_signature(header, _raw(_body()), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_malformed"


@pytest.mark.parametrize(
    "v1",
    ["z" * 128, "a" * 127, "a" * 129, "a" * 64, "", "0x" + "a" * 126],
)
def test_bad_hex(v1: str) -> None:
    with pytest.raises(Unauthorized) as exc:
        verify_signature(f"t={NOW_MS},v1={v1}", _raw(_body()), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_malformed"
    assert "hex" in str(exc.value.detail)


def test_wrong_secret() -> None:
    body = _body()
    with pytest.raises(Unauthorized) as exc:
        verify_signature(sign(body, "not-the-secret", NOW_MS), _raw(body), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_mismatch"


def test_body_changed() -> None:
    header = sign(_body(), SECRET, NOW_MS)
    with pytest.raises(Unauthorized) as exc:
        verify_signature(header, _raw(_body(amount=3000000)), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_mismatch"


def test_timestamp_changed_breaks_the_mac() -> None:
    body = _body()
    v1 = sign(body, SECRET, NOW_MS).split(",")[1]
    with pytest.raises(Unauthorized) as exc:
        verify_signature(f"t={NOW_MS + 1},{v1}", _raw(body), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_mismatch"


def test_too_old() -> None:
    body = _body()
    with pytest.raises(Unauthorized) as exc:
        verify_signature(sign(body, SECRET, NOW_MS - 301_000), _raw(body), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_expired"
    # The published vector itself is a replay today.
    with pytest.raises(Unauthorized) as exc:
        verify_signature(CASSO_HEADER, _raw(CASSO_BODY), CASSO_KEY, now=NOW)
    assert _code(exc) == "casso_signature_expired"


def test_too_far_in_future() -> None:
    body = _body()
    with pytest.raises(Unauthorized) as exc:
        verify_signature(sign(body, SECRET, NOW_MS + 301_000), _raw(body), SECRET, now=NOW)
    assert _code(exc) == "casso_signature_future"


def test_body_not_json_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as exc:
        verify_signature(sign(_body(), SECRET, NOW_MS), b"{not json", SECRET, now=NOW)
    assert _code(exc) == "invalid_bank_payload"


def test_configuration_errors_are_not_client_errors() -> None:
    with pytest.raises(ValueError, match="secret"):
        verify_signature(CASSO_HEADER, _raw(CASSO_BODY), "", now=CASSO_NOW)
    with pytest.raises(ValueError, match="aware"):
        verify_signature(
            CASSO_HEADER, _raw(CASSO_BODY), CASSO_KEY, now=CASSO_NOW.replace(tzinfo=None)
        )
    with pytest.raises(ValueError):
        sign(CASSO_BODY, "", CASSO_T)


# --- payload shape ------------------------------------------------------------------------


def test_parse_single_object() -> None:
    payload = parse_casso(_raw(_body()))
    assert isinstance(payload, CassoPayload)
    assert payload.data.reference == "976T2611200932"
    assert casso_dedup_key(payload) == "218897"


def test_parse_accepts_a_one_item_list_from_older_payloads() -> None:
    body = _body()
    body["data"] = [body["data"]]
    assert parse_casso(_raw(body)).data.id == 218897


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([], "list of 0"),
        ([_body()["data"], _body(id=2)["data"]], "list of 2"),
        (["x"], "list of 1"),
        ("218897", "must be a transaction object"),
        (None, "must be a transaction object"),
    ],
)
def test_parse_rejects_other_data_shapes_clearly(data: Any, needle: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_casso(_raw({"error": 0, "data": data}))
    assert _code(exc) == "invalid_bank_payload"
    assert needle in str(exc.value.detail)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"error": 1, "data": _body()["data"]}, "error 1"),
        ({"data": _body()["data"]}, "error"),
        (_body(amount=0), "amount"),
        (_body(amount=10**13), "amount"),
        (_body(amount=30000.5), "amount"),
        (_body(id=-1), "id"),
        (_body(transactionDateTime=bank_time(BOOKED, sep="T")), "transactionDateTime"),
        (_body(transactionDateTime=f"{BOOKED.year}-02-30 09:02:47"), "transactionDateTime"),
        (_body(accountNumber=""), "accountNumber"),
        ([1, 2], "body"),
    ],
)
def test_parse_rejects_bad_fields(body: Any, needle: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_casso(_raw(body))
    assert needle in str(exc.value.detail)


def test_parse_rejects_duplicate_keys_and_huge_bodies() -> None:
    raw = b'{"error":0,"error":0,"data":{}}'
    with pytest.raises(InvalidInput, match="duplicate key"):
        parse_casso(raw)
    with pytest.raises(InvalidInput, match="larger than"):
        parse_casso(b" " * 300_000)


def test_casso_test_call_with_id_0_is_accepted() -> None:
    # The "test call" button in Casso's dashboard must get a 200, or the webhook cannot be saved.
    assert parse_casso(_raw(CASSO_BODY)).data.id == 0


# --- normalising --------------------------------------------------------------------------


def test_normalise_credit() -> None:
    credit = normalise_casso(_raw(_body()), ZONE)
    assert credit.bank_reference == "976T2611200932"
    assert credit.account_number == "113000012345"
    assert credit.sub_account is None
    assert credit.amount == 30000
    assert credit.incoming is True
    assert credit.memo == "IBFT MCK7H3Q9XAB4J TRAN THI BICH NGOC nop le phi ho tich"
    assert credit.booked_at == BOOKED
    assert credit.booked_at.tzinfo is ZONE
    assert credit.booked_at.utcoffset() == timedelta(hours=7)


def test_normalise_debit_is_positive_and_outgoing() -> None:
    credit = normalise_casso(_raw(_body(amount=-150000)), ZONE)
    assert (credit.amount, credit.incoming) == (150000, False)


@pytest.mark.parametrize("reference", ["", None, "   "])
def test_normalise_falls_back_to_casso_id(reference: str | None) -> None:
    assert normalise_casso(_raw(_body(reference=reference)), ZONE).bank_reference == "casso-218897"


def test_normalise_virtual_account_and_nulls() -> None:
    credit = normalise_casso(
        _raw(_body(virtualAccountNumber="VQRQ0001abcd", description=None, bankName=None)), ZONE
    )
    assert credit.sub_account == "VQRQ0001abcd"
    assert credit.memo == ""


def test_normalise_rejects_bad_body() -> None:
    with pytest.raises(InvalidInput):
        normalise_casso(b"[]", ZONE)


# --- journal ------------------------------------------------------------------------------


def test_journal_once_per_casso_id(settings: Settings) -> None:
    with session_scope() as s:
        agency_id = add_agency(s, DEMO_AGENCY).id
    raw = _raw(_body())
    with session_scope() as s:
        agency = s.get(Agency, agency_id)
        assert agency is not None
        first, created = journal_casso(s, agency, raw)
        assert created is True
        assert (first.source, first.dedup_key, first.raw) == ("casso", "218897", raw)
        first_id = first.id
    with session_scope() as s:
        agency = s.get(Agency, agency_id)
        assert agency is not None
        # Casso retries the same id, even re-serialised: same event.
        again, created = journal_casso(s, agency, _raw(_body()).replace(b", ", b","))
        assert created is False
        assert again.id == first_id
    with session_scope() as s:
        rows = list(s.scalars(select(BankEvent).where(BankEvent.source == "casso")))
        assert len(rows) == 1
        assert rows[0].duplicates == 1
        assert rows[0].raw == raw
    with session_scope() as s:
        agency = s.get(Agency, agency_id)
        assert agency is not None
        with pytest.raises(InvalidInput):
            journal_casso(s, agency, b"{}")
