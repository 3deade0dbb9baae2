"""``order_intake.dump_json`` (orjson) must write exactly what Starlette's ``JSONResponse``
(``json.dumps``) writes: the PostgreSQL path stores and replays that text, the SQLite path
renders with Starlette, and clients see one API."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from infra.clock import now as clock_now

from payments import order_intake
from payments.order_draft import FeeRequest, FeeSpec, OrderRequest, ProcedureSpec, draft_order
from payments.presenters import order_json


def _starlette(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


TEXTS = [
    "Nguyễn Văn An",
    "Chứng thực bản sao từ bản chính — Điều 5",
    'quotes " and \\ backslash / slash',
    "control \x00\x01\x1f\x7f and tab\t newline\n",
    "line separators \u2028\u2029",
    "emoji 😀 and CJK 中文",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_same_text_as_json_dumps(text: str) -> None:
    body = {"s": text, "n": [0, -1, 2**63 - 1], "none": None, "t": True, "nested": {"k": [text]}}
    assert order_intake.dump_json(body) == _starlette(body)


def test_an_order_answer_is_byte_identical() -> None:
    agency = order_intake.AgencySnapshot(
        "a" * 32, "DEMO-HUYEN", "UBND huyện Demo", "970436", "0011001234567",
        "UBND HUYEN DEMO", "Asia/Ho_Chi_Minh",
    )  # fmt: skip
    tariff = {
        "v": 1,
        "kind": "copy",
        "unit": "trang",
        "tiers": [[1, 2000], [3, 1000]],
        "copy_cap": 200_000,
    }
    fee = FeeSpec(
        "f" * 32, "CT-BS", "le_phi", "Chứng thực bản sao", 2_000, "trang", 200_000, 0,
        "Thông tư 226/2016/TT-BTC", tariff,
    )  # fmt: skip
    proc = ProcedureSpec("p" * 32, "1.001612", "Chứng thực bản sao")
    now = clock_now().replace(microsecond=678901)  # microseconds in the JSON too
    request = OrderRequest(
        "H01.22-261121-0001", "1.001612",
        {"name": "Nguyễn Văn An", "id_number": "001090012345", "phone": None},
        (FeeRequest("CT-BS", 3, copies=2), FeeRequest("CT-BSX", 3, ("nguoi_co_cong", "Điều 5"))),
    )  # fmt: skip
    fees = {"CT-BS": fee, "CT-BSX": replace(fee, code="CT-BSX")}
    order = draft_order(
        agency, proc, fees.get, request, reference="MC7KD4WQ2RXHG", now=now,
        ttl=timedelta(hours=24), max_amount=10**9,
    )  # fmt: skip
    assert order.amount == 10_000 and order.lines[0].pricing is not None
    body = order_json(order, None, "https://motcua.example.vn")
    assert order_intake.dump_json(body) == _starlette(body)


def test_what_orjson_refuses_falls_back_to_json() -> None:
    """orjson stops at 64-bit integers; the standard encoder then decides (and writes it)."""
    assert order_intake.dump_json({"big": 10**30}) == '{"big":1000000000000000000000000000000}'
